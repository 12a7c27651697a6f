"""The composition root: owns the supervisor, the control API (and the proxy beside them).

Signals are only queued by their handlers; one task reads the queue. The first
SIGINT/SIGTERM (or `kanri down`) stops everything gracefully; a second signal
during that stop kills every instance at once and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

from kanri import __version__
from kanri.config.model import Config, parse_listen
from kanri.control.server import ControlServer
from kanri.errors import (
    AlreadyRunningError,
    ConfigError,
    NotReadyError,
    ReloadRefusedError,
    UnknownTargetError,
)
from kanri.proxy import AppTargets, ProxyWorkers, Snapshot, Upstream, bind_listeners
from kanri.supervisor import Instance, State, Supervisor, Transition, Watchdog
from kanri.supervisor.logs import RotatingFile, tail_lines, timestamp
from kanri.supervisor.metrics import ProcessMeter
from kanri.supervisor.supervisor import log_paths
from kanri.systemd import notify
from kanri.terminal import Printer

DAEMON_LOG_SIZE = 10 * 1024 * 1024
DAEMON_LOG_BACKUPS = 5
FORCED_EXIT = 130
FOLLOW_QUEUE = 10_000  # lines buffered for a slow `kanri logs -f`; beyond that they are dropped
NOTIFY_FD_ENV = "KANRI_NOTIFY_FD"
DRAIN_POLL = 0.05  # how often a draining instance's in-flight count is asked for

Phase = Literal["starting", "running", "stopping", "failed"]


def state_dir_for(config: Config) -> Path:
    """Where a project's state lives: $KANRI_HOME, else .kanri/ beside kanri.toml."""
    home = os.environ.get("KANRI_HOME")
    return Path(home).resolve() if home else config.root / ".kanri"


def socket_path_for(config: Config) -> Path:
    return state_dir_for(config) / "kanri.sock"


