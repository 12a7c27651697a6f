"""A reader for the subset of YAML that PM2 ecosystem files use; no dependency needed.

Supported: block mappings and sequences (``- name: web`` items included), flow
``[a, b]`` and ``{k: v}`` collections (which may span lines), plain, 'single'
and "double" quoted scalars, ``|`` and ``>`` block scalars, ``#`` comments and
one ``---`` document. Scalars resolve as js-yaml (which PM2 uses) does:
true/false, null/~, integers, floats; everything else is a string.

Anchors, aliases, tags and multi-document files are refused with the line
number and a hint to convert the file to JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from kanri.importers.errors import SourceError

_INT = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_UNSUPPORTED = "; kanri reads the YAML that PM2 files use: convert this file to JSON"
_DQ_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f"}
_DQ_ESCAPES |= {"r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85"}


@dataclass
class _Line:
    indent: int
    text: str  # without indentation and comment
    number: int  # 1-based
    raw: str  # the whole line, for block scalars


def load_yaml(text: str, file: str) -> Any:
    """Parse YAML text; raise SourceError with a line number for anything outside the subset."""
    return _Reader(text, file).document()


class _Reader:
    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.lines: list[_Line] = []
        self.raw = text.splitlines()
        for number, raw in enumerate(self.raw, 1):
            if "\t" in raw[: len(raw) - len(raw.lstrip())]:
                raise self.error(number, "tabs are not allowed for indentation in YAML")
            body = _strip_comment(raw).rstrip()
            if body.strip():
                self.lines.append(_Line(len(body) - len(body.lstrip()), body.strip(), number, raw))
        self.pos = 0

    def error(self, line: int, message: str) -> SourceError:
        return SourceError(self.file, message, line)

    def document(self) -> Any:
        if self.lines and self.lines[0].text.startswith("%"):
            raise self.error(self.lines[0].number, "YAML directives are not supported")
        if self.lines and self.lines[0].text == "---":
            self.pos = 1
        if self.pos >= len(self.lines):
            return None
        value = self.block(self.lines[self.pos].indent)
        if self.pos < len(self.lines) and self.lines[self.pos].text == "...":
            self.pos += 1
        if self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.text == "---":
                raise self.error(line.number, "several YAML documents in one file" + _UNSUPPORTED)
            raise self.error(line.number, f"unexpected text {line.text!r} (check the indentation)")
        return value

    def block(self, indent: int) -> Any:
        line = self.lines[self.pos]
        if line.text == "-" or line.text.startswith("- "):
            return self.sequence(line.indent)
        if _split_key(line.text) is not None:
            return self.mapping(line.indent)
        self.pos += 1
        return self.inline(line.text, line, indent)

    def sequence(self, indent: int) -> list[Any]:
        items: list[Any] = []
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.indent < indent or not (line.text == "-" or line.text.startswith("- ")):
                break
            if line.indent > indent:
                raise self.error(line.number, "unexpected indentation")
            rest = line.text[1:].lstrip()
            if not rest:
                self.pos += 1
                items.append(self.nested(indent))
                continue
            # "- key: value" starts a nested block one dash deeper: re-read the rest of
            # the line as if it stood on its own line at that indentation.
            self.lines[self.pos] = _Line(
                indent + len(line.text) - len(rest), rest, line.number, line.raw
            )
            items.append(self.block(self.lines[self.pos].indent))
        return items

    def mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.indent < indent:
                break
            if line.indent > indent:
                raise self.error(line.number, "unexpected indentation")
            split = _split_key(line.text)
            if split is None:
                if line.text.startswith("- "):
                    break  # a sequence at the same indentation ends the mapping
                raise self.error(line.number, f"expected 'key: value', got {line.text!r}")
            key_text, rest = split
            key = self.scalar(key_text, line) if key_text else ""
            if not isinstance(key, str):
                key = json.dumps(key) if not isinstance(key, str | int | float) else str(key)
            if key in result:
                raise self.error(line.number, f"key {key!r} appears twice in one mapping")
            self.pos += 1
            if rest:
                result[key] = self.inline(rest, line, indent)
            elif (
                self.pos < len(self.lines)
                and self.lines[self.pos].indent == indent
                and (self.lines[self.pos].text.startswith("- ") or self.lines[self.pos].text == "-")
            ):
                result[key] = self.sequence(indent)  # "key:\n- a" (dash not indented)
            else:
                result[key] = self.nested(indent)
        return result

    def nested(self, parent_indent: int) -> Any:
        if self.pos < len(self.lines) and self.lines[self.pos].indent > parent_indent:
            return self.block(self.lines[self.pos].indent)
        return None

    def inline(self, text: str, line: _Line, indent: int) -> Any:
        if text[0] in "[{":
            while _unbalanced(text):
                if self.pos >= len(self.lines):
                    raise self.error(line.number, f"unclosed {text[0]!r}")
                text += " " + self.lines[self.pos].text
                self.pos += 1
            value, end = _Flow(text, line.number, self).value(0)
            if text[end:].strip():
                raise self.error(
                    line.number, f"unexpected text after {text[0]!r}...: {text[end:]!r}"
                )
            return value
        if text[0] in "|>":
            return self.block_scalar(text, line, indent)
        return self.scalar(text, line)

    def block_scalar(self, header: str, line: _Line, indent: int) -> str:
        if not re.fullmatch(r"[|>][+-]?", header):
            raise self.error(line.number, f"block scalar header {header!r} is not supported")
        body: list[str] = []
        number = line.number  # lines[] skips blanks; a block scalar keeps them
        while number < len(self.raw):
            raw = self.raw[number]
            if raw.strip() and len(raw) - len(raw.lstrip()) <= indent:
                break
            body.append(raw)
            number += 1
        while self.pos < len(self.lines) and self.lines[self.pos].number <= number:
            self.pos += 1
        while body and not body[-1].strip():
            body.pop()
        depth = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
        rows = [b[depth:] for b in body]
        text = "\n".join(rows) if header[0] == "|" else " ".join(r for r in rows if r)
        return text if header.endswith("-") else text + "\n"

    def scalar(self, text: str, line: _Line) -> Any:
        first = text[0]
        if first in "&*!":
            what = {"&": "anchors", "*": "aliases", "!": "tags"}[first]
            raise self.error(line.number, f"YAML {what} are not supported{_UNSUPPORTED}")
        if first in "'\"":
            value, end = _quoted(text, 0, line.number, self)
            if text[end:].strip():
                raise self.error(
                    line.number, f"unexpected text after a quoted string: {text[end:]!r}"
                )
            return value
        return _plain(text)


def _plain(text: str) -> Any:
    if text in ("~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT.fullmatch(text):
        return int(text.replace("_", ""))
    if _HEX.fullmatch(text):
        return int(text, 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _quoted(text: str, start: int, number: int, reader: _Reader) -> tuple[str, int]:
    """Read a quoted scalar starting at text[start]; return it and the index after it."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if quote == "'" and char == "'":
            if text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        if quote == '"' and char == '"':
            return "".join(out), i + 1
        if quote == '"' and char == "\\":
            code = text[i + 1 : i + 2]
            if code in _DQ_ESCAPES:
                out.append(_DQ_ESCAPES[code])
                i += 2
                continue
            width = {"x": 2, "u": 4, "U": 8}.get(code)
            digits = text[i + 2 : i + 2 + width] if width else ""
            if not width or not re.fullmatch(r"[0-9a-fA-F]+", digits) or len(digits) != width:
                raise reader.error(number, f"bad escape \\{code} in a double-quoted string")
            out.append(chr(int(digits, 16)))
            i += 2 + width
            continue
        out.append(char)
        i += 1
    raise reader.error(number, "unclosed quoted string (quoted strings must end on their line)")


