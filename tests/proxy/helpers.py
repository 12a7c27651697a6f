"""Test servers and a harness that runs real proxy worker processes.

``TestUpstream`` is a small HTTP/1.1 server on 127.0.0.1 (port 0) with a few
behaviours chosen by path; ``RunningProxy`` binds the proxy's listen socket,
starts ``ProxyWorkers`` on an event loop in a background thread (as the daemon
would) and lets synchronous tests publish snapshots and read stats.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from kanri.config.model import ProxyConfig, Route
from kanri.proxy import AppTargets, ProxyWorkers, Snapshot, Upstream, bind_listeners

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def call(self, fn: Callable[[], None]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def free_port() -> int:
    """A port with nothing listening on it (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pattern(size: int) -> bytes:
    """``size`` bytes that change from byte to byte: a slip in offsets shows in them."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


class TestUpstream:
    """A tiny HTTP/1.1 app server. Paths:

    /echo           JSON of method, path, headers, body size (keep-alive)
    /upload         reads the body without keeping it, answers its size
    /sse            chunked event stream: one event, then waits for release(), then one more
    /slow?s=N       answers after N seconds
    /ws             answers 101 and echoes raw bytes
    /close          answers without a length and closes the connection
    /chunked        a chunked answer of three chunks
    /big?n=N        the first N bytes of ``pattern()``, with Content-Length
    /status?c=N     answers status N
    /healthz        200, or 503 while ``unhealthy`` is set
    /late?s=N       the head at once, the body N seconds later (two writes, as apps do)
    /stall?s=N      the head at once, then after N seconds (default 3) a close, no body

    With ``cutting`` set, every answer stops after its head and the connection
    closes: an app killed between the two writes of its head and its body.
    """

    __test__ = False

    def __init__(self, name: str = "up", port: int = 0) -> None:
        self.name = name
        self._wanted_port = port
        self.connections = 0
        self.requests = 0
        self.received_heads: list[dict[str, Any]] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self.unhealthy = False  # /healthz answers 503 while set
        self.dropping = False  # while set, every request is read and left unanswered, as by a crash
        # While set, every answer is its head alone, then the connection closes.
        self.cutting = False
        self._release = threading.Event()
        self._loop_thread = LoopThread()
        self._server = self._loop_thread.run(self._start())
        self.port: int = self._server.sockets[0].getsockname()[1]

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(
            self._handle, "127.0.0.1", self._wanted_port, limit=1 << 20
        )

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._loop_thread.run(self._stop())
        self._loop_thread.stop()

    async def _stop(self) -> None:
        self._server.close()
        self._release.set()
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0.05)

    def upstream(self, key: str | None = None, app: str = "app") -> Upstream:
        return Upstream(key or f"{app}:{self.name}:{self.port}", app, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        if self.dropping:
            raise ConnectionError("dropped")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.append((name.strip().lower(), value.strip()))
        hdr = dict(headers)
        self.received_heads.append({"method": method, "target": target, "headers": headers})
        size = 0
        if hdr.get("transfer-encoding") == "chunked":
            while True:
                size_line = await reader.readuntil(b"\r\n")
                length = int(size_line.strip(), 16)
                while length:
                    part = await reader.read(min(length, 1 << 20))
                    if not part:
                        raise ConnectionError
                    size += len(part)
                    length -= len(part)
                await reader.readexactly(2)
                if int(size_line.strip(), 16) == 0:
                    break
        elif "content-length" in hdr:
            remaining = int(hdr["content-length"])
            while remaining:
                part = await reader.read(min(remaining, 1 << 20))
                if not part:
                    raise ConnectionError
                size += len(part)
                remaining -= len(part)
        path, _, query = target.partition("?")
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        if path == "/sse":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            event = b"data: first\n\n"
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.get_running_loop().run_in_executor(None, self._release.wait, 20)
            event = b"data: second\n\n"
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event))
            await writer.drain()
            return True
        if path == "/ws":
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: test\r\n\r\n"
            )
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            return False
        if path == "/slow":
            await asyncio.sleep(float(params.get("s", "1")))
        if path in ("/late", "/stall"):
            body = b"late, but whole\n"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            await writer.drain()
            await asyncio.sleep(float(params.get("s", "0.2" if path == "/late" else "3")))
            if path == "/stall":
                return False
            writer.write(body)
            await writer.drain()
            return True
        if path == "/close":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
            await writer.drain()
            return False
        if path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(b"3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n")
            await writer.drain()
            return True
        status = int(params.get("c", "200")) if path == "/status" else 200
        if path == "/healthz" and self.unhealthy:
            status = 503
        if path == "/big":
            body = pattern(int(params.get("n", "65536")))
        else:
            body = json.dumps(
                {
                    "upstream": self.name,
                    "method": method,
                    "target": target,
                    "headers": headers,
                    "body_size": size,
                }
            ).encode()
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nServer: test-upstream\r\n"
            b"Content-Length: %d\r\n\r\n" % (status, len(body))
        )
        if self.cutting:
            await writer.drain()
            return False
        if method != "HEAD":
            writer.write(body)
        await writer.drain()
        return True


def route(path: str, root: Path, **fields: Any) -> Route:
    return Route.model_validate({"path": path, **fields}, context={"root": str(root)})


def snapshot(
    routes: list[Route], apps: dict[str, list[Upstream]], version: int = 1, **app_fields: Any
) -> Snapshot:
    return Snapshot(
        version=version,
        routes=tuple(routes),
        apps={
            name: AppTargets(name=name, upstreams=tuple(ups), **app_fields)
            for name, ups in apps.items()
        },
    )


class RunningProxy:
    """Real proxy worker processes on a listen socket of 127.0.0.1, port 0."""

    def __init__(self, state_dir: Path, **config: Any) -> None:
        config.setdefault("listen", ["127.0.0.1:0"])
        config.setdefault("access_log", False)
        self.config = ProxyConfig.model_validate(config, context={"root": str(state_dir)})
        self.listeners = bind_listeners(self.config)
        self.port: int = self.listeners[0].getsockname()[1]
        self.loop_thread = LoopThread()
        self.workers = ProxyWorkers(
            self.config, self.listeners, state_dir=state_dir, stop_timeout=3.0
        )
        self.loop_thread.run(self.workers.__aenter__())

    def publish(self, snap: Snapshot, timeout: float = 5.0) -> None:
        self.loop_thread.run(self.workers.publish(snap, timeout))

    def pids(self) -> list[int]:
        async def pids() -> list[int]:
            return self.workers.pids()

        return self.loop_thread.run(pids())

    def inflight(self, key: str) -> int:
        return self.loop_thread.run(self.workers.inflight(key))

    def stats(self) -> list[Any]:
        return self.loop_thread.run(self.workers.stats())

    def close(self) -> None:
        self.loop_thread.run(self.workers.__aexit__(None, None, None))
        self.loop_thread.stop()
        for sock in self.listeners:
            sock.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, return everything received until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_until_close(sock, timeout)


def read_until_close(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Read one response; fail if more bytes follow it in the same read."""
    reader = ResponseReader(sock, timeout)
    response = reader.response()
    if reader.buffer:
        raise AssertionError(f"unexpected bytes after the response: {bytes(reader.buffer)!r}")
    return response


class ResponseReader:
    """Reads consecutive responses (Content-Length, chunked, or until close) from a socket."""

    def __init__(self, sock: socket.socket, timeout: float = 5.0) -> None:
        self.sock = sock
        self.buffer = bytearray()
        sock.settimeout(timeout)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed early; have {bytes(self.buffer[:200])!r}")
        self.buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._fill()
        return self._take(end + 2)[:-2]

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = self._take(end + 4)[:-4]
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            return status, headers, self._take(int(headers["content-length"]))
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._line().split(b";")[0], 16):
                body += self._take(size)
                self._take(2)
            self._take(2)
            return status, headers, body
        if status in (204, 304) or 100 <= status < 200:
            return status, headers, b""
        return status, headers, bytes(self.buffer) + read_until_close(self.sock)
