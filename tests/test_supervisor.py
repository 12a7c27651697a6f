"""The supervisor with real child processes: restarts, backoff, crash loops, stops, monitors."""

from __future__ import annotations

import asyncio
import grp
import itertools
import os
import pwd
import re
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import pytest

from kanri.config import load_config
from kanri.supervisor import State, Supervisor, Transition
from kanri.supervisor.instance import Instance
from tests.helpers import APPS, PY, alive, async_wait_until

Body = Callable[[Supervisor, list[Transition]], Awaitable[None]]


def run_stack(tmp_path: Path, toml: str, body: Body) -> list[Transition]:
    (tmp_path / "kanri.toml").write_text(toml)
    config = load_config(tmp_path / "kanri.toml")
    events: list[Transition] = []

    def record(_inst: Instance, event: Transition) -> None:
        events.append(event)

    async def main() -> None:
        async with Supervisor(config, tmp_path / ".kanri", on_transition=record) as sup:
            await body(sup, events)

    asyncio.run(main())
    return events


def app(name: str, args: str = "", extra: str = "") -> str:
    return f'[apps.{name}]\ncommand = "{PY} {APPS / "pyapp.py"} {args}"\n{extra}\n'


def edges(events: list[Transition]) -> list[str]:
    return [f"{e.old}->{e.new}" for e in events]


def test_crash_loop_backs_off_then_errors_then_retries(tmp_path: Path) -> None:
    toml = app(
        "crashy",
        "--exit-code 1",
        'restart_delay = "100ms"\nmax_restarts = 3\nerrored_retry = "1s"\nmin_uptime = "5s"',
    )

    async def body(sup: Supervisor, events: list[Transition]) -> None:
        sup.start_app("crashy")
        inst = sup.instances("crashy")[0]
        assert await inst.wait_for(lambda s: s is State.ERRORED, 10)
        errored_at = time.monotonic()
        # ERRORED is not a dead end: after errored_retry it starts again.
        await async_wait_until(lambda: inst.spawns == 5, 5, "a retry after the cool-down")
        assert time.monotonic() - errored_at >= 0.9

    events = run_stack(tmp_path, toml, body)
    backoffs = [e for e in events if e.new is State.BACKOFF]
    delays = [float(re.search(r"restarting in ([\d.]+)s", e.reason).group(1)) for e in backoffs]  # type: ignore[union-attr]
    assert delays == [0.1, 0.2, 0.4], "exponential backoff from restart_delay"
    spawned = [e.at for e in events if e.new is State.STARTING]
    gaps = [b - a for a, b in itertools.pairwise(spawned)]
    # Each gap is the delay plus the app's start-up time, which varies on a busy machine;
    # the delay grows by 0.3 s from the first gap to the third, far above that noise.
    assert gaps[2] > gaps[0] + 0.15, f"growing delays between starts: {gaps}"
    errored = [e for e in events if e.new is State.ERRORED]
    assert "4 fast exits in a row" in errored[0].reason


