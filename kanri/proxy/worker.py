"""A proxy worker process: ``python -m kanri.proxy.worker --control FD --listen FD,...``.

Started by ProxyWorkers with the daemon's listen sockets and one end of a
control socketpair. It dies with the daemon (PR_SET_PDEATHSIG, which the daemon
sets before exec, and EOF on the control channel), serves nothing until it has a
routing snapshot, and on ``stop`` (or SIGTERM) stops accepting, lets in-flight
requests finish until the deadline, then exits.

A worker lives as long as the daemon, so it imports only what serving needs: it
reads its three options without argparse, and has no use for ctypes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import uvloop

from kanri.proxy.accesslog import AccessLog
from kanri.proxy.control import encode, read_message
from kanri.proxy.http import ClientConnection
from kanri.proxy.listeners import BACKLOG
from kanri.proxy.routing import RouteTable
from kanri.proxy.settings import ProxySettings
from kanri.proxy.snapshot import Snapshot
from kanri.proxy.state import WorkerState

USAGE = "usage: python -m kanri.proxy.worker --control FD --listen FD[,FD...] --parent PID"


def apply_snapshot(state: WorkerState, snapshot: Snapshot) -> None:
    state.table = RouteTable(snapshot.routes)
    state.upstreams.apply(snapshot)


def _access_log(config: ProxySettings, state_dir: Path) -> AccessLog | None:
    if config.access_log is False:
        return None
    path = state_dir / "logs" / "access.log" if config.access_log is True else config.access_log
    assert isinstance(path, Path)
    return AccessLog(path, config.access_log_format)


async def serve(control_fd: int, listen_fds: list[int]) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=control_fd))
    first = await read_message(reader)
    if first is None:
        return
    _, config, state_dir = first
    assert isinstance(config, ProxySettings)
    access_log = _access_log(config, Path(state_dir))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    pending: set[asyncio.Task[None]] = set()
    async with asyncio.TaskGroup() as tg:

        def spawn(coro: Coroutine[Any, Any, None]) -> None:
            task = tg.create_task(coro)
            pending.add(task)
            task.add_done_callback(pending.discard)

        state = WorkerState(config, loop, spawn, access_log)
        stop_timeout = 0.0
        serving: list[asyncio.Server] = []
        background: list[asyncio.Task[None]] = [
            tg.create_task(state.sweep()),
            tg.create_task(state.upstreams.check_health()),
        ]
        if access_log is not None:
            background.append(tg.create_task(access_log.run()))

        async def control() -> None:
            nonlocal stop_timeout
            while True:
                message = await read_message(reader)
                if message is None:  # the daemon is gone
                    stop_timeout = 0.0
                    break
                kind = message[0]
                if kind == "snapshot":
                    apply_snapshot(state, message[2])
                    if not serving:
                        for fd in listen_fds:
                            serving.append(
                                await loop.create_server(
                                    lambda: ClientConnection(state),
                                    sock=socket.socket(fileno=os.dup(fd)),
                                    backlog=BACKLOG,
                                )
                            )
                    writer.write(encode(("ack", message[1])))
                elif kind == "inflight":
                    writer.write(
                        encode(("reply", message[1], state.upstreams.inflight(message[2])))
                    )
                elif kind == "stats":
                    counters = state.counters
                    writer.write(
                        encode(
                            (
                                "reply",
                                message[1],
                                {
                                    "requests": counters.requests,
                                    "responses_5xx": counters.responses_5xx,
                                    "bytes_out": counters.bytes_out,
                                    "connections": counters.connections,
                                },
                            )
                        )
                    )
                elif kind == "stop":
                    stop_timeout = float(message[1])
                    break
            stop.set()

        control_task = tg.create_task(control())
        await stop.wait()
        control_task.cancel()
        await _drain(state, serving, stop_timeout)
        for task in (*background, *pending):
            task.cancel()
    if access_log is not None:
        access_log.close()
    writer.close()


async def _drain(state: WorkerState, servers: list[asyncio.Server], timeout: float) -> None:
    """Stop accepting, let in-flight exchanges finish until ``timeout``, then drop the rest."""
    state.draining = True
    for server in servers:
        server.close()
    for conn in list(state.clients):
        assert isinstance(conn, ClientConnection)
        conn.close_if_idle()
    if state.clients and timeout > 0:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await state.all_closed.wait()
    for conn in list(state.clients):
        assert isinstance(conn, ClientConnection)
        conn.abort()
    await asyncio.sleep(0)


def main(argv: list[str] | None = None) -> None:
    words = sys.argv[1:] if argv is None else argv
    try:
        options = dict(zip(words[::2], words[1::2], strict=True))
        control, parent = int(options["--control"]), int(options["--parent"])
        fds = [int(fd) for fd in options["--listen"].split(",") if fd]
    except (KeyError, ValueError):
        sys.exit(USAGE)
    if os.getppid() != parent:
        os._exit(1)  # the daemon died before this process could be told to die with it
    # Ctrl-C in a terminal reaches the whole process group; the daemon decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    uvloop.run(serve(control, fds))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
