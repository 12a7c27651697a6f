"""Per-worker state shared by every connection of one proxy worker process.

One WorkerState per process, owned by ``worker.serve``. Connections read the
config-derived constants and the current routing table from it, and register
themselves so the sweeper can enforce deadlines: instead of a timer per
request, each connection keeps one ``deadline`` number that it moves as its
state changes, and one task per worker expires the overdue ones a few times a
second. ``clock.now`` is that task's idea of the time, so the hot path never
asks the kernel for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Protocol

from kanri.proxy.routing import RouteTable
from kanri.proxy.settings import ProxySettings
from kanri.proxy.upstream import UpstreamSet

if TYPE_CHECKING:
    from kanri.proxy.accesslog import AccessLog


class Expiring(Protocol):
    deadline: float

    def on_deadline(self) -> None: ...


class Clock:
    """Loop time and the Date header, refreshed by the sweeper.

    Requests are timed in loop time (monotonic); ``wall_offset`` turns one of
    those times into wall-clock time, for the access log.
    """

    __slots__ = ("_loop", "_second", "date_line", "now", "wall_offset")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._second = -1
        self.now = loop.time()
        self.wall_offset = 0.0
        self.date_line = b""
        self.tick()

    def tick(self) -> None:
        self.now = self._loop.time()
        wall = time.time()
        self.wall_offset = wall - self.now
        second = int(wall)
        if second != self._second:
            self._second = second
            self.date_line = b"Date: %s\r\n" % formatdate(second, usegmt=True).encode("ascii")


@dataclass(slots=True)
class Counters:
    """What a worker reports through ``ProxyWorkers.stats``."""

    requests: int = 0
    responses_5xx: int = 0
    bytes_out: int = 0
    connections: int = 0  # currently open client connections


class WorkerState:
    """Everything the connections of one worker share."""

    def __init__(
        self,
        config: ProxySettings,
        loop: asyncio.AbstractEventLoop,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        access_log: AccessLog | None,
    ) -> None:
        self.config = config
        self.loop = loop
        self.clock = Clock(loop)
        self.counters = Counters()
        self.table = RouteTable(())
        self.upstreams = UpstreamSet(self)
        self.spawn = spawn
        self.access_log = access_log
        self.draining = False
        self.server_line = b"Server: %s\r\n" % config.server.encode() if config.server else b""
        self.max_body = config.client_max_body_size  # 0 = unlimited, as in nginx
        self.max_header = config.max_header_size
        self.read_timeout = config.read_timeout
        self.clients: set[Expiring] = set()
        self.upstream_conns: set[Expiring] = set()
        self.all_closed = asyncio.Event()
        timeouts = [
            config.client_header_timeout,
            config.client_body_timeout,
            config.keepalive_timeout,
            config.send_timeout,
            config.connect_timeout,
            config.read_timeout,
            config.write_timeout,
        ]
        self.tick = min(1.0, max(0.02, min(timeouts) / 10))

    async def sweep(self) -> None:
        """Expire overdue connections, forever; the only timer of the worker's hot path."""
        clock = self.clock
        while True:
            await asyncio.sleep(self.tick)
            clock.tick()
            now = clock.now
            for group in (self.clients, self.upstream_conns):
                overdue = [c for c in group if 0.0 < c.deadline <= now]
                for conn in overdue:
                    conn.deadline = 0.0
                    conn.on_deadline()
