"""Two small load tools on loopback: keep-alive GET clients that count failures (for
scenario 9 and for the zero-downtime tests), and many idle keep-alive connections
held open (scenario 8).

A request either succeeds (a status below 500, whole body read) or fails: a
connection error, a timeout, or a 5xx. Every loop is bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    bodies: Counter[bytes] = field(default_factory=Counter)  # a sample: which upstreams answered

    def why(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.reasons.most_common(3))

    def __str__(self) -> str:
        why = ", ".join(f"{k}: {v}" for k, v in self.reasons.most_common(5)) or "none"
        return f"{self.ok} ok, {self.failed} failed ({why})"


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one response; raises on a broken stream."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    keep = headers.get("connection", "").lower() != "close"
    return status, body, keep


async def _client(
    host: str, port: int, path: str, *, deadline: float, result: LoadResult, timeout: float
) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), timeout
                )
            assert reader is not None and writer is not None
            writer.write(request)
            status, body, keep = await asyncio.wait_for(_read_response(reader), timeout)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            result.failed += 1
            result.reasons[type(exc).__name__] += 1
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.01)
            continue
        if status >= 500:
            result.failed += 1
            result.reasons[f"HTTP {status}"] += 1
        else:
            result.ok += 1
            if len(result.bodies) < 64 or body in result.bodies:
                result.bodies[body[:200]] += 1
        if not keep and writer is not None:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def run_load(
    port: int,
    seconds: float,
    *,
    clients: int = 32,
    path: str = "/",
    host: str = "127.0.0.1",
    timeout: float = 10.0,
) -> LoadResult:
    result = LoadResult()
    deadline = time.monotonic() + seconds
    async with asyncio.TaskGroup() as tasks:
        for _ in range(clients):
            tasks.create_task(
                _client(host, port, path, deadline=deadline, result=result, timeout=timeout)
            )
    return result


class BackgroundLoad:
    """Runs run_load in a thread so a test can act (reload, kill) while it runs."""

    def __init__(self, port: int, seconds: float, clients: int = 32, path: str = "/") -> None:
        self.result: LoadResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(port, seconds, clients, path), daemon=True
        )

    def _run(self, port: int, seconds: float, clients: int, path: str) -> None:
        try:
            self.result = asyncio.run(run_load(port, seconds, clients=clients, path=path))
        except BaseException as exc:  # surfaced by wait()
            self._error = exc

    def start(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def wait(self, timeout: float) -> LoadResult:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("the load did not finish in time")
        if self._error is not None:
            raise self._error
        assert self.result is not None
        return self.result


def _read_one(sock: socket.socket) -> int:
    """Read one response with a Content-Length body from a blocking socket; its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return int(head.split()[1])


class IdleClients:
    """count connections, each after one GET answered, then left idle (keep-alive)."""

    def __init__(self, port: int, count: int, timeout: float = 10.0) -> None:
        self.socks: list[socket.socket] = []
        request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        deadline = time.monotonic() + max(30.0, count / 100)
        try:
            for _ in range(count):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"opened only {len(self.socks)} of {count} in time")
                sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                self.socks.append(sock)
                sock.sendall(request)
                status = _read_one(sock)
                if status != 200:
                    raise ConnectionError(f"answered {status}")
        except BaseException:
            self.close()
            raise

    def still_open(self) -> int:
        """How many connections the server has not closed (a closed one reads as ready)."""
        poller = select.poll()  # select() stops at fd 1024
        for sock in self.socks:
            poller.register(sock, select.POLLIN)
        return len(self.socks) - len(poller.poll(0))

    def close(self) -> None:
        for sock in self.socks:
            with contextlib.suppress(OSError):
                sock.close()
        self.socks.clear()
