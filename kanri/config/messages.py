"""Plain-words messages for config problems: pydantic's errors, TOML syntax, did-you-mean.

Every message says what was wrong and what is accepted; none shows pydantic's
jargon or links.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from kanri.config.model import AppConfig, ProxyConfig, Route

Loc = tuple[str | int, ...]

# Keys a PM2 or nginx user is likely to write, and what kanri calls them.
_ALIASES: dict[type[BaseModel], dict[str, str]] = {
    AppConfig: {
        "script": "command",
        "exec_interpreter": "interpreter",
        "max_memory_restart": "max_memory",
        "cron": "cron_restart",
        "listen_timeout": "ready_timeout",
        "exp_backoff_restart_delay": 'backoff = "exponential" with restart_delay',
        "uid": "user",
        "gid": "group",
        "error_log": "error_file",
        "err_file": "error_file",
        "out_log": "out_file",
        "dependencies": "depends_on",
    },
    ProxyConfig: {
        "bind": "listen",
        "port": 'listen, e.g. listen = ["127.0.0.1:8080"]',
        "worker_processes": "workers",
        "worker_connections": "max_connections",
    },
    Route: {
        "location": "path",
        "root": "static",
        "alias": "static",
        "proxy_pass": "app",
        "upstream": "app",
        "server_name": "host",
        "expires": "cache",
        "try_files": "fallback",
    },
}

_REQUIRED_HINTS: dict[str, str] = {
    "command": 'the command line that starts the app, e.g. command = "node server.js"',
    "path": 'the URL prefix this route matches, e.g. path = "/api/"',
}

# What a union-typed key accepts, for errors where no single member of the union fits.
_UNION_ACCEPTS: dict[str, str] = {
    "watch": 'true, false, or a list of paths to watch, e.g. ["src", "config"]',
    "access_log": 'true, false, or a file path, e.g. "logs/access.log"',
}

_TYPE_WANTED: dict[str, str] = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a table",
    "tuple_type": "a list",
    "list_type": "a list",
    "path_type": "a path string",
}

_TOML_POSITION = re.compile(r"^(.*) \(at (?:line (\d+), column (\d+)|end of document)\)$")


def translate(model: type[BaseModel], errors: list[ErrorDetails]) -> list[tuple[Loc, str]]:
    """Key paths (relative to the table) and messages for one model's validation errors."""
    out: list[tuple[Loc, str]] = []
    unions = _union_fields(model)
    by_union: dict[str, list[ErrorDetails]] = {}
    # Unknown keys first: a misspelt key usually explains the "required" error after it.
    for error in sorted(errors, key=lambda error: error["type"] != "extra_forbidden"):
        loc = error["loc"]
        if loc and loc[0] in unions and len(loc) > 1 and isinstance(loc[1], str):
            by_union.setdefault(str(loc[0]), []).append(error)
            continue
        out.append(_one_error(model, error))
    for field, group in by_union.items():
        # Each member of a union reports its own failure; the one that got furthest
        # (into a list item, say) is the useful one, otherwise say what the key accepts.
        deepest = max(group, key=lambda error: len(error["loc"]))
        if len(deepest["loc"]) > 2:
            out.append(_one_error(model, deepest, (field, *deepest["loc"][2:])))
        else:
            accepts = _UNION_ACCEPTS.get(field, "a value of the documented type")
            out.append(((field,), f"expected {accepts}, got {describe(deepest['input'])}"))
    return out


