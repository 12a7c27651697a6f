"""nginx configuration syntax: tokens, quoted strings, comments, blocks and includes.

The parser reads what nginx reads: words and "quoted" or 'quoted' strings with
backslash escapes, ``#`` comments, directives ending in ``;`` and blocks in
``{ }``. ``include`` is expanded where it stands, with globs, relative paths
resolved against the main file's directory (nginx's prefix) and then against the
including file's. Errors carry the file and line, as nginx's own do.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kanri.importers.document import Notes
from kanri.importers.errors import SourceError

_MAX_INCLUDE_DEPTH = 16
_ANY = 99
# Directives kanri interprets: (least arguments, most arguments, has a block); nginx's own
# checks, so a file nginx refuses is refused here too instead of half-read.
_SHAPES: dict[str, tuple[int, int, bool]] = {
    "http": (0, 0, True),
    "events": (0, 0, True),
    "upstream": (1, 1, True),
    "location": (1, 2, True),
    "alias": (1, 1, False),
    "root": (1, 1, False),
    "proxy_pass": (1, 1, False),
    "listen": (1, _ANY, False),
    "server_name": (1, _ANY, False),
    "try_files": (2, _ANY, False),
    "expires": (1, 2, False),
    "index": (1, _ANY, False),
    "include": (1, 1, False),
    "keepalive": (1, 1, False),
    "worker_processes": (1, 1, False),
    "worker_connections": (1, 1, False),
    "client_max_body_size": (1, 1, False),
    "client_header_timeout": (1, 1, False),
    "client_body_timeout": (1, 1, False),
    "keepalive_timeout": (1, 2, False),
    "send_timeout": (1, 1, False),
    "proxy_connect_timeout": (1, 1, False),
    "proxy_read_timeout": (1, 1, False),
    "proxy_send_timeout": (1, 1, False),
}
_ESCAPES = {"t": "\t", "r": "\r", "n": "\n"}


@dataclass(frozen=True)
class Directive:
    """One directive: its name, arguments, where it was written, and its block if it has one."""

    name: str
    args: tuple[str, ...]
    file: str
    line: int
    block: tuple[Directive, ...] | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def text(self, limit: int = 70) -> str:
        """The directive as written, shortened: `proxy_set_header Host $host`."""
        words = [self.name, *(a if a and " " not in a else f'"{a}"' for a in self.args)]
        text = " ".join(words)
        return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", ";", "{" or "}"
    value: str
    line: int


@dataclass
class NginxConfig:
    """A parsed config with its includes expanded, and notes about includes not read."""

    directives: tuple[Directive, ...]
    notes: Notes = field(default_factory=Notes)


def parse_nginx(path: Path) -> NginxConfig:
    """Parse the file and everything it includes; SourceError on a syntax error."""
    parser = _Parser(path)
    return NginxConfig(parser.file(path, str(path)), parser.notes)


class _Parser:
    def __init__(self, main: Path) -> None:
        self.prefix = main.resolve().parent
        self.notes = Notes()
        self.stack: list[Path] = []

    def file(self, path: Path, shown: str) -> tuple[Directive, ...]:
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise SourceError(shown, f"{what}; give an nginx configuration file")
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise SourceError(shown, f"cannot be read: {exc}") from exc
        self.stack.append(path.resolve())
        try:
            return _Block(_tokens(text, shown), shown, self).read(depth=0)
        finally:
            self.stack.pop()

    def include(self, directive: Directive) -> list[Directive]:
        if len(directive.args) != 1:
            raise SourceError(
                directive.file, "include takes one file name or pattern", directive.line
            )
        pattern = os.path.expanduser(directive.args[0])
        if len(self.stack) > _MAX_INCLUDE_DEPTH:
            raise SourceError(
                directive.file, f"includes nest deeper than {_MAX_INCLUDE_DEPTH}", directive.line
            )
        bases = [Path("/")] if os.path.isabs(pattern) else [self.prefix, self.stack[-1].parent]
        is_glob = glob.has_magic(pattern)
        for base in dict.fromkeys(bases):
            full = str(base / pattern)
            matches = (
                sorted(glob.glob(full)) if is_glob else ([full] if os.path.isfile(full) else [])
            )
            if matches:
                break
        else:
            if not is_glob:
                why = "file not found, so the directives in it were not read"
                if pattern.endswith("mime.types"):
                    self.notes.handle(
                        directive.where, directive.text(), "kanri has its own MIME types"
                    )
                else:
                    self.notes.drop(directive.where, directive.text(), why)
            return []
        out: list[Directive] = []
        for match in matches:
            path = Path(match)
            if path.resolve() in self.stack:
                raise SourceError(directive.file, f"{match} includes itself", directive.line)
            out.extend(self.file(path, self.shown(path)))
        return out

    def shown(self, path: Path) -> str:
        resolved = path.resolve()
        if resolved.is_relative_to(self.prefix):
            return str(resolved.relative_to(self.prefix))
        return str(path)


class _Block:
    """Directives from a token stream, each block read recursively."""

    def __init__(self, tokens: Iterator[_Token], shown: str, parser: _Parser) -> None:
        self.tokens = tokens
        self.shown = shown
        self.parser = parser
        self.last_line = 1

    def error(self, line: int, message: str) -> SourceError:
        return SourceError(self.shown, message, line)

    def check_shape(self, name: str, count: int, block: bool, line: int) -> None:
        shape = _SHAPES.get(name)
        if shape is None:
            return
        least, most, has_block = shape
        if has_block and not block:
            raise self.error(line, f'directive "{name}" has no opening "{{"')
        if block and not has_block:
            raise self.error(line, f'directive "{name}" takes no block: unexpected "{{"')
        if not least <= count <= most:
            raise self.error(line, f'invalid number of arguments in "{name}" directive')

    def read(self, depth: int) -> tuple[Directive, ...]:
        out: list[Directive] = []
        words: list[_Token] = []
        for token in self.tokens:
            self.last_line = token.line
            if token.kind == "word":
                words.append(token)
                continue
            if token.kind == "}":
                if words:
                    raise self.error(token.line, f'unexpected "}}": "{words[0].value}" needs a ";"')
                if depth == 0:
                    raise self.error(token.line, 'unexpected "}" with no block open')
                return tuple(out)
            if not words:
                raise self.error(token.line, f'unexpected "{token.kind}"')
            name, args = words[0].value, tuple(w.value for w in words[1:])
            self.check_shape(name, len(args), token.kind == "{", words[0].line)
            if token.kind == "{":
                block = self.read(depth + 1)
                out.append(Directive(name, args, self.shown, words[0].line, block))
            else:
                directive = Directive(name, args, self.shown, words[0].line)
                if name == "include":
                    out.extend(self.parser.include(directive))
                else:
                    out.append(directive)
            words = []
        if words:
            raise self.error(
                self.last_line, f'unexpected end of file: "{words[0].value}" needs a ";"'
            )
        if depth > 0:
            raise self.error(self.last_line, 'unexpected end of file: a block is missing its "}"')
        return tuple(out)


def _tokens(text: str, shown: str) -> Iterator[_Token]:
    i, line, n = 0, 1, len(text)
    while i < n:
        char = text[i]
        if char == "\n":
            line += 1
            i += 1
        elif char.isspace():
            i += 1
        elif char == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif char in ";{}":
            yield _Token(char, char, line)
            i += 1
        elif char in "\"'":
            start_line = line
            out: list[str] = []
            i += 1
            while i < n and text[i] != char:
                if text[i] == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    out.append(nxt if nxt in "\"'\\" else _ESCAPES.get(nxt, "\\" + nxt))
                    i += 2
                    continue
                line += text[i] == "\n"
                out.append(text[i])
                i += 1
            if i >= n:
                raise SourceError(shown, f"unclosed {char} quote", start_line)
            i += 1
            yield _Token("word", "".join(out), start_line)
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in ";{}":
                if text[i] == "$" and text[i + 1 : i + 2] == "{":
                    close = text.find("}", i)
                    i = close + 1 if close != -1 else n
                    continue
                i += 2 if text[i] == "\\" else 1
            yield _Token("word", text[start:i], line)