class _Flow:
    """Flow collections: [a, 'b', {c: 1}] and {k: v, k2: [1, 2]}."""

    def __init__(self, text: str, number: int, reader: _Reader) -> None:
        self.text = text
        self.number = number
        self.reader = reader

    def skip(self, i: int) -> int:
        while i < len(self.text) and self.text[i] == " ":
            i += 1
        return i

    def value(self, i: int, stops: str = ",]}") -> tuple[Any, int]:
        i = self.skip(i)
        char = self.text[i : i + 1]
        if char in ("[", "{"):
            return self.collection(i)
        if char in ("'", '"'):
            value, end = _quoted(self.text, i, self.number, self.reader)
            return value, self.skip(end)
        end = i
        while end < len(self.text) and self.text[end] not in stops:
            if self.text[end] == ":" and ":" in stops and self.text[end + 1 : end + 2] in (" ", ""):
                break
            end += 1
        word = self.text[i:end].strip()
        if word[:1] in ("&", "*", "!"):
            self.reader.scalar(word, _Line(0, word, self.number, ""))
        return (_plain(word) if word else None), end

    def collection(self, i: int) -> tuple[Any, int]:
        is_map = self.text[i] == "{"
        close = "}" if is_map else "]"
        items: list[Any] = []
        mapping: dict[str, Any] = {}
        i = self.skip(i + 1)
        while True:
            if self.text[i : i + 1] == close:
                return (mapping if is_map else items), self.skip(i + 1)
            if is_map:
                key, i = self.value(i, ",}:")
                i = self.skip(i)
                value = None
                if self.text[i : i + 1] == ":":
                    value, i = self.value(i + 1)
                mapping[str(key)] = value
            else:
                item, i = self.value(i)
                items.append(item)
            i = self.skip(i)
            if self.text[i : i + 1] == ",":
                i = self.skip(i + 1)
            elif self.text[i : i + 1] != close:
                found = self.text[i : i + 1] or "the end of the line"
                raise self.reader.error(self.number, f"expected ',' or {close!r}, found {found!r}")


def _strip_comment(raw: str) -> str:
    """The line without a trailing # comment (a # inside quotes, or glued to a word, stays)."""
    quote = ""
    for i, char in enumerate(raw):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"" and (i == 0 or raw[i - 1] in " \t[{,:-"):
            quote = char
        elif char == "#" and (i == 0 or raw[i - 1] in " \t"):
            return raw[:i]
    return raw


def _split_key(text: str) -> tuple[str, str] | None:
    """Split "key: value" (or "key:") outside quotes; None when the line is not a key line."""
    if text[0] in "[{":
        return None
    i = 0
    if text[0] in "'\"":
        quote, i = text[0], 1
        while i < len(text) and text[i] != quote:
            i += 2 if (quote == '"' and text[i] == "\\") else 1
        i += 1
    while i < len(text):
        if text[i] == ":" and (i + 1 == len(text) or text[i + 1] == " "):
            return text[:i].strip(), text[i + 1 :].strip()
        i += 1
    return None


def _unbalanced(text: str) -> bool:
    depth = 0
    quote = ""
    for char in text:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return depth > 0
