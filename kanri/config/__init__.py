"""kanri.toml: its typed shape (model), units (durations, sizes) and loading (loader).

Everything else in kanri takes a validated, frozen ``Config`` from ``load_config``
and never reads the file itself.
"""

from kanri.config.loader import load_config
from kanri.config.model import AppConfig, Config, ProxyConfig, Route, parse_listen
from kanri.config.units import format_duration, format_size, parse_duration, parse_size

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
