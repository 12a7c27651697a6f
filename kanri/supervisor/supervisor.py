"""The supervisor: every app's instances, started in dependency order and kept alive.

It knows nothing of the proxy. It reports each state transition and each log
line through callbacks; the daemon turns transitions into routing snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from kanri.config.model import AppConfig, Config
from kanri.errors import NotReadyError, SupervisorError
from kanri.supervisor import monitors
from kanri.supervisor.instance import DrainWait, Instance, StopGate, Transition
from kanri.supervisor.logs import InstanceLog
from kanri.supervisor.spawn import PortAllocator, kill_group
from kanri.supervisor.states import State
from kanri.supervisor.watchdog import Watchdog

LineHook = Callable[[Instance, str, str], None]
"""Called with (instance, stream, text) for every line an instance prints."""
TransitionHook = Callable[[Instance, Transition], None]

STOP_MARGIN = 10.0  # on top of kill_timeout: time for SIGKILL and reaping


def log_paths(app: AppConfig, index: int, state_dir: Path) -> tuple[Path, Path | None]:
    """Where an instance's output goes. A configured file gets "-<n>" when there are several."""

    def numbered(path: Path) -> Path:
        if app.instances == 1 and index == 0:
            return path
        return path.with_name(f"{path.stem}-{index}{path.suffix}")

    out = numbered(app.out_file) if app.out_file else state_dir / "logs" / f"{app.name}-{index}.log"
    err = numbered(app.error_file) if app.error_file else None
    return out, err