def test_an_instance_is_coming_until_it_is_ready_or_given_up(tmp_path: Path) -> None:
    """``coming`` tells the proxy to hold requests: true while an instance starts,
    waits to restart or stops to start again; false once it is ready, stopped, or
    errored after a crash loop."""
    toml = app("web") + app(
        "crashy", "--exit-code 1", 'restart_delay = "100ms"\nmax_restarts = 1\nmin_uptime = "5s"'
    )
    (tmp_path / "kanri.toml").write_text(toml)
    config = load_config(tmp_path / "kanri.toml")
    seen: list[tuple[str, str, bool]] = []

    def record(inst: Instance, event: Transition) -> None:
        seen.append((event.app, str(event.new), inst.coming))

    async def main() -> None:
        async with Supervisor(config, tmp_path / ".kanri", on_transition=record) as sup:
            web, crashy = sup.instances("web")[0], sup.instances("crashy")[0]
            assert not web.coming and not crashy.coming  # not started yet
            sup.start_app("web")
            sup.start_app("crashy")
            assert await web.wait_for(lambda s: s is State.READY, 10)
            assert await crashy.wait_for(lambda s: s is State.ERRORED, 10)
            sup.restart_app("web")
            assert await web.wait_for(lambda s: s is State.STOPPED, 10)
            assert await web.wait_for(lambda s: s is State.READY, 10)
            await sup.stop_app("web")

    asyncio.run(main())
    web = [(state, coming) for name, state, coming in seen if name == "web"]
    assert web == [
        ("starting", True),
        ("ready", False),
        ("stopping", True),  # restarting: a new process follows
        ("stopped", True),
        ("starting", True),
        ("ready", False),
        ("stopping", False),  # stopped for good
        ("stopped", False),
    ]
    crashy = [(state, coming) for name, state, coming in seen if name == "crashy"]
    assert crashy == [
        ("starting", True),
        ("backoff", True),
        ("starting", True),
        ("errored", False),
        ("stopped", False),  # the supervisor closing
    ]


def test_a_warming_app_is_asked_for_its_health_ten_times_a_second(tmp_path: Path) -> None:
    """Readiness is probed every 10 ms only while nothing listens; an app that listens
    but answers its health path with 503 while it warms up is asked every 100 ms."""
    toml = app("warm", "--warm-up 0.8", 'health = "/healthz"')

    async def body(sup: Supervisor, events: list[Transition]) -> None:
        sup.start_app("warm")
        assert await sup.instances("warm")[0].wait_for(lambda s: s is State.READY, 10)

    events = run_stack(tmp_path, toml, body)
    assert any(e.new is State.READY and "GET /healthz" in e.reason for e in events)
    log = (tmp_path / ".kanri" / "logs" / "warm-0.log").read_text()
    refused = log.count("health 503")
    # About 8 in the 0.8 s at 100 ms apart; 10 ms apart it was about 60.
    assert 1 <= refused <= 15, refused


def test_on_failure_does_not_restart_a_clean_exit(tmp_path: Path) -> None:
    toml = app("once", "--exit-code 0", 'restart = "on-failure"') + app(
        "failing", "--exit-code 2", 'restart = "on-failure"\nmax_restarts = 1'
    )

    async def body(sup: Supervisor, events: list[Transition]) -> None:
        sup.start_app("once")
        sup.start_app("failing")
        once, failing = sup.instances("once")[0], sup.instances("failing")[0]
        assert await once.wait_for(lambda s: s is State.STOPPED and bool(once.spawns), 10)
        assert await failing.wait_for(lambda s: s is State.ERRORED, 10)
        assert once.spawns == 1
        assert failing.spawns == 2

    events = run_stack(tmp_path, toml, body)
    once_events = [e for e in events if e.app == "once"]
    assert edges(once_events) == ["stopped->starting", "starting->stopped"]
    assert "restart = on-failure" in once_events[-1].reason


def test_crash_of_ready_instance_is_restarted(tmp_path: Path) -> None:
    async def body(sup: Supervisor, events: list[Transition]) -> None:
        sup.start_app("web")
        inst = sup.instances("web")[0]
        assert await inst.wait_for(lambda s: s is State.READY, 10)
        first = inst.pid
        assert first is not None
        inst.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        await async_wait_until(
            lambda: inst.state is State.READY and inst.pid != first, 10, "a new ready process"
        )
        assert not alive(first)
        assert inst.restarts == 1

    events = run_stack(tmp_path, app("web"), body)
    assert "ready->backoff" in edges(events)
    assert any("signal SIGKILL" in e.reason for e in events)


