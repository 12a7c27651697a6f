"""Readiness checks: can the instance take requests yet?

Default: a TCP connect to 127.0.0.1:$PORT succeeds. With ``health = "/path"``:
an HTTP GET of that path answers 2xx or 3xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum

HOST = "127.0.0.1"


class Readiness(enum.Enum):
    READY = "ready"
    CLOSED = "closed"  # nothing accepts on the port yet: the app saw no probe
    NOT_READY = "not ready"  # the app took the probe and is not ready (health not 2xx/3xx)


async def tcp_ready(port: int, timeout: float = 1.0) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def http_ready(port: int, path: str, timeout: float = 2.0) -> Readiness:
    """GET ``path`` and accept any 2xx or 3xx status."""
    try:
        ok = await asyncio.wait_for(_http_status_ok(port, path), timeout)
    except ConnectionRefusedError:
        return Readiness.CLOSED
    except (OSError, TimeoutError, ValueError):
        return Readiness.NOT_READY
    return Readiness.READY if ok else Readiness.NOT_READY


async def _http_status_ok(port: int, path: str) -> bool:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: kanri-health\r\n"
            "Connection: close\r\n\r\n".encode("latin-1")
        )
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            return False
        return 200 <= int(parts[1]) < 400
    finally:
        writer.close()


async def check_ready(port: int, health: str | None) -> Readiness:
    if health is None:
        return Readiness.READY if await tcp_ready(port) else Readiness.CLOSED
    return await http_ready(port, health)
