"""The kanri.toml an import produces, before it is text: tables, comments and notes.

Importers fill a ``Draft``; ``render`` turns it into a commented TOML file whose
head lists what to fill in, what to check, and every option not carried over.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

TomlValue = str | int | float | bool | list["TomlValue"] | dict[str, "TomlValue"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_LIST_WIDTH = 80


@dataclass
class Table:
    """One TOML table: ordered keys, comment lines above keys, and lines above the header."""

    values: dict[str, TomlValue] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    def set(self, key: str, value: TomlValue, note: str | None = None) -> None:
        self.values[key] = value
        if note:
            self.note(key, note)

    def note(self, key: str, text: str) -> None:
        self.notes.setdefault(key, []).append(text)

    def drop(self, key: str) -> None:
        self.values.pop(key, None)
        self.notes.pop(key, None)


@dataclass
class AppDraft:
    """One ``[apps.NAME]`` table with its env and env_<profile> tables."""

    name: str
    main: Table = field(default_factory=Table)
    env: dict[str, TomlValue] = field(default_factory=dict)
    profiles: dict[str, dict[str, TomlValue]] = field(default_factory=dict)


@dataclass(frozen=True)
class Note:
    where: str  # "ecosystem.config.js" or "mysite.conf:12"
    what: str  # the option as written, e.g. 'apps[0].log_date_format "YYYY"' or "gzip on"
    why: str


@dataclass
class Notes:
    """What the reader of the generated file must know, by kind."""

    todo: list[str] = field(default_factory=list)
    check: list[str] = field(default_factory=list)
    dropped: list[Note] = field(default_factory=list)
    handled: list[Note] = field(default_factory=list)

    def drop(self, where: str, what: str, why: str) -> None:
        self.dropped.append(Note(where, what, why))

    def handle(self, where: str, what: str, why: str) -> None:
        self.handled.append(Note(where, what, why))

    def extend(self, other: Notes) -> None:
        self.todo.extend(other.todo)
        self.check.extend(other.check)
        self.dropped.extend(other.dropped)
        self.handled.extend(other.handled)


@dataclass
class Draft:
    """A whole kanri.toml to be written: sources, notes, proxy, routes and apps."""

    sources: list[str] = field(default_factory=list)
    notes: Notes = field(default_factory=Notes)
    proxy: Table | None = None
    routes: list[Table] = field(default_factory=list)
    apps: dict[str, AppDraft] = field(default_factory=dict)


def render(draft: Draft) -> str:
    """The commented kanri.toml text of a draft."""
    out = ["# kanri.toml written by `kanri import` from:"]
    out += [f"#   {source}" for source in draft.sources]
    out.append("# Check it with `kanri check`; docs/config.md describes every key.")
    notes = draft.notes
    if notes.todo:
        out += ["#", "# To fill in before `kanri up`:"]
        out += [f"#   - {line}" for line in notes.todo]
    if notes.check:
        out += ["#", "# To check:"]
        out += [f"#   - {line}" for line in notes.check]
    if notes.dropped:
        out.append("#")
        out += [f"# not carried over: {line}" for line in _grouped(notes.dropped)]
    if notes.handled:
        out.append("#")
        out += [
            f"# done by kanri without configuration: {line}" for line in _grouped(notes.handled)
        ]

    if draft.proxy is not None and (draft.proxy.values or draft.proxy.comments):
        out += _table("[proxy]", draft.proxy)
    for route in draft.routes:
        out += _table("[[routes]]", route)
    for app in draft.apps.values():
        head = f"apps.{toml_key(app.name)}"
        out += _table(f"[{head}]", app.main)
        if app.env:
            out += _table(f"[{head}.env]", Table(values=dict(app.env)))
        for profile, env in app.profiles.items():
            out += _table(f"[{head}.{toml_key('env_' + profile)}]", Table(values=dict(env)))
    return "\n".join(out) + "\n"


def _grouped(notes: list[Note]) -> list[str]:
    """One line per (what, why), naming every place it was found: "a.conf:3,9"."""
    groups: dict[tuple[str, str], list[str]] = {}
    for note in notes:
        groups.setdefault((note.what, note.why), []).append(note.where)
    lines = []
    for (what, why), wheres in groups.items():
        lines.append(f"{_join_places(wheres)}: {what}: {why}")
    return lines


def _join_places(wheres: list[str]) -> str:
    by_file: dict[str, list[str]] = {}
    for where in dict.fromkeys(wheres):
        file, sep, line = where.rpartition(":")
        if sep and line.isdigit():
            by_file.setdefault(file, []).append(line)
        else:
            by_file.setdefault(where, [])
    return ", ".join(
        f"{file}:{','.join(lines)}" if lines else file for file, lines in by_file.items()
    )


def _table(header: str, table: Table) -> list[str]:
    out = [""]
    out += [f"# {line}" for line in table.comments]
    out.append(header)
    for key, value in table.values.items():
        out += [f"# {line}" for line in table.notes.get(key, [])]
        out.append(f"{toml_key(key)} = {toml_value(value)}")
    return out


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_string(text: str) -> str:
    """A TOML basic string; JSON's escapes are TOML's, plus DEL, which TOML also forbids raw."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        items = [toml_value(item) for item in value]
        one_line = "[" + ", ".join(items) + "]"
        if len(one_line) <= _LIST_WIDTH:
            return one_line
        return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
    pairs = [f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()]
    return "{ " + ", ".join(pairs) + " }" if pairs else "{}"
