"""One instance of an app: its process, its state, and the task that owns both.

The instance's own task (``run``) is the only code that changes its state.
Commands from outside (start, stop, restart) only record what is wanted and
wake the task, which applies them at a point where the state is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kanri.config.model import AppConfig
from kanri.supervisor import health, spawn
from kanri.supervisor.logs import InstanceLog, LineSplitter
from kanri.supervisor.policy import RestartPolicy
from kanri.supervisor.states import State, check_transition
from kanri.supervisor.watchdog import Watchdog

# Readiness is probed every 10 ms for the first second after the spawn while nothing
# listens on the port (most apps listen within it; a refused connect costs
# microseconds and the app never sees it), then every 100 ms: an app that answers its
# health path with an error while it warms up is asked (and logs it) 10 times a second.
READY_POLL_FAST = 0.01
READY_POLL_FAST_FOR = 1.0
READY_POLL = 0.1
KILL_WAIT = 5.0  # after SIGKILL, how long to wait for the kernel to reap


@dataclass(frozen=True)
class Transition:
    app: str
    index: int
    old: State
    new: State
    reason: str
    at: float
    pid: int | None
    port: int


TransitionHook = Callable[["Instance", Transition], None]
StopGate = Callable[["Instance"], Awaitable[None]]
"""Awaited after an instance leaves READY and before it is signalled: the daemon uses it
to take the instance out of the proxy's rotation first."""
DrainWait = Callable[["Instance", float], Awaitable[None]]
"""Awaited while DRAINING: returns once the instance has no requests in flight, or after
the given number of seconds (its drain_timeout)."""


