"""Balancing over the ready instances of an app, and their health.

Each ready instance (Upstream) has a Pool in every worker: its idle keep-alive
connections (at most ``upstream_keepalive``), its in-flight count (for
least_conn) and its health. Passive health: ``max_fails`` failures within
``fail_timeout`` take an instance out of rotation for ``fail_timeout``.
Active health: a failed check of the app's ``health`` path takes it out until
the next good check.

If every instance of an app is out of rotation, all of them are tried anyway:
the supervisor says they are ready, and answering 502 without trying (nginx's
"no live upstreams") turns one hiccup into an outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import TYPE_CHECKING, Final

from kanri.proxy.snapshot import AppTargets, Upstream

if TYPE_CHECKING:
    from kanri.proxy.state import WorkerState
    from kanri.proxy.upstream import UpstreamConnection

IDLE_TIMEOUT: Final = 1.5
"""Idle upstream connections are closed after this long, before the app's own
keep-alive timeout (gunicorn 2s, Node 5s) can close them under a new request."""


class Pool:
    """One upstream instance as seen by one worker."""

    __slots__ = (
        "active",
        "checking",
        "down_until",
        "failed_check",
        "fails",
        "idle",
        "key",
        "next_check",
        "removed",
        "upstream",
        "window_start",
    )

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.key = upstream.key
        self.idle: list[UpstreamConnection] = []
        self.active = 0
        self.fails = 0
        self.window_start = 0.0
        self.down_until = 0.0
        self.failed_check = False
        self.checking = False  # a health check of this instance is under way
        self.removed = False
        self.next_check = 0.0

    def available(self, now: float) -> bool:
        return self.down_until <= now and not self.failed_check

    def fail(self, state: WorkerState) -> None:
        config = state.config
        if config.max_fails == 0:
            return
        now = state.clock.now
        if now - self.window_start > config.fail_timeout:
            self.fails = 0
            self.window_start = now
        self.fails += 1
        if self.fails >= config.max_fails:
            self.down_until = now + config.fail_timeout
            self.fails = 0

    def take(self) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def release(self, conn: UpstreamConnection, state: WorkerState) -> None:
        if self.removed or state.draining or len(self.idle) >= state.config.upstream_keepalive:
            conn.close()
            return
        conn.deadline = state.clock.now + IDLE_TIMEOUT
        self.idle.append(conn)

    def close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


class Balancer:
    """The ready instances of one app, and the choice among them."""

    __slots__ = ("least_conn", "next", "pools", "target")

    def __init__(self, target: AppTargets, pools: tuple[Pool, ...]) -> None:
        self.target = target
        self.pools = pools
        self.least_conn = target.balance == "least_conn"
        self.next = 0

    def pick(self, now: float, tried: Collection[object]) -> Pool | None:
        pools = self.pools
        count = len(pools)
        if count == 1 and not tried and pools[0].available(now):
            return pools[0]  # one instance, first attempt: the common case needs no loop
        start = self.next
        best: Pool | None = None
        for i in range(count):
            pool = pools[(start + i) % count]
            if pool in tried or not pool.available(now):
                continue
            if not self.least_conn:
                self.next = (start + i + 1) % count
                return pool
            if best is None or pool.active < best.active:
                best = pool
        if best is not None:
            self.next = (pools.index(best) + 1) % count
            return best
        for pool in pools:  # everything is out of rotation: try them anyway
            if pool not in tried:
                return pool
        return None


async def probe(upstream: Upstream, path: str, state: WorkerState) -> bool:
    """One health check: a 2xx or 3xx answer within the connect + read timeouts."""
    limit = min(5.0, state.config.connect_timeout + state.config.read_timeout)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection(upstream.host, upstream.port)
            writer.write(
                b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: kanri-health\r\n"
                b"Connection: close\r\n\r\n"
                % (path.encode(), upstream.host.encode(), upstream.port)
            )
            line = await reader.readline()
    except (OSError, TimeoutError, ValueError):  # ValueError: a first line over 64 KiB
        return False
    finally:
        if writer is not None:
            writer.close()
    parts = line.split(None, 2)
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1][:1] in (b"2", b"3")