def test_sigterm_ignored_gets_sigkill_after_kill_timeout(tmp_path: Path) -> None:
    toml = app("stubborn", "--ignore-term", 'kill_timeout = "1s"')

    async def body(sup: Supervisor, events: list[Transition]) -> None:
        sup.start_app("stubborn")
        inst = sup.instances("stubborn")[0]
        assert await inst.wait_for(lambda s: s is State.READY, 10)
        pid = inst.pid
        assert pid is not None
        began = time.monotonic()
        await sup.stop_app("stubborn")
        took = time.monotonic() - began
        assert inst.state is State.STOPPED
        assert not alive(pid)
        assert 0.9 <= took < 5, f"stopped after {took:.2f}s"
        assert "signal SIGKILL" in inst.history[-1].reason
        assert any("sending SIGKILL" in line for line in inst.log.tail)

    run_stack(tmp_path, toml, body)


def test_max_memory_restarts_the_instance(tmp_path: Path) -> None:
    toml = app("hog", "--grow 20", 'max_memory = "120MiB"\nmin_uptime = "1s"')

    async def body(sup: Supervisor, events: list[Transition]) -> None:
        sup.start_app("hog")
        inst = sup.instances("hog")[0]
        assert await inst.wait_for(lambda s: s is State.READY, 10)
        await async_wait_until(lambda: inst.restarts >= 1, 20, "a memory restart")

    events = run_stack(tmp_path, toml, body)
    reasons = [e.reason for e in events if e.old is State.READY and e.new is State.STOPPING]
    assert reasons and "is over max_memory 120.0MiB" in reasons[0]


