"""The HTTP data plane: listen sockets, worker processes, routing, upstreams, static files.

The daemon binds the listen sockets once (``bind_listeners``), runs the worker
processes (``ProxyWorkers``) and publishes a routing ``Snapshot`` whenever
routes or the set of ready instances change. Modules:

    listeners   bind the listen sockets (daemon side)
    workers     start, restart, feed and stop worker processes (daemon side)
    control     the framed control channel between daemon and worker
    worker      the worker process entry point
    settings    the plain settings and routes a worker receives (no pydantic)
    state       per-worker shared state and the deadline sweeper
    http        client connections: parsing, limits, pipelining, answers
    upstream    pools, balancing, health, and relaying responses
    routing     the compiled routing table
    static      static files
    accesslog   the buffered access log
    errors      proxy errors and canned error answers
"""

from typing import TYPE_CHECKING

from kanri.proxy.errors import ListenError, ProxyError
from kanri.proxy.listeners import bind_listeners
from kanri.proxy.snapshot import AppTargets, Snapshot, Upstream

if TYPE_CHECKING:
    from kanri.proxy.workers import ProxyWorkers, WorkerStats


def __getattr__(name: str) -> object:
    # The daemon's side is imported on first use: every worker process imports this
    # package too, and would otherwise carry ProxyWorkers (and ctypes) for nothing.
    if name in ("ProxyWorkers", "WorkerStats"):
        from kanri.proxy import workers

        return getattr(workers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AppTargets",
    "ListenError",
    "ProxyError",
    "ProxyWorkers",
    "Snapshot",
    "Upstream",
    "WorkerStats",
    "bind_listeners",
]
