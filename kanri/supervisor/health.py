"""Readiness checks: can the instance take requests yet?

Default: a TCP connect to 127.0.0.1:$PORT succeeds. With ``health = "/path"``:
an HTTP GET of that path answers 2xx or 3xx.
"""

from __future__ import annotations

import asyncio
import contextlib

HOST = "127.0.0.1"


async def tcp_ready(port: int, timeout: float = 1.0) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def http_ready(port: int, path: str, timeout: float = 2.0) -> bool:
    """GET ``path`` and accept any 2xx or 3xx status."""
    try:
        return await asyncio.wait_for(_http_status_ok(port, path), timeout)
    except (OSError, TimeoutError, ValueError):
        return False


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


async def check_ready(port: int, health: str | None) -> bool:
    if health is None:
        return await tcp_ready(port)
    return await http_ready(port, health)
