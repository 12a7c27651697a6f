"""Durations and sizes as PM2 and nginx write them, turned into kanri's unit strings.

PM2 counts time in milliseconds and memory in bytes (or "300M"); nginx writes
times as "60", "60s", "1m", "12M" (months!) and sizes as "20m" (mebibytes).
kanri wants explicit units whose meaning does not depend on the tool.
"""

from __future__ import annotations

import re

from kanri.config.units import parse_duration

_NGINX_TIME_UNITS = {
    "ms": 0.001,
    "": 1.0,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "M": 30 * 86400.0,
    "y": 365 * 86400.0,
}
_NGINX_TIME_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|M|y)?")
_NGINX_SIZE = re.compile(r"(\d+)([kKmMgG]?)")
_PM2_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([KMG]?)B?", re.IGNORECASE)
_BINARY = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_WHOLE_UNITS = (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration_from_seconds(seconds: float) -> str:
    """A kanri duration for a number of seconds, in the largest unit that divides it."""
    seconds = abs(seconds)  # callers refuse negative times; this turns -0.0 into 0.0
    if seconds != int(seconds) or seconds == 0:
        return f"{seconds * 1000:.3f}".rstrip("0").rstrip(".") + "ms"
    whole = int(seconds)
    for unit, size in _WHOLE_UNITS:
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"  # unreachable: 1 divides everything


def duration_from_ms(ms: float) -> str:
    return duration_from_seconds(ms / 1000)


def pm2_duration(value: object) -> str:
    """PM2 timings: a number of milliseconds, or a string such as "1000" or "5s"."""
    if isinstance(value, bool):
        raise ValueError("expected milliseconds")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a negative time")
        return duration_from_ms(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            return duration_from_ms(float(text))
        parse_duration(text.lower())
        return text.lower().replace(" ", "")
    raise ValueError("expected milliseconds")


def size_text(n: int) -> str:
    """An exact kanri size for a byte count: 314572800 -> "300MiB"."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n}B"


def pm2_memory(value: object) -> str:
    """PM2's max_memory_restart: bytes as a number, or "300M" / "1G" / "512K" (powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError("expected a size")
    if isinstance(value, int | float):
        return size_text(int(value))
    if isinstance(value, str):
        match = _PM2_MEMORY.fullmatch(value.strip())
        if match:
            number, unit = match.group(1), match.group(2).upper()
            if unit and "." not in number:
                return f"{number}{unit}iB"
            return size_text(int(float(number) * _BINARY[unit]))
    raise ValueError("expected a size")


def nginx_time(text: str) -> float:
    """Seconds for an nginx time ("60", "60s", "1m30s", "12M" = 12 months); ValueError otherwise."""
    compact = text.replace(" ", "")
    if not compact or not re.fullmatch(r"(?:\d+(?:ms|s|m|h|d|w|M|y)?)+", compact):
        raise ValueError(f"{text!r} is not an nginx time")
    return sum(
        int(number) * _NGINX_TIME_UNITS[unit or ""]
        for number, unit in _NGINX_TIME_PART.findall(compact)
    )


def nginx_size(text: str) -> int:
    """Bytes for an nginx size ("20m", "512k", "1g", "1024"); ValueError otherwise."""
    match = _NGINX_SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an nginx size")
    return int(match.group(1)) * _BINARY[match.group(2).upper()]
