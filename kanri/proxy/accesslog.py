"""The access log: records collected on the loop, formatted and written in a thread.

The hot path appends one tuple per request to a list; every half second (and
at shutdown) the list is swapped out, formatted as nginx ``combined`` or JSON
lines, and appended to the file from the default executor, so disk latency
never blocks the loop. Several workers append to the same file: each batch
is one ``write`` on an O_APPEND descriptor, so lines do not interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Literal

FLUSH_INTERVAL = 0.5
MAX_PENDING = 100_000
"""Records kept when the disk cannot keep up; older ones are dropped past this."""

# (client ip, start time (wall clock), method, target, version, status, bytes sent,
#  referer, user agent, seconds taken, upstream key or "")
Record = tuple[str, float, bytes, bytes, bytes, int, int, bytes | None, bytes | None, float, str]

_ESCAPES = {c: f"\\x{c:02X}" for c in (*range(0x20), *range(0x7F, 0x100), ord('"'), ord("\\"))}


def _esc(value: bytes | None) -> str:
    if not value:
        return "-"
    text = value.decode("latin-1")
    if text.isprintable() and '"' not in text and "\\" not in text and text.isascii():
        return text
    return "".join(_ESCAPES.get(ord(ch), ch) for ch in text)


def format_combined(rec: Record) -> str:
    ip, start, method, target, version, status, sent, referer, agent, _, _ = rec
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(start))
    request = f"{_esc(method)} {_esc(target)} HTTP/{version.decode('latin-1')}"
    return f'{ip} - - [{stamp}] "{request}" {status} {sent} "{_esc(referer)}" "{_esc(agent)}"\n'


def format_json(rec: Record) -> str:
    ip, start, method, target, version, status, sent, referer, agent, took, upstream = rec
    return (
        json.dumps(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(start)),
                "remote_addr": ip,
                "method": method.decode("latin-1"),
                "uri": target.decode("latin-1"),
                "protocol": f"HTTP/{version.decode('latin-1')}",
                "status": status,
                "bytes_sent": sent,
                "referer": referer.decode("latin-1") if referer else None,
                "user_agent": agent.decode("latin-1") if agent else None,
                "request_time": round(took, 6),
                "upstream": upstream or None,
            },
            ensure_ascii=False,
        )
        + "\n"
    )


class AccessLog:
    """Buffered access log; ``records`` is appended to by the connections."""

    def __init__(self, path: Path, fmt: Literal["combined", "json"]) -> None:
        self.path = path
        self.records: list[Record] = []
        self._format = format_json if fmt == "json" else format_combined
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    async def run(self) -> None:
        """Flush every FLUSH_INTERVAL until cancelled; flushes once more on the way out."""
        try:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL)
                await self.flush()
        finally:
            self._write(self._take())

    async def flush(self) -> None:
        batch = self._take()
        if batch:
            await asyncio.get_running_loop().run_in_executor(None, self._write, batch)

    def _take(self) -> list[Record]:
        batch, self.records = self.records, []
        if len(batch) > MAX_PENDING:
            batch = batch[-MAX_PENDING:]
        return batch

    def _write(self, batch: list[Record]) -> None:
        if not batch:
            return
        data = "".join(map(self._format, batch)).encode("utf-8", "replace")
        # A full disk must not take the proxy down; the records are lost.
        with contextlib.suppress(OSError):
            os.write(self._fd, data)

    def close(self) -> None:
        self._write(self._take())
        os.close(self._fd)
