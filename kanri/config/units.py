"""Durations and sizes as users write them: "500ms", "30s", "5m"; "512MiB", "1MB".

Bare numbers are refused on purpose: `kill_timeout = 5` could mean seconds or
milliseconds (PM2 uses milliseconds), so the unit must be written.
"""

from __future__ import annotations

import re

_DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "y": 365 * 86400.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_DURATION_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w|y))+")

_SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")

DURATION_HELP = 'write a number with a unit: "500ms", "30s", "5m", "1h" (units: ms s m h d w y)'
SIZE_HELP = 'write a number with a unit: "512KiB", "1MiB", "10MB" (units: B KiB MiB GiB KB MB GB)'


def parse_duration(value: object) -> float:
    """Return seconds for a duration string such as "1m30s"; raise ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a duration string, got {type(value).__name__}; {DURATION_HELP}")
    if not isinstance(value, str):
        raise ValueError(f"bare number {value!r} has no unit; {DURATION_HELP}")
    text = value.strip().lower().replace(" ", "")
    if not _DURATION_WHOLE.fullmatch(text):
        raise ValueError(f"{value!r} is not a duration; {DURATION_HELP}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))


def parse_size(value: object) -> int:
    """Return bytes for a size string such as "512MiB"; raise ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a size string, got {type(value).__name__}; {SIZE_HELP}")
    if not isinstance(value, str):
        raise ValueError(f"bare number {value!r} has no unit; {SIZE_HELP}")
    match = _SIZE.fullmatch(value.strip().lower())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"{value!r} is not a size; {SIZE_HELP}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def format_duration(seconds: float) -> str:
    """Short human form of a duration: 0.5 -> "500ms", 90 -> "1m30s"."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            out.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(out)


def format_size(n: int) -> str:
    """Short human form of a byte count: 1536 -> "1.5KiB"."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    raise AssertionError("unreachable")
