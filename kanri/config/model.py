"""The typed, frozen shape of kanri.toml.

Every model forbids unknown keys; the loader turns pydantic's errors into
ConfigProblems with key paths and did-you-mean hints. Paths (cwd, static roots,
log files) are resolved against the config file's directory, passed in the
validation context as ``root``.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kanri.config.units import parse_duration, parse_size

Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written in the file with a unit ("30s")."""
Size = Annotated[int, BeforeValidator(parse_size)]
"""Bytes, written in the file with a unit ("512MiB")."""

# Counts, ports and switches are strict: TOML has real integers and booleans, so
# port = "80" or exact = "yes" is a mistake to report, not something to coerce.

APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RestartPolicy = Literal["always", "on-failure", "never"]


def _root(info: ValidationInfo) -> Path:
    context = info.context or {}
    root = context.get("root")
    return Path(root) if root is not None else Path.cwd()


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) or 1


def _resolve(value: Path | None, info: ValidationInfo) -> Path | None:
    if value is None:
        return None
    return (_root(info) / value.expanduser()).resolve()


class _Frozen(BaseModel):
    # defer_build: validators are built at the first validation, not at import. The
    # background daemon receives its Config already validated (kanri.background) and
    # so never builds them, nor loads what pydantic needs to, unless it reloads.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class AppConfig(_Frozen):
    """One ``[apps.NAME]`` table: how to run, keep alive and stop an app."""

    name: str = ""  # filled from the table's key by the loader
    command: str = Field(min_length=1)
    args: tuple[str, ...] = ()
    interpreter: str | None = None
    cwd: Path | None = None
    env: dict[str, str] = Field(default_factory=dict)
    env_profiles: dict[str, dict[str, str]] = Field(default_factory=dict)
    instances: int = 1
    port: StrictInt | None = Field(default=None, ge=1, le=65535)
    health: str | None = None
    ready: Literal["port", "started"] = "port"
    health_interval: Duration = 10.0
    restart: RestartPolicy = "always"
    min_uptime: Duration = 5.0
    max_restarts: StrictInt = Field(default=10, ge=0)
    restart_delay: Duration = 0.1
    backoff: Literal["exponential", "fixed"] = "exponential"
    max_restart_delay: Duration = 15.0
    errored_retry: Duration = 60.0
    max_memory: Size | None = None
    cron_restart: str | None = None
    watch: StrictBool | tuple[Path, ...] = False
    ignore_watch: tuple[str, ...] = ()
    kill_signal: str = "SIGTERM"
    kill_timeout: Duration = 10.0
    ready_timeout: Duration = 30.0
    drain_timeout: Duration = 30.0
    depends_on: tuple[str, ...] = ()
    balance: Literal["round_robin", "least_conn"] = "round_robin"
    out_file: Path | None = None
    error_file: Path | None = None
    log_max_size: Size = 10 * 1024 * 1024
    log_backups: StrictInt = Field(default=5, ge=0, le=1000)
    user: str | None = None
    group: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _collect_env_profiles(cls, data: Any) -> Any:
        """Move ``env_<name>`` tables (PM2's per-environment env) into env_profiles."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        profiles = dict(data.pop("env_profiles", {}) or {})
        for key in [k for k in data if isinstance(k, str) and k.startswith("env_")]:
            profiles[key[4:]] = data.pop(key)
        if "autorestart" in data:  # PM2's spelling: false means never restart
            auto = data.pop("autorestart")
            if not isinstance(auto, bool):
                raise ValueError("autorestart must be true or false (or use restart = ...)")
            if not auto:
                data.setdefault("restart", "never")
        if profiles:
            data["env_profiles"] = profiles
        return data

    @field_validator("env", mode="before")
    @classmethod
    def _env_values(cls, value: Any) -> Any:
        return _stringify_env(value)

    @field_validator("env_profiles", mode="before")
    @classmethod
    def _env_profile_values(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: _stringify_env(v) for k, v in value.items()}

    @field_validator("instances", mode="before")
    @classmethod
    def _instances(cls, value: Any) -> Any:
        if value == "max":
            return _cpu_count()
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(
                f'{value!r} is not an instance count; use a whole number >= 1 or "max"'
            )
        if value < 1:
            raise ValueError(f'{value} instances is too few; use a whole number >= 1 or "max"')
        return value

    @model_validator(mode="after")
    def _health_needs_a_port(self) -> AppConfig:
        if self.ready == "started" and self.health is not None:
            raise ValueError(
                'health is checked on $PORT, but ready = "started" says the app serves no '
                "port; drop one of them"
            )
        return self

    @field_validator("health")
    @classmethod
    def _health(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f'{value!r} is not a URL path; write it from the root, e.g. "/health"')
        return value

    @field_validator("kill_signal")
    @classmethod
    def _signal(cls, value: str) -> str:
        name = value.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        if name not in signal.Signals.__members__:
            raise ValueError(
                f"{value!r} is not a signal; use e.g. SIGTERM, SIGINT, SIGQUIT, SIGHUP"
            )
        return name

    @field_validator("cron_restart")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from croniter import croniter  # only configs with cron_restart pay for it

        if not croniter.is_valid(value):
            raise ValueError(f'{value!r} is not a cron expression; e.g. "0 3 * * *" (03:00 daily)')
        return value

    @field_validator("cwd", "out_file", "error_file")
    @classmethod
    def _paths(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)

    @field_validator("watch", mode="before")
    @classmethod
    def _watch(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        return value

    @field_validator("watch")
    @classmethod
    def _watch_paths(
        cls, value: bool | tuple[Path, ...], info: ValidationInfo
    ) -> bool | tuple[Path, ...]:
        """Watched paths are relative to the app's cwd, as the app itself sees them."""
        if isinstance(value, bool):
            return value
        cwd = info.data.get("cwd")
        base = cwd if isinstance(cwd, Path) else _root(info)
        return tuple((base / path.expanduser()).resolve() for path in value)

    @field_validator("depends_on", mode="before")
    @classmethod
    def _depends(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("args", mode="before")
    @classmethod
    def _args(cls, value: Any) -> Any:
        if isinstance(value, str):
            return shlex.split(value)
        return value

    @property
    def signal(self) -> signal.Signals:
        return signal.Signals[self.kill_signal]


def _stringify_env(value: Any) -> Any:
    """TOML numbers and booleans are allowed as env values; the process sees strings."""
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if isinstance(item, bool):
            out[key] = "true" if item else "false"
        elif isinstance(item, int | float):
            out[key] = str(item)
        else:
            out[key] = item
    return out


class ProxyConfig(_Frozen):
    """The ``[proxy]`` table. Defaults follow nginx's documented ones."""

    listen: tuple[str, ...] = ("127.0.0.1:8080",)
    workers: int = 1
    client_max_body_size: Size = 1024 * 1024
    max_header_size: Size = 32 * 1024
    client_header_timeout: Duration = 60.0
    client_body_timeout: Duration = 60.0
    keepalive_timeout: Duration = 75.0
    send_timeout: Duration = 60.0
    connect_timeout: Duration = 60.0
    read_timeout: Duration = 60.0
    write_timeout: Duration = 60.0
    # With no instance of an app ready but one starting or restarting, a request
    # waits this long for it before its 503; 0 answers 503 at once.
    queue_timeout: Duration = 5.0
    max_connections: StrictInt = Field(default=4096, ge=1)
    # Per instance per worker. The pool only ever holds connections that were in use
    # at once, and closes them after balance.IDLE_TIMEOUT (1.5 s) idle, so a roomy cap
    # costs nothing; a small one (nginx examples use 32) closes and reopens the surplus
    # on every burst: 64 clients on one instance opened 0.25 connections per request
    # and halved requests/s with 32.
    upstream_keepalive: StrictInt = Field(default=512, ge=0)
    max_fails: StrictInt = Field(default=1, ge=0)
    fail_timeout: Duration = 10.0
    server: str | None = "kanri"
    access_log: StrictBool | Path = True
    access_log_format: Literal["combined", "json"] = "combined"

    @field_validator("listen", mode="before")
    @classmethod
    def _listen(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("listen")
    @classmethod
    def _listen_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            parse_listen(address)
        if not value:
            raise ValueError('give at least one address, e.g. ["127.0.0.1:8080"]')
        return value

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: Any) -> Any:
        if value == "auto":
            return _cpu_count()
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'{value!r} is not a worker count; use a whole number >= 1 or "auto"')
        return value

    @field_validator("access_log", mode="before")
    @classmethod
    def _access_log(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            return (_root(info) / Path(value).expanduser()).resolve()
        return value

    @field_validator("server", mode="before")
    @classmethod
    def _server(cls, value: Any) -> Any:
        return None if value is False else value


def parse_listen(address: str) -> tuple[str, int]:
    """Split "host:port" (or "[::1]:port", or ":port") into host and port; raise ValueError."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f'{address!r} is not an address; write "host:port", e.g. "0.0.0.0:8080"')
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"{address!r}: port {port} is out of range 0-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", port


class Route(_Frozen):
    """One ``[[routes]]`` entry: a path prefix (and optional host) sent to an app or a directory."""

    path: str
    host: str | None = None
    exact: StrictBool = False
    app: str | None = None
    strip_prefix: StrictBool = False
    static: Path | None = None
    index: str | None = "index.html"
    fallback: str | None = None
    cache: str | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f'{value!r} must start with "/", e.g. "/api/"')
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host = value.lower()
        bare = host[2:] if host.startswith("*.") else host
        if not bare or "*" in bare or "/" in bare or ":" in bare:
            raise ValueError(
                f'{value!r} is not a host name; write "example.com" or "*.example.com"'
            )
        return host

    @field_validator("static")
    @classmethod
    def _static(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)

    @field_validator("cache")
    @classmethod
    def _cache(cls, value: str | None) -> str | None:
        if value is None or value in ("immutable", "no-cache", "no-store"):
            return value
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Route:
        if self.app is not None and self.static is not None:
            raise ValueError(
                'this route has both app and static; a route needs exactly one of app = "NAME"'
                ' or static = "DIR"'
            )
        if self.app is None and self.static is None:
            raise ValueError(
                'this route has neither app nor static; a route needs exactly one of app = "NAME"'
                ' or static = "DIR"'
            )
        if self.static is not None and self.strip_prefix:
            raise ValueError(
                "strip_prefix is for app routes; static routes always strip the prefix"
            )
        return self

    @property
    def cache_control(self) -> str | None:
        """The Cache-Control header value this route sends for static files."""
        if self.cache is None:
            return None
        if self.cache == "immutable":
            return "public, max-age=31536000, immutable"
        if self.cache in ("no-cache", "no-store"):
            return self.cache
        return f"public, max-age={int(parse_duration(self.cache))}"


class Config(_Frozen):
    """A whole kanri.toml, validated and with paths resolved."""

    file: Path = Path("kanri.toml")
    root: Path = Path(".")
    proxy: ProxyConfig | None = None
    routes: tuple[Route, ...] = ()
    apps: dict[str, AppConfig] = Field(default_factory=dict)
    env_name: str | None = None  # the --env profile applied, if any

    def app_order(self) -> list[str]:
        """App names in an order that starts every app after its depends_on."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for dep in self.apps[name].depends_on:
                visit(dep)
            order.append(name)

        for name in self.apps:
            visit(name)
        return order