class App:
    """One app: its instances and its monitors."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.instances: list[Instance] = []

    @property
    def name(self) -> str:
        return self.config.name


class Supervisor:
    def __init__(
        self,
        config: Config,
        state_dir: Path,
        *,
        on_transition: TransitionHook,
        on_line: LineHook | None = None,
        extra_env: dict[str, str] | None = None,
        watchdog: Watchdog | None = None,
        before_stop: StopGate | None = None,
        drain_wait: DrainWait | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.apps: dict[str, App] = {name: App(app) for name, app in config.apps.items()}
        self.ports = PortAllocator()
        self._on_transition = on_transition
        self._on_line = on_line
        self._extra_env = extra_env or {}
        self._watchdog = watchdog
        self._before_stop = before_stop
        self._drain_wait = drain_wait
        self._on_note = on_note
        self._tasks: asyncio.TaskGroup | None = None
        self._monitors: dict[str, list[asyncio.Task[None]]] = {}
        self.watchers_ready: dict[str, asyncio.Event] = {}

    async def __aenter__(self) -> Supervisor:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        for app in self.apps.values():
            for index in range(app.config.instances):
                self._add_instance(app, index)
            self._start_monitors(app)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._tasks is not None
        try:
            await self.stop_all()
        finally:
            for tasks in self._monitors.values():
                for task in tasks:
                    task.cancel()
            for app in self.apps.values():
                for inst in app.instances:
                    inst.close()
            await self._tasks.__aexit__(None, None, None)
            for app in self.apps.values():
                for inst in app.instances:
                    inst.log.close()

    # -- building --------------------------------------------------------------------

    def _add_instance(self, app: App, index: int, *, surge: bool = False) -> Instance:
        """Create an instance (not started). A surge instance gets a fresh port even when
        the app has a fixed ``port``, since its predecessor still holds that one."""
        assert self._tasks is not None
        cfg = app.config
        fixed = cfg.port + index if cfg.port is not None and not surge else None
        port = self.ports.take(fixed)
        out, err = log_paths(cfg, index, self.state_dir)
        inst: Instance

        def sink(stream: str, text: str) -> None:
            if self._on_line is not None:
                self._on_line(inst, stream, text)

        log = InstanceLog(out, err, cfg.log_max_size, cfg.log_backups, sink)
        inst = Instance(
            cfg,
            index,
            port,
            log,
            extra_env=self._extra_env,
            watchdog=self._watchdog,
            on_transition=self._on_transition,
            before_stop=self._before_stop,
            drain_wait=self._drain_wait,
        )
        if not surge:
            app.instances.append(inst)
        self._tasks.create_task(inst.run(), name=f"instance {inst.name}")
        return inst

    def _start_monitors(self, app: App) -> None:
        cfg = app.config

        def instances() -> list[Instance]:
            return app.instances

        tasks = self._monitors.setdefault(app.name, [])
        if cfg.max_memory is not None:
            tasks.append(self._spawn_monitor(monitors.watch_memory(cfg, instances)))
        if cfg.cron_restart is not None:
            tasks.append(self._spawn_monitor(monitors.cron_restarts(cfg, instances)))
        if monitors.watch_paths(cfg, self.config.root):
            own = [p for i in range(cfg.instances) for p in log_paths(cfg, i, self.state_dir) if p]
            ready = self.watchers_ready.setdefault(app.name, asyncio.Event())
            from kanri.supervisor.watching import watch_files

            watcher = watch_files(cfg, self.config.root, instances, own, ready)
            tasks.append(self._spawn_monitor(watcher))

    def _stop_monitors(self, name: str) -> None:
        for task in self._monitors.pop(name, []):
            task.cancel()
        self.watchers_ready.pop(name, None)

    def _spawn_monitor(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        assert self._tasks is not None
        return self._tasks.create_task(self._guarded(coro))

    async def _guarded(self, coro: Coroutine[Any, Any, None]) -> None:
        """A monitor that fails (a watched directory deleted, ...) is reported and ends;
        it must never take the supervisor, and with it every app, down."""
        try:
            await coro
        except Exception as exc:
            if self._on_note is not None:
                self._on_note(f"a monitor stopped: {type(exc).__name__}: {exc}")

    # -- queries -----------------------------------------------------------------------

    def instances(self, app: str | None = None) -> list[Instance]:
        if app is not None:
            return list(self.apps[app].instances)
        return [inst for a in self.apps.values() for inst in a.instances]

    # -- commands ----------------------------------------------------------------------

    async def start_all(self) -> None:
        """Start every app after the apps it depends on are ready; raise NotReadyError."""
        for name in self.config.app_order():
            for inst in self.apps[name].instances:
                inst.start()
            await self.wait_ready(name)

    async def wait_ready(self, name: str, instances: list[Instance] | None = None) -> None:
        """Wait until every instance of an app is ready, or raise NotReadyError saying why."""
        app = self.apps[name]
        cfg = app.config
        chosen = app.instances if instances is None else instances

        def settled(inst: Instance) -> Callable[[State], bool]:
            # STOPPED counts only once the instance no longer wants to run (a start
            # request that the instance's task has not picked up yet is not an answer).
            return lambda s: (
                s in (State.READY, State.ERRORED) or (s is State.STOPPED and not inst.wants_running)
            )

        await asyncio.gather(
            *(inst.wait_for(settled(inst), cfg.ready_timeout + 1.0) for inst in chosen)
        )
        for inst in chosen:
            if inst.state is State.READY:
                continue
            last = inst.history[-1].reason if inst.history else "never started"
            if inst.state is State.STARTING or inst.state is State.BACKOFF:
                why = f"not ready within ready_timeout ({cfg.ready_timeout:g}s)"
            else:
                why = f"{inst.state}: {last}"
            tail = "\n".join(f"    {line}" for line in list(inst.log.tail)[-15:])
            hint = f"\n  last log lines of {inst.name}:\n{tail}" if tail else ""
            raise NotReadyError(f"app {name!r} did not become ready: {inst.name} {why}{hint}")

    async def stop_all(self) -> None:
        """Stop every app, dependents first, each within its kill_timeout."""
        for name in reversed(self.config.app_order()):
            await self.stop_app(name)

    async def stop_app(self, name: str) -> None:
        app = self.apps[name]
        for inst in app.instances:
            inst.stop()
        limit = app.config.kill_timeout + STOP_MARGIN
        await asyncio.gather(
            *(inst.wait_for(lambda s: s is State.STOPPED, limit) for inst in app.instances)
        )

    async def scale(self, name: str, count: int) -> None:
        """Run ``count`` instances of an app: start new ones, or stop the highest-numbered."""
        app = self.apps[name]
        added = [self._add_instance(app, i) for i in range(len(app.instances), count)]
        for inst in added:
            inst.start()
        removed = app.instances[count:]
        await asyncio.gather(*(self._retire(app, inst) for inst in removed))
        if added:
            await self.wait_ready(name, added)

    async def _retire(self, app: App, inst: Instance) -> None:
        """Drain an instance out of service, wait until it has exited, and forget it."""
        inst.drain()
        inst.close()
        cfg = inst.app
        limit = cfg.drain_timeout + cfg.kill_timeout + STOP_MARGIN
        await inst.wait_for(lambda s: s is State.STOPPED, limit)
        if inst in app.instances:
            app.instances.remove(inst)
        self.ports.release(inst.port)
        inst.log.close()

    async def reload(self, name: str, targets: list[Instance] | None = None) -> None:
        """Replace instances one at a time without downtime.

        For each old instance: start a replacement on a fresh port, wait until it is
        ready (it then enters rotation), drain the old one (out of rotation, in-flight
        requests finish up to drain_timeout) and stop it. If a replacement never gets
        ready, the reload stops there, the old instance stays in service, and
        SupervisorError says why, with the replacement's last log lines.
        """
        app = self.apps[name]
        for old in list(targets if targets is not None else app.instances):
            if old not in app.instances:
                continue
            if not old.state.running:
                old.restart("reload requested")  # nothing in service to protect
                await self.wait_ready(name, [old])
                continue
            new = self._add_instance(app, old.index, surge=True)
            app.instances.insert(app.instances.index(old) + 1, new)
            new.start()
            try:
                await self.wait_ready(name, [new])
            except NotReadyError as exc:
                new.close()
                await new.wait_for(lambda s: s is State.STOPPED, new.app.kill_timeout + STOP_MARGIN)
                app.instances.remove(new)
                self.ports.release(new.port)
                new.log.close()
                raise SupervisorError(
                    f"reload of {name!r} stopped: the replacement for {old.name} did not become "
                    f"ready, so {old.name} stays in service.\n{exc}"
                ) from None
            await self._retire(app, old)

    async def apply(self, new: Config) -> dict[str, list[str]]:
        """Move to a new config, touching only what changed; return what was done.

        Added apps start; removed apps drain and stop; an app whose settings changed
        gets a rolling reload (so a new command or env takes effect without downtime),
        and an app whose instance count alone changed is scaled.
        """
        old = self.config
        added = [n for n in new.apps if n not in old.apps]
        removed = [n for n in old.apps if n not in new.apps]
        changed = [n for n in new.apps if n in old.apps and new.apps[n] != old.apps[n]]
        self.config = new
        for name in reversed([n for n in old.app_order() if n in removed]):
            app = self.apps[name]
            self._stop_monitors(name)
            await asyncio.gather(*(self._retire(app, inst) for inst in list(app.instances)))
            del self.apps[name]
        rescaled = []
        for name in [n for n in new.app_order() if n in changed or n in added]:
            cfg = new.apps[name]
            if name in added:
                app = self.apps[name] = App(cfg)
                for index in range(cfg.instances):
                    self._add_instance(app, index).start()
                self._start_monitors(app)
                await self.wait_ready(name)
                continue
            app = self.apps[name]
            before = app.config
            app.config = cfg
            self._stop_monitors(name)
            self._start_monitors(app)
            if before.model_copy(update={"instances": cfg.instances}) == cfg:
                rescaled.append(name)  # only the count changed: no need to replace anything
            else:
                await self.reload(name)
            await self.scale(name, cfg.instances)
        return {
            "added": added,
            "removed": removed,
            "reloaded": [n for n in changed if n not in rescaled],
            "scaled": rescaled,
        }

    def start_app(self, name: str) -> None:
        for inst in self.apps[name].instances:
            inst.start()

    def restart_app(self, name: str) -> None:
        for inst in self.apps[name].instances:
            inst.restart()

    def kill_everything(self) -> None:
        """Last resort on a forced exit: SIGKILL every instance's process group now."""
        for inst in self.instances():
            if inst.process is not None:
                with contextlib.suppress(OSError):
                    kill_group(inst.process.pid, signal.SIGKILL)