class Instance:
    def __init__(
        self,
        app: AppConfig,
        index: int,
        port: int,
        log: InstanceLog,
        *,
        extra_env: dict[str, str],
        watchdog: Watchdog | None,
        on_transition: TransitionHook,
        before_stop: StopGate | None = None,
        drain_wait: DrainWait | None = None,
    ) -> None:
        self.app = app
        self.index = index
        self.port = port
        self.log = log
        self.policy = RestartPolicy(app)
        self.state = State.STOPPED
        self.process: asyncio.subprocess.Process | None = None
        self.spawns = 0
        self.restarts = 0
        self.started_at: float | None = None  # monotonic time of the last spawn
        self.ready_at: float | None = None
        self.exit_codes: deque[tuple[float, int | None]] = deque(maxlen=10)
        self.history: deque[Transition] = deque(maxlen=20)
        self._extra_env = extra_env
        self._watchdog = watchdog
        self._on_transition = on_transition
        self._before_stop = before_stop
        self._drain_wait = drain_wait
        self._want_drain = False
        # What outside callers want; applied by run().
        self._want_running = False
        self._want_restart: str | None = None
        self._closing = False
        self._poke = asyncio.Event()
        self._changed = asyncio.Event()
        self._exited = asyncio.Event()
        self._pending_delay = 0.0
        self._failed_start = False

    # -- identity and views ---------------------------------------------------------

    @property
    def name(self) -> str:
        return f"{self.app.name}:{self.index}"

    @property
    def key(self) -> str:
        """Unique for the life of one process: the proxy keys its pools by this."""
        return f"{self.name}@{self.port}#{self.spawns}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.state.running else None

    @property
    def wants_running(self) -> bool:
        return self._want_running

    @property
    def wants_restart(self) -> bool:
        return self._want_restart is not None

    @property
    def coming(self) -> bool:
        """Not ready, but on its way there: starting, waiting out a restart delay, or
        stopping to start again (not ERRORED: a crash loop is not coming back soon)."""
        if not self._want_running:
            return False
        state = self.state
        return state in (State.STARTING, State.BACKOFF, State.STOPPED) or (
            state is State.STOPPING and self._want_restart is not None
        )

    # -- commands (may be called from any task on the loop) --------------------------

    def start(self) -> None:
        if self.state in (State.BACKOFF, State.ERRORED):
            self.policy.stable()  # an explicit start forgets the crash loop
            self._pending_delay = 0.0
        self._want_running = True
        self._want_drain = False
        self._poke.set()

    def stop(self) -> None:
        self._want_running = False
        self._want_restart = None
        self._poke.set()

    def drain(self) -> None:
        """Stop gracefully: out of rotation first, in-flight requests finish, then the signal.

        Used for reloads and scaling down; the instance ends STOPPED and stays there.
        """
        self._want_drain = True
        self.stop()

    def restart(self, reason: str = "restart requested") -> None:
        """Stop (if running) and start again; from BACKOFF or ERRORED, start now."""
        if self.state.running:
            self._want_restart = reason
        self.start()

    def close(self) -> None:
        """Stop the instance and let run() return."""
        self._closing = True
        self.stop()

    async def wait_for(self, predicate: Callable[[State], bool], timeout: float | None) -> bool:
        """Wait until predicate(state) holds; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self.state):
                    changed = self._changed
                    await changed.wait()
        except TimeoutError:
            return False
        return True

    # -- the owner task ---------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            while True:
                state = self.state
                if state is State.STOPPED:
                    if self._closing:
                        return
                    if self._want_running:
                        await self._spawn(tasks)
                    else:
                        await self._wait_poke()
                elif state is State.STARTING:
                    await self._starting()
                elif state is State.READY:
                    await self._ready()
                elif state is State.DRAINING:
                    await self._draining()
                elif state is State.STOPPING:
                    await self._stopping()
                elif await self._waiting(state):  # BACKOFF or ERRORED
                    await self._spawn(tasks)

    def _set(self, new: State, reason: str) -> None:
        old = self.state
        check_transition(old, new)
        self.state = new
        event = Transition(
            self.app.name, self.index, old, new, reason, time.time(), self._pid_any(), self.port
        )
        self.history.append(event)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        self._on_transition(self, event)

    def _pid_any(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def _wait_poke(self, timeout: float | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._poke.wait()
        self._poke.clear()

    async def _wait_exit_or_poke(self, timeout: float | None) -> None:
        waits = [
            asyncio.ensure_future(self._exited.wait()),
            asyncio.ensure_future(self._poke.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self._poke.clear()

    # -- phases: each waits for one thing and makes one transition --------------------

    async def _spawn(self, tasks: asyncio.TaskGroup) -> None:
        app = self.app
        env = spawn.instance_env(app, self.index, self.port, self._extra_env)
        argv = spawn.build_argv(app, env)
        self._exited = asyncio.Event()
        self._failed_start = False
        self.spawns += 1
        self.started_at = time.monotonic()
        self.ready_at = None
        try:
            self.process = await spawn.spawn(argv, env, app.cwd, app.user, app.group)
        except OSError as exc:
            # The command itself cannot run (missing binary, bad cwd): a failed start.
            self.process = None
            self.log.line("err", f"kanri: cannot start {argv[0]!r}: {exc.strerror or exc}")
            self._set(State.STARTING, f"spawning {' '.join(argv)}")
            self._exited.set()
            return
        if self._watchdog is not None:
            self._watchdog.add(self.process.pid)
        self._set(State.STARTING, f"spawned pid {self.process.pid} on port {self.port}")
        tasks.create_task(self._watch_process(self.process, self._exited))

    async def _watch_process(
        self, process: asyncio.subprocess.Process, exited: asyncio.Event
    ) -> None:
        """Pump the process's output into its log, then record its exit."""
        assert process.stdout is not None and process.stderr is not None
        async with asyncio.TaskGroup() as pumps:
            pumps.create_task(self._pump(process.stdout, "out"))
            pumps.create_task(self._pump(process.stderr, "err"))
            await process.wait()
            # The leader is gone; take down anything it left in its group, which also
            # closes the pipes that its children may still hold.
            spawn.kill_group(process.pid, signal.SIGKILL)
        if self._watchdog is not None:
            self._watchdog.remove(process.pid)
        self.exit_codes.append((time.time(), process.returncode))
        exited.set()

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        splitter = LineSplitter(lambda text: self.log.line(name, text))
        while chunk := await stream.read(65536):
            splitter.feed(chunk)
        splitter.close()

    async def _starting(self) -> None:
        assert self.started_at is not None
        deadline = self.started_at + self.app.ready_timeout
        fast_until = self.started_at + READY_POLL_FAST_FOR
        while True:
            if self._exited.is_set():
                return self._after_exit()
            if not self._want_running or self._want_restart:
                return await self._begin_stop("stop requested while starting")
            if self.app.ready == "started":
                self.ready_at = time.monotonic()
                return self._set(State.READY, 'started (ready = "started": no port to check)')
            if time.monotonic() >= deadline:
                self._failed_start = True
                self.log.line(
                    "err", f"kanri: not ready within ready_timeout ({self.app.ready_timeout:g}s)"
                )
                return await self._begin_stop(
                    f"not ready within ready_timeout ({self.app.ready_timeout:g}s)"
                )
            readiness = await health.check_ready(self.port, self.app.health)
            if readiness is health.Readiness.READY and not self._exited.is_set():
                self.ready_at = time.monotonic()
                check = f"GET {self.app.health}" if self.app.health else "TCP connect"
                return self._set(State.READY, f"{check} to port {self.port} succeeded")
            if readiness is health.Readiness.NOT_READY:
                fast_until = 0.0
            fast = time.monotonic() < fast_until
            await self._wait_exit_or_poke(READY_POLL_FAST if fast else READY_POLL)

    async def _ready(self) -> None:
        await self._wait_exit_or_poke(None)
        if self._exited.is_set():
            return self._after_exit()
        if self._want_restart:
            return await self._begin_stop(self._want_restart)
        if self._want_drain:
            return self._set(State.DRAINING, "draining: no new requests; in-flight ones finish")
        if not self._want_running:
            return await self._begin_stop("stop requested")

    async def _draining(self) -> None:
        """Out of rotation (the gate waits for the proxy to say so), then wait for in-flight work."""
        self._want_drain = False
        if self._before_stop is not None:
            await self._before_stop(self)
        began = time.monotonic()
        if self._drain_wait is not None:
            waiting = asyncio.ensure_future(self._drain_wait(self, self.app.drain_timeout))
            exited = asyncio.ensure_future(self._exited.wait())
            try:
                await asyncio.wait([waiting, exited], return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
                exited.cancel()
        if self._exited.is_set():
            return self._set(State.STOPPED, f"exited while draining, with {self._describe_exit()}")
        took = time.monotonic() - began
        await self._begin_stop(f"drained in {took:.2f}s", gate=False)

    async def _begin_stop(self, reason: str, *, gate: bool = True) -> None:
        self._set(State.STOPPING, reason)
        if gate and self._before_stop is not None:
            await self._before_stop(self)
        if self.process is not None and not self._exited.is_set():
            spawn.kill_group(self.process.pid, self.app.signal)

    async def _stopping(self) -> None:
        app = self.app
        if not self._exited.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(app.kill_timeout):
                    await self._exited.wait()
        if not self._exited.is_set() and self.process is not None:
            self.log.line(
                "err",
                f"kanri: still running {app.kill_timeout:g}s after "
                f"{app.kill_signal}; sending SIGKILL",
            )
            spawn.kill_group(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KILL_WAIT):
                    await self._exited.wait()
        if self._failed_start and self._want_running and not self._want_restart:
            return self._after_exit()
        restart = self._want_restart
        self._want_restart = None
        self._set(State.STOPPED, f"exited with {self._describe_exit()}")
        if restart:
            self.restarts += 1

    def _after_exit(self) -> None:
        """The process exited (or never got ready) without being asked: apply the policy."""
        ready_for = time.monotonic() - self.ready_at if self.ready_at is not None else 0.0
        code = self.process.returncode if self.process is not None else None
        how = self._describe_exit()
        if not self._want_running:
            return self._set(State.STOPPED, f"exited with {how}")
        decision = self.policy.on_exit(code, ready_for, failed_start=self._failed_start)
        if decision.verdict == "stop":
            self._want_running = False
            return self._set(State.STOPPED, f"exited with {how}; {decision.reason}")
        self._pending_delay = decision.delay
        if decision.verdict == "errored":
            return self._set(
                State.ERRORED,
                f"exited with {how}; {decision.reason}; retrying in {decision.delay:g}s",
            )
        self._set(State.BACKOFF, f"exited with {how}; restarting in {decision.delay:g}s")

    def _describe_exit(self) -> str:
        if self.process is None:
            return "no process"
        code = self.process.returncode
        if code is None:
            return "unknown status"
        if code < 0:
            try:
                return f"signal {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
        return f"code {code}"

    async def _waiting(self, state: State) -> bool:
        """Sit in BACKOFF or ERRORED until the delay is over (True: start now)."""
        deadline = time.monotonic() + self._pending_delay
        while True:
            if not self._want_running:
                self._set(State.STOPPED, "stop requested")
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._pending_delay == 0:
                self.restarts += 1
                return True
            await self._wait_poke(remaining)
