"""kanri.toml: its typed shape (model), units (durations, sizes) and loading (loader).

Everything else in kanri takes a validated, frozen ``Config`` from ``load_config``
and never reads the file itself. The loader (TOML, error messages) is imported
on first use of ``load_config``: the background daemon gets its Config already
loaded and needs it only to reload.
"""

from typing import TYPE_CHECKING

from kanri.config.model import AppConfig, Config, ProxyConfig, Route, parse_listen
from kanri.config.units import format_duration, format_size, parse_duration, parse_size

if TYPE_CHECKING:
    from kanri.config.loader import load_config


def __getattr__(name: str) -> object:
    if name == "load_config":
        from kanri.config.loader import load_config

        return load_config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AppConfig",
    "Config",
    "ProxyConfig",
    "Route",
    "format_duration",
    "format_size",
    "load_config",
    "parse_duration",
    "parse_listen",
    "parse_size",
]
