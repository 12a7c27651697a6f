"""`python -m bench hotpath`: the CPU the proxy's own code spends per request, in-process.

A ClientConnection and an UpstreamConnection are wired to in-memory transports
and fed whole requests and responses; no socket, no event loop turn, no kernel.
What remains is exactly the Python (or compiled) code of kanri/proxy per
request, steady to a few percent where a wrk run through the kernel is not: the
figure to compare before and after a change to the hot path. Cases: the small
GET of scenario 1 (wrk sends one header, nginx answers with six) and a GET as a
browser sends it (a dozen headers). ``--profile`` runs the first case under
cProfile instead (meaningful only with KANRI_PURE builds: compiled code is one
opaque call).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from collections.abc import Callable, Iterable
from typing import Any

from kanri.config.model import ProxyConfig
from kanri.native import proxy_compiled
from kanri.proxy.http import ClientConnection
from kanri.proxy.settings import ProxySettings, RouteSpec
from kanri.proxy.snapshot import AppTargets, Snapshot, Upstream
from kanri.proxy.state import WorkerState
from kanri.proxy.upstream import UpstreamConnection
from kanri.proxy.worker import apply_snapshot

SMALL_GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
BROWSER_GET = (
    b"GET /api/v1/items?page=2 HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Referer: https://example.com/items\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: sessionid=0123456789abcdef; csrftoken=abcdef0123456789\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"Sec-Fetch-Mode: navigate\r\n"
    b"Priority: u=0, i\r\n\r\n"
)
NGINX_ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 03 Dec 2026 19:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\n"
    b"hello, world\n"
)
LOOP = asyncio.new_event_loop()  # never run: the state only keeps a reference to it


class MemoryTransport:
    """The parts of an asyncio transport the proxy uses; keeps the last exchange's writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, data: Iterable[bytes | memoryview]) -> None:
        self.written.extend(bytes(part) for part in data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def exchange(
    request: bytes, answer: bytes
) -> tuple[Callable[[], None], MemoryTransport, MemoryTransport]:
    """A keep-alive client connection and a pooled upstream connection; one call = one request."""
    state = WorkerState(ProxySettings.of(ProxyConfig()), LOOP, lambda coro: coro.close(), None)
    upstream = Upstream("app:0#1", "app", "127.0.0.1", 9)
    routes = (RouteSpec(path="/", app="app"),)
    apply_snapshot(state, Snapshot(1, routes, {"app": AppTargets("app", (upstream,))}))
    pool = state.upstreams.pools[upstream.key]
    up = UpstreamConnection(state, pool)
    up_transport = MemoryTransport()
    up.connection_made(up_transport)  # type: ignore[arg-type]
    pool.idle.append(up)
    client = ClientConnection(state)
    client_transport = MemoryTransport()
    client.connection_made(client_transport)  # type: ignore[arg-type]

    def one() -> None:
        up_transport.written.clear()
        client_transport.written.clear()
        client.data_received(request)
        up.data_received(answer)

    return one, client_transport, up_transport


def check(request: bytes, answer: bytes) -> None:
    """The wiring answers as the proxy does, or the figures would measure a failure."""
    one, client_transport, up_transport = exchange(request, answer)
    one()
    sent = b"".join(up_transport.written)
    answered = b"".join(client_transport.written)
    if not sent.startswith(b"GET /") or not answered.startswith(b"HTTP/1.1 200 OK\r\n"):
        raise SystemExit(f"bench hotpath: sent {sent[:40]!r}, answered {answered[:40]!r}")


def per_request_us(one: Callable[[], None], count: int, repeats: int) -> float:
    for _ in range(min(count, 2000)):
        one()
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(count):
            one()
        best = min(best, time.process_time() - start)
    return best / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench hotpath", description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000, help="per repeat (100000)")
    parser.add_argument("--repeats", type=int, default=5, help="best of (5)")
    parser.add_argument("--profile", action="store_true", help="cProfile the small GET instead")
    args = parser.parse_args(argv)
    cases = {"small GET (scenario 1)": SMALL_GET, "browser GET, 13 headers": BROWSER_GET}
    for request in cases.values():
        check(request, NGINX_ANSWER)
    if args.profile:
        one, _, _ = exchange(SMALL_GET, NGINX_ANSWER)
        with cProfile.Profile() as profile:
            for _ in range(args.requests):
                one()
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
        return 0
    build = "compiled" if proxy_compiled() else "plain Python"
    print(f"proxy code only, in-process, {build}; best of {args.repeats} x {args.requests:,}")
    print("| request | µs per request |")
    print("|---|---|")
    for name, request in cases.items():
        one, _, _ = exchange(request, NGINX_ANSWER)
        print(f"| {name} | {per_request_us(one, args.requests, args.repeats):.2f} |", flush=True)
    return 0
