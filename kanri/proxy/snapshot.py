"""The routing snapshot: what the daemon tells the proxy workers.

A snapshot is immutable. The daemon builds a new one whenever the routes change
or an instance enters or leaves the ready set, and pushes it to every worker;
a worker never routes to an upstream that is not in its current snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from kanri.proxy.settings import RouteSource, RouteSpec


@dataclass(frozen=True, slots=True)
class Upstream:
    """One ready instance of an app, as the proxy sees it."""

    key: str  # unique for the life of one instance process, e.g. "web:0#3"
    app: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class AppTargets:
    """The ready instances of one app and how to balance over them."""

    name: str
    upstreams: tuple[Upstream, ...] = ()
    balance: Literal["round_robin", "least_conn"] = "round_robin"
    health: str | None = None  # HTTP path for active health checks; None = no active checks
    health_interval: float = 10.0
    # An instance is starting or about to restart: with none ready, a request waits
    # for it (up to the proxy's queue_timeout) rather than getting a 503 at once.
    coming: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Routes plus the ready instances of every app, at one moment."""

    version: int
    routes: tuple[RouteSource, ...] = ()
    apps: Mapping[str, AppTargets] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The daemon passes its validated config routes; keep only their plain values,
        # so a snapshot never carries a pydantic model into a worker.
        object.__setattr__(self, "routes", tuple(RouteSpec.of(r) for r in self.routes))
