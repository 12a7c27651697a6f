"""ProxyWorkers: the daemon's side of the proxy worker processes.

Owns ``config.workers`` slots. Each slot runs one worker process at a time
(``python -m kanri.proxy.worker``) and starts a new one when it dies, after a
backoff that grows while workers keep dying young, without ever closing the
listen sockets. Every worker gets the config and the latest snapshot before
it accepts anything; ``publish`` returns once every live worker has applied a
new snapshot, which is what lets the daemon stop an instance safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from kanri.proxy.control import encode, read_message
from kanri.proxy.errors import ProxyError
from kanri.proxy.listeners import bind_slot
from kanri.proxy.settings import ProxySettings
from kanri.proxy.snapshot import Snapshot

if TYPE_CHECKING:
    from kanri.config.model import ProxyConfig

log = logging.getLogger("kanri.proxy")

STOP_TIMEOUT = 10.0
"""How long a stopping worker lets in-flight requests finish."""
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=4194304"
"""glibc's malloc settings for the workers. With its defaults, every buffer of a big
body (uvloop reads up to 256 KiB at a time) grew the heap with brk and gave it
back when freed, and the kernel zeroed fresh pages for the next one: a dozen
brk calls per 1 MiB upload, two thirds of the worker's CPU. Served from the
heap and kept (up to 4 MiB free), the buffers are reused instead."""
MAX_BACKOFF = 5.0
HEALTHY_UPTIME = 10.0
"""A worker that lived this long resets the restart backoff."""
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """Counters of one worker process since it started."""

    pid: int
    requests: int
    responses_5xx: int
    bytes_out: int
    connections: int


@dataclass(eq=False)
class _Worker:
    slot: int
    proc: asyncio.subprocess.Process
    writer: asyncio.StreamWriter
    reader: asyncio.StreamReader
    acked: int = 0
    alive: bool = True
    replies: dict[int, asyncio.Future[Any]] = field(default_factory=dict)

    def send(self, message: tuple[Any, ...]) -> None:
        if self.alive and not self.writer.is_closing():
            self.writer.write(encode(message))


class ProxyWorkers:
    """Start, supervise, feed and stop the proxy worker processes."""

    def __init__(
        self,
        config: ProxyConfig,
        listeners: list[socket.socket],
        *,
        state_dir: Path,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self._config = config
        # The listen sockets of each slot: the daemon's for slot 0, SO_REUSEPORT siblings
        # (bound in __aenter__, closed in __aexit__) for the others.
        self._slots: list[list[socket.socket]] = [listeners]
        self._state_dir = Path(state_dir)
        self._stop_timeout = stop_timeout
        self._workers: dict[int, _Worker] = {}
        self._seq = 0
        self._latest: tuple[int, Snapshot] | None = None
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._tg = asyncio.TaskGroup()

    async def __aenter__(self) -> ProxyWorkers:
        try:
            for _ in range(1, self._config.workers):
                sockets: list[socket.socket] = []
                self._slots.append(sockets)
                for sock in self._slots[0]:
                    sockets.append(bind_slot(sock))
        except BaseException:
            self._close_slots()
            raise
        await self._tg.__aenter__()
        started = [asyncio.get_running_loop().create_future() for _ in range(self._config.workers)]
        for slot, future in enumerate(started):
            self._tg.create_task(self._keep_running(slot, future))
        try:
            for future in started:
                await future
        except BaseException as exc:
            self._stopping.set()
            try:
                await self._tg.__aexit__(type(exc), exc, exc.__traceback__)
            finally:
                self._close_slots()
            raise
        return self

    def _close_slots(self) -> None:
        for sockets in self._slots[1:]:
            for sock in sockets:
                sock.close()
        del self._slots[1:]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        workers = [w for w in self._workers.values() if w.alive]
        for worker in workers:
            worker.send(("stop", self._stop_timeout))
        await asyncio.gather(*(self._reap(w) for w in workers))
        try:
            await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._close_slots()

    async def _reap(self, worker: _Worker) -> None:
        try:
            async with asyncio.timeout(self._stop_timeout + 2.0):
                await worker.proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()
            await worker.proc.wait()

    # --- public API -----------------------------------------------------------------

    async def publish(self, snapshot: Snapshot, timeout: float = 5.0) -> None:
        """Send ``snapshot`` to every worker; return when all live ones applied it (or timeout)."""
        self._seq += 1
        seq = self._seq
        self._latest = (seq, snapshot)
        for worker in self._workers.values():
            worker.send(("snapshot", seq, snapshot))

        def applied() -> bool:
            return all(w.acked >= seq or not w.alive for w in self._workers.values())

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(applied)

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [w.proc.pid for w in self._workers.values() if w.alive]

    async def stats(self, timeout: float = 2.0) -> list[WorkerStats]:
        """Counters of every live worker that answers within ``timeout``."""
        replies = await self._ask(lambda seq: ("stats", seq), timeout)
        return [WorkerStats(pid=pid, **counters) for pid, counters in replies]

    async def inflight(self, key: str, timeout: float = 2.0) -> int:
        """Requests in flight on the instance ``key`` (Upstream.key), summed over the workers.

        Counts requests that started before the instance left the snapshot, and open
        WebSocket tunnels; the daemon polls this to know when an instance has drained.
        """
        replies = await self._ask(lambda seq: ("inflight", seq, key), timeout)
        return sum(int(count) for _, count in replies)

    async def _ask(
        self, message: Callable[[int], tuple[Any, ...]], timeout: float
    ) -> list[tuple[int, Any]]:
        """Send a question to every live worker; (pid, answer) of those that answer in time."""
        loop = asyncio.get_running_loop()
        asked: list[tuple[_Worker, asyncio.Future[Any]]] = []
        for worker in list(self._workers.values()):
            if not worker.alive:
                continue
            self._seq += 1
            future: asyncio.Future[Any] = loop.create_future()
            worker.replies[self._seq] = future
            worker.send(message(self._seq))
            asked.append((worker, future))
        out: list[tuple[int, Any]] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                for worker, future in asked:
                    with contextlib.suppress(ConnectionError):
                        out.append((worker.proc.pid, await future))
        return out

    # --- supervision -------------------------------------------------------------------

    async def _keep_running(self, slot: int, started: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stopping.is_set():
            began = loop.time()
            try:
                worker = await self._spawn(slot)
            except OSError as exc:
                if not started.done():
                    started.set_exception(
                        ProxyError(f"cannot start a proxy worker ({sys.executable}): {exc}")
                    )
                    return
                log.error("proxy worker %d could not be started: %s", slot, exc)
            else:
                if not started.done():
                    started.set_result(None)
                await self._watch(worker)
                if self._stopping.is_set():
                    return
                log.warning(
                    "proxy worker %d (pid %d) exited with status %s; starting a new one",
                    slot,
                    worker.proc.pid,
                    worker.proc.returncode,
                )
            if loop.time() - began > HEALTHY_UPTIME:
                failures = 0
            delay = min(MAX_BACKOFF, 0.05 * 2**failures)
            failures += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    async def _spawn(self, slot: int) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            fds = [s.fileno() for s in self._slots[slot]]
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "kanri.proxy.worker",
                "--control",
                str(theirs.fileno()),
                "--listen",
                ",".join(map(str, fds)),
                "--parent",
                str(os.getpid()),
                pass_fds=[theirs.fileno(), *fds],
                env=worker_env(os.environ),
                stdin=asyncio.subprocess.DEVNULL,
                # Out of the terminal's group (Ctrl-C is the daemon's to handle), but in
                # the daemon's session, as the apps are: where the kernel groups CPU
                # by session (autogroup), the whole stack is one group, like a service.
                process_group=0,
                preexec_fn=_die_with_daemon(),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        worker = _Worker(slot, proc, writer, reader)
        self._workers[slot] = worker
        worker.send(("config", ProxySettings.of(self._config), str(self._state_dir)))
        if self._latest is not None:
            worker.send(("snapshot", *self._latest))
        return worker

    async def _watch(self, worker: _Worker) -> None:
        """Read the worker's messages until it exits."""
        while True:
            message = await read_message(worker.reader)
            if message is None:
                break
            if message[0] == "ack":
                worker.acked = max(worker.acked, message[1])
                async with self._changed:
                    self._changed.notify_all()
            elif message[0] == "reply":
                future = worker.replies.pop(message[1], None)
                if future is not None and not future.done():
                    future.set_result(message[2])
        await worker.proc.wait()
        worker.alive = False
        worker.writer.close()
        for future in worker.replies.values():
            if not future.done():
                future.set_exception(ConnectionError("the proxy worker exited"))
        worker.replies.clear()
        async with self._changed:
            self._changed.notify_all()


def worker_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The daemon's environment plus MALLOC_TUNABLES; malloc settings of the user's own
    in GLIBC_TUNABLES win. (Other C libraries ignore the variable.)"""
    env = dict(environ)
    tunables = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc." not in tunables:
        env["GLIBC_TUNABLES"] = f"{tunables}:{MALLOC_TUNABLES}" if tunables else MALLOC_TUNABLES
    return env


def _die_with_daemon() -> Callable[[], None]:
    """What the worker runs between fork and exec: SIGKILL when the daemon dies.

    Set here rather than by the worker, which then needs no ctypes in its memory.
    prctl is looked up now, in the daemon: the forked child only calls it.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
