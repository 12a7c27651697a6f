"""The worker's own copy of the proxy settings and routes: plain, frozen, stdlib only.

The daemon validates kanri.toml into pydantic models; a worker only needs their
values. Sending these slotted dataclasses over the control channel instead of
the models keeps pydantic (about 14 MiB of RSS) out of every worker process:
nothing a worker imports may import ``kanri.config``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from kanri.config.model import ProxyConfig


class RouteSource(Protocol):
    """What a route must provide to be compiled: the config's ``Route`` or a ``RouteSpec``."""

    @property
    def path(self) -> str: ...
    @property
    def host(self) -> str | None: ...
    @property
    def exact(self) -> bool: ...
    @property
    def app(self) -> str | None: ...
    @property
    def strip_prefix(self) -> bool: ...
    @property
    def static(self) -> Path | None: ...
    @property
    def index(self) -> str | None: ...
    @property
    def fallback(self) -> str | None: ...
    @property
    def cache_control(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One validated route, as the workers receive it."""

    path: str
    host: str | None = None
    exact: bool = False
    app: str | None = None
    strip_prefix: bool = False
    static: Path | None = None
    index: str | None = "index.html"
    fallback: str | None = None
    cache_control: str | None = None  # the header value, already derived from ``cache``

    @classmethod
    def of(cls, route: RouteSource) -> RouteSpec:
        if isinstance(route, RouteSpec):
            return route
        return cls(
            path=route.path,
            host=route.host,
            exact=route.exact,
            app=route.app,
            strip_prefix=route.strip_prefix,
            static=route.static,
            index=route.index,
            fallback=route.fallback,
            cache_control=route.cache_control,
        )


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """The ``[proxy]`` values a worker uses (see ``kanri.config.model.ProxyConfig``)."""

    client_max_body_size: int
    max_header_size: int
    client_header_timeout: float
    client_body_timeout: float
    keepalive_timeout: float
    send_timeout: float
    connect_timeout: float
    read_timeout: float
    write_timeout: float
    queue_timeout: float
    max_connections: int
    upstream_keepalive: int
    max_fails: int
    fail_timeout: float
    server: str | None
    access_log: bool | Path
    access_log_format: Literal["combined", "json"]

    @classmethod
    def of(cls, config: ProxyConfig) -> ProxySettings:
        return cls(
            client_max_body_size=config.client_max_body_size,
            max_header_size=config.max_header_size,
            client_header_timeout=config.client_header_timeout,
            client_body_timeout=config.client_body_timeout,
            keepalive_timeout=config.keepalive_timeout,
            send_timeout=config.send_timeout,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            write_timeout=config.write_timeout,
            queue_timeout=config.queue_timeout,
            max_connections=config.max_connections,
            upstream_keepalive=config.upstream_keepalive,
            max_fails=config.max_fails,
            fail_timeout=config.fail_timeout,
            server=config.server,
            access_log=config.access_log,
            access_log_format=config.access_log_format,
        )