def test_watched_file_change_restarts_the_app(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    toml = app("dev", "", f'watch = ["{src}"]')

    async def body(sup: Supervisor, events: list[Transition]) -> None:
        sup.start_app("dev")
        inst = sup.instances("dev")[0]
        assert await inst.wait_for(lambda s: s is State.READY, 10)
        first = inst.pid
        await asyncio.wait_for(sup.watchers_ready["dev"].wait(), 10)
        (src / "app.py").write_text("print('changed')")
        await async_wait_until(
            lambda: inst.state is State.READY and inst.pid != first, 10, "a restart"
        )

    events = run_stack(tmp_path, toml, body)
    assert any("watched file changed" in e.reason and "app.py" in e.reason for e in events)


def test_watch_filter_ignores_defaults_patterns_and_own_logs(tmp_path: Path) -> None:
    from watchfiles import Change

    from kanri.supervisor.watching import _WatchFilter

    own_log = tmp_path / "app.log"
    keep = _WatchFilter(["*.tmp", "build"], [own_log])
    assert keep(Change.modified, str(tmp_path / "app.py"))
    assert not keep(Change.modified, str(tmp_path / "node_modules" / "x.js"))
    assert not keep(Change.modified, str(tmp_path / ".git" / "HEAD"))
    assert not keep(Change.modified, str(tmp_path / "__pycache__" / "a.pyc"))
    assert not keep(Change.modified, str(tmp_path / ".kanri" / "logs" / "a.log"))
    assert not keep(Change.modified, str(tmp_path / "scratch.tmp"))
    assert not keep(Change.modified, str(tmp_path / "build" / "out.js"))
    assert not keep(Change.modified, str(own_log))


def test_logs_have_timestamps_and_rotate(tmp_path: Path) -> None:
    toml = app("chatty", "--print-lines 200", 'log_max_size = "4KiB"\nlog_backups = 2')

    async def body(sup: Supervisor, events: list[Transition]) -> None:
        sup.start_app("chatty")
        inst = sup.instances("chatty")[0]
        assert await inst.wait_for(lambda s: s is State.READY, 10)
        await async_wait_until(lambda: "to stderr" in inst.log.tail, 5, "the last line")

    run_stack(tmp_path, toml, body)
    logs = tmp_path / ".kanri" / "logs"
    current, first, second = (
        logs / n for n in ("chatty-0.log", "chatty-0.log.1", "chatty-0.log.2")
    )
    assert current.exists() and first.exists() and second.exists()
    assert not (logs / "chatty-0.log.3").exists(), "only log_backups backups are kept"
    for path in (current, first, second):
        assert path.stat().st_size <= 4096
        for line in path.read_text().splitlines():
            assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ", line), line
    assert "[err] to stderr" in current.read_text()


def test_cron_restart_restarts_on_schedule(tmp_path: Path) -> None:
    # croniter's optional sixth field is seconds: every two seconds.
    toml = app("nightly", "", 'cron_restart = "* * * * * */2"')

    async def body(sup: Supervisor, events: list[Transition]) -> None:
        sup.start_app("nightly")
        inst = sup.instances("nightly")[0]
        assert await inst.wait_for(lambda s: s is State.READY, 10)
        first = inst.pid
        await async_wait_until(
            lambda: inst.state is State.READY and inst.pid != first, 10, "a scheduled restart"
        )

    events = run_stack(tmp_path, toml, body)
    assert any("cron_restart '* * * * * */2'" in e.reason for e in events)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
def test_user_and_group_switch(tmp_path: Path) -> None:
    # node, not this venv's python: that may live under /root, which nobody cannot enter.
    toml = (
        f'[apps.unprivileged]\ncommand = "node {APPS / "nodeapp.js"}"\n'
        'user = "nobody"\ngroup = "nogroup"\n'
    )

    async def body(sup: Supervisor, events: list[Transition]) -> None:
        sup.start_app("unprivileged")
        inst = sup.instances("unprivileged")[0]
        assert await inst.wait_for(lambda s: s is State.READY, 10)
        assert inst.pid is not None
        proc = psutil.Process(inst.pid)
        assert proc.uids().real == pwd.getpwnam("nobody").pw_uid
        assert proc.gids().real == grp.getgrnam("nogroup").gr_gid

    run_stack(tmp_path, toml, body)


def test_a_worker_that_serves_no_port_is_ready_once_started(tmp_path: Path) -> None:
    toml = app("queue", "--no-listen", 'ready = "started"\nready_timeout = "1s"')

    async def body(sup: Supervisor, events: list[Transition]) -> None:
        sup.start_app("queue")
        await sup.wait_ready("queue")
        inst = sup.instances("queue")[0]
        assert inst.pid is not None and alive(inst.pid)
        await asyncio.sleep(1.5)  # past ready_timeout: still ready, never killed as "not ready"
        assert inst.state is State.READY and inst.spawns == 1

    run_stack(tmp_path, toml, body)


def test_an_unwritable_log_loses_lines_not_the_app(tmp_path: Path) -> None:
    # /dev/full answers every write with ENOSPC, as a full disk would.
    toml = app("noisy", "--print-lines 20", 'out_file = "/dev/full"')

    async def body(sup: Supervisor, events: list[Transition]) -> None:
        sup.start_app("noisy")
        inst = sup.instances("noisy")[0]
        assert await inst.wait_for(lambda s: s is State.READY, 10)
        await async_wait_until(lambda: inst.log.out.dropped >= 20, 10, "the lines to be dropped")
        assert inst.state is State.READY and "line 19" in " ".join(inst.log.tail)

    run_stack(tmp_path, toml, body)


def test_a_failing_watcher_takes_nothing_down(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    toml = app("dev", "", f'watch = ["{src}"]')

    async def body(sup: Supervisor, events: list[Transition]) -> None:
        sup.start_app("dev")
        inst = sup.instances("dev")[0]
        assert await inst.wait_for(lambda s: s is State.READY, 10)
        await asyncio.wait_for(sup.watchers_ready["dev"].wait(), 10)
        src.rmdir()  # the watched directory disappears under the watcher
        first = inst.pid
        sup.restart_app("dev")  # the supervisor still answers, and the app still restarts
        await async_wait_until(
            lambda: inst.state is State.READY and inst.pid != first, 10, "a restart"
        )

    run_stack(tmp_path, toml, body)
