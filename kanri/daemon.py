"""The composition root: owns the supervisor (and, beside it, the proxy and control API).

Signals are only queued by their handlers; one task reads the queue. The first
SIGINT/SIGTERM stops everything gracefully; a second one during that stop kills
every instance at once and exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from kanri.config.model import Config
from kanri.errors import NotReadyError
from kanri.supervisor import Instance, State, Supervisor, Transition, Watchdog
from kanri.supervisor.logs import RotatingFile, timestamp
from kanri.terminal import Printer

DAEMON_LOG_SIZE = 10 * 1024 * 1024
DAEMON_LOG_BACKUPS = 5
FORCED_EXIT = 130


def state_dir_for(config: Config) -> Path:
    """Where a project's state lives: $KANRI_HOME, else .kanri/ beside kanri.toml."""
    home = os.environ.get("KANRI_HOME")
    return Path(home).resolve() if home else config.root / ".kanri"


class Daemon:
    def __init__(self, config: Config, *, printer: Printer | None = None) -> None:
        self.config = config
        self.state_dir = state_dir_for(config)
        self.printer = printer
        self.log = RotatingFile(
            self.state_dir / "logs" / "kanri.log", DAEMON_LOG_SIZE, DAEMON_LOG_BACKUPS
        )
        self._signals: asyncio.Queue[int] = asyncio.Queue()
        self._stop = asyncio.Event()
        self.supervisor: Supervisor | None = None

    # -- reporting -------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.log.write(f"{timestamp()} {text}\n".encode(errors="replace"))
        if self.printer is not None:
            self.printer.kanri(text)

    def _on_transition(self, inst: Instance, event: Transition) -> None:
        pid = f" pid {event.pid}" if event.pid else ""
        self.note(f"{inst.name}{pid} {event.old} -> {event.new}: {event.reason}")

    def _on_line(self, inst: Instance, stream: str, text: str) -> None:
        if self.printer is not None:
            self.printer.line(inst.app.name, inst.name, text, error=stream == "err")

    # -- signals ---------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._signals.put_nowait, sig)

    async def _read_signals(self) -> None:
        sig = await self._signals.get()
        self.note(
            f"{signal.Signals(sig).name} received: stopping everything "
            "(again to force an immediate exit)"
        )
        self._stop.set()
        sig = await self._signals.get()
        self.note(f"{signal.Signals(sig).name} received again: killing every instance now")
        if self.supervisor is not None:
            self.supervisor.kill_everything()
        os._exit(FORCED_EXIT)

    # -- running ---------------------------------------------------------------------

    async def run(self) -> int:
        """Run in the foreground until a signal; return the process exit code."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        watchdog = Watchdog()
        try:
            return await self._run(watchdog)
        finally:
            watchdog.close()
            self.log.close()

    async def _run(self, watchdog: Watchdog) -> int:
        self._install_signals()
        self.note(
            f"kanri {os.getpid()} starting {len(self.config.apps)} app(s) from {self.config.file}"
        )
        async with asyncio.TaskGroup() as tasks:
            signals = tasks.create_task(self._read_signals())
            code = await self._supervise(watchdog)
            signals.cancel()
        return code

    async def _supervise(self, watchdog: Watchdog) -> int:
        async with Supervisor(
            self.config,
            self.state_dir,
            on_transition=self._on_transition,
            on_line=self._on_line,
            watchdog=watchdog,
        ) as sup:
            self.supervisor = sup
            started = asyncio.ensure_future(sup.start_all())
            stopped = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait([started, stopped], return_when=asyncio.FIRST_COMPLETED)
            if not started.done():
                started.cancel()
                self.note("stopped before every app was ready")
                return 0
            stopped.cancel()
            try:
                started.result()
            except NotReadyError as exc:
                self.note(str(exc))
                return 1
            self.note(self._summary(sup))
            await self._stop.wait()
            self.note("stopping every app")
        self.note("all apps stopped; bye")
        return 0

    def _summary(self, sup: Supervisor) -> str:
        parts = []
        for name, app in sup.apps.items():
            ready = sum(1 for i in app.instances if i.state is State.READY)
            ports = ",".join(str(i.port) for i in app.instances)
            parts.append(f"{name} {ready}/{len(app.instances)} ready (port {ports})")
        return "ready: " + "; ".join(parts)
