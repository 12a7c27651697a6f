"""Log files: timestamped lines, rotated by size with a bounded number of backups."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

MAX_LINE = 64 * 1024  # a longer line is split; a runaway line must not eat the daemon's memory


def timestamp(now: float | None = None) -> str:
    """Local time with milliseconds, as in "2026-12-03 16:04:58.123"."""
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


class RotatingFile:
    """An append-only file rotated when it would grow past ``max_size``.

    Rotation renames ``app.log`` to ``app.log.1``, ``.1`` to ``.2`` and so on,
    dropping what would become ``.{backups + 1}``; with ``backups = 0`` the file
    is simply truncated. Writes are unbuffered so a crash loses nothing.
    """

    def __init__(self, path: Path, max_size: int, backups: int) -> None:
        self.path = path
        self.max_size = max_size
        self.backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self.dropped = 0  # writes lost to errors such as a full disk
        self._closed = False
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, data: bytes) -> None:
        """Append data; on a full disk (or a file removed under us) drop it, never raise.

        A log that cannot be written must not take the daemon, or the app, down.
        """
        if self._closed:
            return
        try:
            if self._fd < 0:
                self._fd = self._open()
                self._size = os.fstat(self._fd).st_size
            if self._size and self._size + len(data) > self.max_size:
                self.rotate()
            os.write(self._fd, data)
            self._size += len(data)
        except OSError:
            self.dropped += 1

    def rotate(self) -> None:
        fd, self._fd = self._fd, -1
        os.close(fd)
        if self.backups == 0:
            os.truncate(self.path, 0)
        else:
            for n in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._fd = self._open()
        self._size = 0

    def close(self) -> None:
        self._closed = True
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


LineSink = Callable[[str, str], None]
"""Called with (stream, line) for every line an instance prints; stream is "out" or "err"."""


class InstanceLog:
    """Where one instance's output goes: its log file(s), a short tail, and any sinks.

    stdout and stderr share one file unless ``error_path`` is given. Lines are
    written as ``<timestamp> <text>``; stderr lines in a shared file are marked
    with ``[err]`` so they can be told apart.
    """

    TAIL = 50

    def __init__(
        self,
        out_path: Path,
        error_path: Path | None,
        max_size: int,
        backups: int,
        sink: LineSink | None = None,
    ) -> None:
        self.out = RotatingFile(out_path, max_size, backups)
        self.err = RotatingFile(error_path, max_size, backups) if error_path else None
        self.sink = sink
        self.tail: deque[str] = deque(maxlen=self.TAIL)

    def line(self, stream: str, text: str) -> None:
        stamp = timestamp()
        if stream == "err" and self.err is None:
            self.out.write(f"{stamp} [err] {text}\n".encode(errors="replace"))
        else:
            target = self.err if stream == "err" and self.err is not None else self.out
            target.write(f"{stamp} {text}\n".encode(errors="replace"))
        self.tail.append(text)
        if self.sink is not None:
            self.sink(stream, text)

    def close(self) -> None:
        self.out.close()
        if self.err is not None:
            self.err.close()


class LineSplitter:
    """Turns a byte stream into lines, splitting any line longer than MAX_LINE."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            self._emit_bytes(bytes(buf[:nl]))
            del buf[: nl + 1]
        while len(buf) > MAX_LINE:
            self._emit_bytes(bytes(buf[:MAX_LINE]))
            del buf[:MAX_LINE]

    def close(self) -> None:
        if self._buf:
            self._emit_bytes(bytes(self._buf))
            self._buf.clear()

    def _emit_bytes(self, raw: bytes) -> None:
        self._emit(raw.rstrip(b"\r").decode("utf-8", errors="replace"))


def tail_lines(path: Path, count: int, block: int = 64 * 1024) -> list[str]:
    """The last ``count`` lines of a file (fewer if it is shorter), read from the end."""
    if count <= 0:
        return []
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            pos = f.tell()
            data = b""
            while pos > 0 and data.count(b"\n") <= count:
                step = min(block, pos)
                pos -= step
                f.seek(pos)
                data = f.read(step) + data
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:]