def _one_error(
    model: type[BaseModel], error: ErrorDetails, at: Loc | None = None
) -> tuple[Loc, str]:
    loc: Loc = tuple(error["loc"]) if at is None else at
    kind = error["type"]
    value = error.get("input")
    field = str(loc[0]) if loc and isinstance(loc[0], str) else ""
    if model is AppConfig and loc[:1] == ("env_profiles",) and len(loc) > 1:
        loc = (f"env_{loc[1]}", *loc[2:])

    if kind == "missing":
        hint = _REQUIRED_HINTS.get(field)
        return loc, f"`{field}` is required" + (f": {hint}" if hint else "")
    if kind == "extra_forbidden":
        return loc, unknown_key(field, _model_keys(model), _ALIASES.get(model, {}))
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
        return loc, f"{value!r} is not allowed; use one of: {', '.join(allowed)}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return loc, _range_message(model, field, value)
    if kind == "string_too_short":
        hint = _REQUIRED_HINTS.get(field)
        return loc, "an empty string is not allowed" + (f"; give {hint}" if hint else "")
    if kind in ("value_error", "assertion_error"):
        cause = (error.get("ctx") or {}).get("error")
        return loc, str(cause) if cause is not None else _strip_prefix(error["msg"])
    wanted = _TYPE_WANTED.get(kind)
    if wanted is not None:
        in_env = model is AppConfig and field in ("env", "env_profiles")
        if in_env and kind == "string_type":
            wanted = "a string, number or true/false"
        elif in_env and kind == "dict_type" and len(loc) == 1 and loc != ("env",):
            wanted = f"a table of environment variables for `--env {str(loc[0])[4:]}`"
        elif in_env and kind == "dict_type":
            wanted = 'a table of environment variables, e.g. env = { NODE_ENV = "production" }'
        return loc, f"expected {wanted}, got {describe(value)}"
    message = _strip_prefix(error["msg"])
    if message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ")
    return loc, f"{message}, got {describe(value)}"


def _strip_prefix(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _range_message(model: type[BaseModel], field: str, value: object) -> str:
    low: int | float | None = None
    high: int | float | None = None
    info = model.model_fields.get(field)
    for item in info.metadata if info is not None else ():
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
    if low is not None and high is not None:
        accepted = f"a whole number from {low} to {high}"
    elif low is not None:
        accepted = f"a whole number >= {low}"
    else:
        accepted = f"a whole number <= {high}"
    return f"{value!r} is out of range; use {accepted}"


def _union_fields(model: type[BaseModel]) -> set[str]:
    """Fields typed as a union of two or more types (not just "X or nothing")."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        if typing.get_origin(info.annotation) in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(info.annotation) if a is not type(None)]
            if len(members) > 1:
                names.add(name)
    return names


def _model_keys(model: type[BaseModel]) -> list[str]:
    """The keys a user may write in a table of this model."""
    keys = [name for name in model.model_fields if name not in ("name", "env_profiles")]
    if model is AppConfig:
        keys += ["autorestart", "env_<profile>"]
    return keys


def unknown_key(key: str, allowed: Iterable[str], aliases: Mapping[str, str]) -> str:
    if key in aliases:
        return f"unknown key `{key}`; kanri calls it `{aliases[key]}`"
    choices = list(allowed)
    close = difflib.get_close_matches(key, choices, n=1)
    if close:
        return f"unknown key `{key}`; did you mean `{close[0]}`?"
    return f"unknown key `{key}`; allowed keys: {', '.join(sorted(choices))}"


def unknown_app(name: str, app_names: Sequence[str]) -> str:
    if not app_names:
        return f"no app named {name!r}; the file defines no apps"
    close = difflib.get_close_matches(name, app_names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"no app named {name!r}; {hint}apps defined: {', '.join(app_names)}"


def describe(value: object) -> str:
    """What a TOML value is, for messages: "a string ('3')"."""
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, str):
        kind = "a string"
    elif isinstance(value, int):
        kind = "a whole number"
    elif isinstance(value, float):
        kind = "a number"
    elif isinstance(value, list):
        kind = "a list"
    elif isinstance(value, dict):
        kind = "a table"
    elif isinstance(value, datetime | date | time):
        kind = "a date/time"
        return f"{kind} ({value.isoformat()})"
    else:
        kind = "a value"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kind} ({text})"


def port_span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def toml_syntax_message(error: str, text: str) -> str:
    match = _TOML_POSITION.match(error)
    if match is None:
        return f"TOML syntax error: {error}"
    what = match.group(1)
    what = what[:1].lower() + what[1:]
    if match.group(2) is None:
        line = text.count("\n") + (0 if text.endswith("\n") else 1)
        return f"TOML syntax error at the end of the file (line {line}): {what}"
    return f"TOML syntax error at line {match.group(2)}, column {match.group(3)}: {what}"