class ProjectLock:
    """An exclusive flock on .kanri/kanri.lock: one daemon per project, released on any exit."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "kanri.lock"
        self._fd = -1

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise AlreadyRunningError(int(text) if text.isdigit() else None) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Daemon:
    def __init__(self, config: Config, *, printer: Printer | None = None) -> None:
        self.config = config
        self.state_dir = state_dir_for(config)
        self.printer = printer
        self.phase: Phase = "starting"
        self.started_at = time.time()
        self.supervisor: Supervisor | None = None
        self.log: RotatingFile | None = None
        self._signals: asyncio.Queue[int] = asyncio.Queue()
        self._stop = asyncio.Event()
        self._followers: set[asyncio.Queue[dict[str, str] | None]] = set()
        self._meter = ProcessMeter()
        self.proxy: ProxyWorkers | None = None
        self._version = 0
        self._publish_lock = asyncio.Lock()
        self._routing_changed = asyncio.Event()

    # -- reporting -------------------------------------------------------------------

    def note(self, text: str) -> None:
        if self.log is not None:
            self.log.write(f"{timestamp()} {text}\n".encode(errors="replace"))
        if self.printer is not None:
            self.printer.kanri(text)

    def _on_transition(self, inst: Instance, event: Transition) -> None:
        pid = f" pid {event.pid}" if event.pid else ""
        self.note(f"{inst.name}{pid} {event.old} -> {event.new}: {event.reason}")
        # Every change: besides the ready set, the snapshot says whether an app with
        # no ready instance has one coming (its requests wait for it).
        self._routing_changed.set()

    def _on_line(self, inst: Instance, stream: str, text: str) -> None:
        if self.printer is not None:
            self.printer.line(inst.app.name, inst.name, text, error=stream == "err")
        if self._followers:
            item = {"instance": inst.name, "stream": stream, "line": f"{timestamp()} {text}"}
            for queue in self._followers:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(item)

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
        """Run until a signal or `kanri down`; return the process exit code.

        Raises AlreadyRunningError before anything starts if this project has a daemon.
        """
        lock = ProjectLock(self.state_dir)
        lock.acquire()
        try:
            # Bind before anything starts: a taken port is a clear error, not a half-started stack.
            proxy = self.config.proxy
            listeners = bind_listeners(proxy) if proxy is not None else []
        except BaseException:
            lock.release()
            raise
        self.log = RotatingFile(
            self.state_dir / "logs" / "kanri.log", DAEMON_LOG_SIZE, DAEMON_LOG_BACKUPS
        )
        watchdog = Watchdog()
        try:
            return await self._run(watchdog, listeners)
        finally:
            for sock in listeners:
                sock.close()
            watchdog.close()
            self.log.close()
            lock.release()

    async def _run(self, watchdog: Watchdog, listeners: list[socket.socket]) -> int:
        self._install_signals()
        self.note(
            f"kanri {__version__} (pid {os.getpid()}) starting {len(self.config.apps)} app(s) "
            f"from {self.config.file}"
        )
        async with (
            ControlServer(socket_path_for(self.config), self),
            asyncio.TaskGroup() as tasks,
        ):
            signals = tasks.create_task(self._read_signals())
            code = await self._supervise(watchdog, listeners)
            signals.cancel()
            self._end_followers()
        self.note("all apps stopped; bye")
        return code

    async def _supervise(self, watchdog: Watchdog, listeners: list[socket.socket]) -> int:
        proxy_config = self.config.proxy
        async with Supervisor(
            self.config,
            self.state_dir,
            on_transition=self._on_transition,
            on_line=self._on_line,
            extra_env=self._app_env(),
            watchdog=watchdog,
            before_stop=self._out_of_rotation,
            drain_wait=self._wait_drained,
            on_note=self.note,
        ) as sup:
            self.supervisor = sup
            if proxy_config is None:
                return await self._serve(sup)
            # The proxy stops before the apps do: it finishes its in-flight requests
            # while every instance is still there to answer them.
            try:
                async with ProxyWorkers(proxy_config, listeners, state_dir=self.state_dir) as proxy:
                    self.proxy = proxy
                    await self._publish()
                    async with asyncio.TaskGroup() as tasks:
                        publisher = tasks.create_task(self._keep_publishing())
                        code = await self._serve(sup)
                        publisher.cancel()
                    self.note("stopping the proxy")
            finally:
                self.proxy = None
            return code

    async def _serve(self, sup: Supervisor) -> int:
        """Start every app, then run until told to stop; return the exit code."""
        started = asyncio.ensure_future(sup.start_all())
        stopped = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([started, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            started.cancel()
            self.phase = "stopping"
            self.note("stopped before every app was ready")
            _tell_starter({"ok": False, "error": "stopped before every app was ready"})
            return 0
        stopped.cancel()
        try:
            started.result()
        except NotReadyError as exc:
            self.phase = "failed"
            self.note(str(exc))
            _tell_starter({"ok": False, "error": str(exc)})
            return 1
        self.phase = "running"
        self.note(self._summary(sup))
        notify("READY=1")
        _tell_starter({"ok": True, "summary": self._summary(sup)})
        _give_back_freed_memory()
        await self._stop.wait()
        self.phase = "stopping"
        notify("STOPPING=1")
        self.note("stopping every app")
        return 0

    # -- routing: what the proxy may send requests to ------------------------------------

    def _app_env(self) -> dict[str, str]:
        """Env every app gets from kanri itself: KANRI_URL, the proxy's own address."""
        proxy = self.config.proxy
        if proxy is None:
            return {}
        host, port = parse_listen(proxy.listen[0])
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return {"KANRI_URL": f"http://{host}:{port}"}

    def _snapshot(self) -> Snapshot:
        sup = self._sup()
        apps = {}
        for name, app in sup.apps.items():
            cfg = app.config
            ready = tuple(
                Upstream(inst.key, name, "127.0.0.1", inst.port)
                for inst in app.instances
                if inst.state is State.READY and cfg.ready == "port"
            )
            coming = any(inst.coming for inst in app.instances) and cfg.ready == "port"
            apps[name] = AppTargets(
                name, ready, cfg.balance, cfg.health, cfg.health_interval, coming
            )
        self._version += 1
        return Snapshot(self._version, self.config.routes, apps)

    async def _publish(self) -> None:
        """Send the current routing snapshot to every proxy worker and wait for their acks."""
        async with self._publish_lock:
            if self.proxy is not None and self.supervisor is not None:
                await self.proxy.publish(self._snapshot())

    async def _keep_publishing(self) -> None:
        """Publish after every change of the ready set; bursts are coalesced into one."""
        while True:
            await self._routing_changed.wait()
            self._routing_changed.clear()
            await self._publish()

    async def _out_of_rotation(self, inst: Instance) -> None:
        """The stop gate: no worker may route to ``inst`` once this returns."""
        await self._publish()

    async def _wait_drained(self, inst: Instance, timeout: float) -> None:
        """Wait until no proxy worker has a request in flight on ``inst``, up to ``timeout``."""
        proxy = self.proxy
        if proxy is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await proxy.inflight(inst.key) == 0:
                return
            await asyncio.sleep(DRAIN_POLL)
        self.note(f"{inst.name}: requests still in flight after drain_timeout ({timeout:g}s)")

    def _summary(self, sup: Supervisor) -> str:
        parts = []
        for name, app in sup.apps.items():
            ready = sum(1 for i in app.instances if i.state is State.READY)
            ports = ",".join(str(i.port) for i in app.instances)
            parts.append(f"{name} {ready}/{len(app.instances)} ready (port {ports})")
        url = self._app_env().get("KANRI_URL")
        proxy = f"; proxy on {url}" if url else ""
        return "ready: " + "; ".join(parts) + proxy

    def _end_followers(self) -> None:
        for queue in self._followers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    # -- the Controller of the control API ----------------------------------------------

    def _sup(self) -> Supervisor:
        if self.supervisor is None:
            raise UnknownTargetError("the daemon is still starting; try again in a moment")
        return self.supervisor

    def _resolve(self, target: str) -> list[Instance]:
        sup = self._sup()
        if target == "all":
            return sup.instances()
        name, _, index = target.partition(":")
        if name not in sup.apps:
            known = ", ".join(sup.apps) or "none"
            raise UnknownTargetError(f"no app named {name!r}; apps: {known}")
        instances = sup.instances(name)
        if not index:
            return instances
        chosen = [i for i in instances if str(i.index) == index]
        if not chosen:
            raise UnknownTargetError(
                f"app {name!r} has no instance {index!r}; it has {len(instances)} (0-{len(instances) - 1})"
            )
        return chosen

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": __version__,
            "phase": self.phase,
            "config": str(self.config.file),
            "root": str(self.config.root),
            "state_dir": str(self.state_dir),
            "started_at": self.started_at,
            "uptime": time.time() - self.started_at,
            "apps": list(self.config.apps),
        }

    async def instances(self) -> list[dict[str, Any]]:
        sup = self._sup()
        insts = sup.instances()
        pids = [i.pid for i in insts if i.pid is not None]
        usage = await asyncio.to_thread(self._meter.sample, pids)
        now = time.monotonic()
        rows = []
        for inst in insts:
            pid = inst.pid
            cpu, rss = usage.get(pid, (0.0, 0)) if pid is not None else (0.0, 0)
            running_since = inst.started_at if inst.state.running else None
            rows.append(
                {
                    "app": inst.app.name,
                    "instance": inst.index,
                    "name": inst.name,
                    "pid": pid,
                    "state": str(inst.state),
                    "ready": inst.state is State.READY,
                    "port": inst.port,
                    "uptime": now - running_since if running_since is not None else None,
                    "restarts": inst.restarts,
                    "cpu": round(cpu, 1),
                    "memory": rss,
                }
            )
        return rows

    def describe(self, app: str) -> dict[str, Any]:
        sup = self._sup()
        if app not in sup.apps:
            raise UnknownTargetError(f"no app named {app!r}; apps: {', '.join(sup.apps) or 'none'}")
        cfg = sup.apps[app].config
        return {
            "name": app,
            "config": cfg.model_dump(mode="json", exclude={"env", "env_profiles"}),
            "env_keys": sorted(cfg.env),
            "instances": [
                {
                    "name": inst.name,
                    "state": str(inst.state),
                    "pid": inst.pid,
                    "port": inst.port,
                    "restarts": inst.restarts,
                    "log_files": [str(p) for p in log_paths(cfg, inst.index, self.state_dir) if p],
                    "exit_codes": [{"at": at, "code": code} for at, code in inst.exit_codes],
                    "transitions": [
                        {"at": t.at, "from": str(t.old), "to": str(t.new), "reason": t.reason}
                        for t in inst.history
                    ],
                }
                for inst in sup.instances(app)
            ],
        }

    async def act(self, action: str, target: str) -> dict[str, Any]:
        sup = self._sup()
        chosen = self._resolve(target)
        if action == "stop":
            for inst in chosen:
                inst.stop()
            await asyncio.gather(
                *(
                    inst.wait_for(lambda s: s is State.STOPPED, inst.app.kill_timeout + 10)
                    for inst in chosen
                )
            )
        elif action == "start":
            for inst in chosen:
                inst.start()
            await self._wait_ready(sup, chosen)
        elif action == "restart":
            for inst in chosen:
                inst.restart("restart requested")
            await self._wait_ready(sup, chosen)
        else:  # reload: one instance at a time, each replacement ready before the old one goes
            by_app: dict[str, list[Instance]] = {}
            for inst in chosen:
                by_app.setdefault(inst.app.name, []).append(inst)
            for app, insts in by_app.items():
                await sup.reload(app, insts)
            chosen = [i for i in sup.instances() if i.app.name in by_app and i.state.running]
        return {
            "instances": [{"name": i.name, "state": str(i.state), "pid": i.pid} for i in chosen]
        }

    async def _wait_ready(self, sup: Supervisor, chosen: list[Instance]) -> None:
        by_app: dict[str, list[Instance]] = {}
        for inst in chosen:
            by_app.setdefault(inst.app.name, []).append(inst)
        # A restart first leaves READY; wait until each instance has left it or is past it.
        for inst in chosen:
            await inst.wait_for(_restart_begun(inst), 60)
        await asyncio.gather(*(sup.wait_ready(app, insts) for app, insts in by_app.items()))

    async def scale(self, app: str, count: int) -> dict[str, Any]:
        sup = self._sup()
        if app not in sup.apps:
            raise UnknownTargetError(f"no app named {app!r}; apps: {', '.join(sup.apps) or 'none'}")
        await sup.scale(app, count)
        return {"app": app, "instances": len(sup.apps[app].instances)}

    def log_lines(self, app: str | None, count: int, since: float | None) -> list[dict[str, str]]:
        chosen = self._resolve(app or "all")
        cutoff = timestamp(time.time() - since) if since is not None else None
        lines: list[dict[str, str]] = []
        for inst in chosen:
            for path in log_paths(inst.app, inst.index, self.state_dir):
                if path is None:
                    continue
                for line in tail_lines(path, count):
                    if cutoff is None or line[: len(cutoff)] >= cutoff:
                        lines.append({"instance": inst.name, "line": line})
        lines.sort(key=lambda item: item["line"][:23])  # the timestamp prefix sorts as text
        return lines[-count:] if count else []

    async def follow_logs(self, app: str | None) -> AsyncIterator[dict[str, str]]:
        self._resolve(app or "all")  # an unknown app or instance is an error, not silence

        def wanted(name: str) -> bool:
            if app is None or app == "all":
                return True
            return name == app if ":" in app else name.startswith(f"{app}:")

        queue: asyncio.Queue[dict[str, str] | None] = asyncio.Queue(FOLLOW_QUEUE)
        self._followers.add(queue)
        try:
            while (item := await queue.get()) is not None:
                if wanted(item["instance"]):
                    yield item
        finally:
            self._followers.discard(queue)

    async def reload_config(self) -> dict[str, Any]:
        """Re-read kanri.toml and apply only the difference; an invalid file changes nothing."""
        from kanri.config import load_config  # loaded at the first reload, not at start

        sup = self._sup()
        try:
            new = load_config(self.config.file, self.config.env_name)
        except ConfigError as exc:
            raise ReloadRefusedError(f"the config was not applied: {exc}") from None
        notes = []
        if new.proxy != self.config.proxy:
            notes.append(
                "[proxy] settings changed: they take effect at the next start of kanri "
                "(the listen sockets stay open across a reload)"
            )
            new = new.model_copy(update={"proxy": self.config.proxy})
        routes_changed = new.routes != self.config.routes
        self.note(f"reloading the config from {new.file}")
        done = await sup.apply(new)
        self.config = new
        await self._publish()
        summary = ", ".join(f"{k}: {' '.join(v)}" for k, v in done.items() if v) or "no app changed"
        self.note(
            f"config reloaded ({summary}; routes {'changed' if routes_changed else 'unchanged'})"
        )
        return {**done, "routes_changed": routes_changed, "notes": notes}

    async def metrics(self) -> dict[str, Any]:
        proxy = None
        if self.proxy is not None:
            stats = await self.proxy.stats()
            proxy = {
                "workers": len(stats),
                "requests": sum(s.requests for s in stats),
                "errors": sum(s.responses_5xx for s in stats),
                "connections": sum(s.connections for s in stats),
                "bytes_out": sum(s.bytes_out for s in stats),
            }
        return {"instances": await self.instances(), "proxy": proxy}

    def down(self) -> None:
        self.note("down requested: stopping everything")
        self._stop.set()


def _restart_begun(inst: Instance) -> Callable[[State], bool]:
    return lambda state: state is not State.READY or not inst.wants_restart


def _tell_starter(message: dict[str, Any]) -> None:
    """Tell a waiting `kanri up -d` how the start went, through the pipe it passed us."""
    fd_text = os.environ.pop(NOTIFY_FD_ENV, None)
    if not fd_text or not fd_text.isdigit():
        return
    with contextlib.suppress(OSError):
        os.write(int(fd_text), json.dumps(message).encode() + b"\n")
        os.close(int(fd_text))


def _give_back_freed_memory() -> None:
    """Return the C heap's free pages to the kernel, once start-up is over.

    Imports and starting every app free memory that glibc keeps mapped otherwise,
    for the daemon's whole life (about 0.5 MiB of RSS). Not glibc: nothing to do.
    """
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).malloc_trim(0)
