"""`kanri up` end to end: real apps in Python and Node.js, real signals, no orphans."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import psutil
import pytest

from tests.helpers import APPS, PY, KanriUp, alive, get_json, wait_until

CPUS = len(os.sched_getaffinity(0))


def stack(tmp_path: Path, kill_timeout: str = "5s") -> Path:
    config = tmp_path / "kanri.toml"
    config.write_text(
        f"""
[apps.api]
command = "{PY} {APPS / "pyapp.py"}"
instances = 2
kill_timeout = "{kill_timeout}"

[apps.web]
command = "node {APPS / "nodeapp.js"}"
instances = "max"
depends_on = ["api"]
kill_timeout = "{kill_timeout}"
"""
    )
    return config


@pytest.fixture
def up(tmp_path: Path):  # type: ignore[no-untyped-def]
    runs: list[KanriUp] = []

    def start(config: Path, *args: str) -> KanriUp:
        run = KanriUp(config, *args)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()


def test_stack_gets_ports_env_and_stops_cleanly(tmp_path: Path, up) -> None:  # type: ignore[no-untyped-def]
    run = up(stack(tmp_path))
    run.wait_for_output(r"ready: api 2/2 ready .*; web \d+/\d+ ready")
    api, web = run.ports("api"), run.ports("web")
    assert sorted(api) == [0, 1]
    assert sorted(web) == list(range(CPUS))
    all_ports = list(api.values()) + list(web.values())
    assert len(set(all_ports)) == len(all_ports), "every instance has its own port"

    for index, port in api.items():
        info = get_json(port)
        assert info["app"] == "api" and info["instance"] == str(index)
        assert info["port"] == str(port) and info["unbuffered"] == "1"
    for index, port in web.items():
        info = get_json(port)
        assert info["app"] == "web" and info["instance"] == str(index)
        assert info["node_app_instance"] == str(index)

    # depends_on: web was spawned only after every api instance was ready
    text = run.text()
    assert text.index("web:0 pid") > max(text.index(f"api:{i} pid") for i in api)
    children = run.descendants()
    assert len(children) >= 2 + CPUS

    run.signal(signal.SIGTERM)
    assert run.wait(timeout=5 + 5) == 0
    wait_until(lambda: not any(alive(p) for p in children), 5, "every child to be gone")
    assert "all apps stopped" in run.text()


def test_kill_9_of_kanri_leaves_no_child(tmp_path: Path, up) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "kanri.toml"
    # One app that ignores SIGTERM and one started through a shell with a grandchild:
    # PR_SET_PDEATHSIG alone would leave both behind.
    config.write_text(
        f"""
[apps.stubborn]
command = "{PY} {APPS / "pyapp.py"} --ignore-term"

[apps.shelled]
command = "sleep 1000 & {PY} {APPS / "pyapp.py"}"
"""
    )
    run = up(config)
    run.wait_for_output(r"ready: stubborn 1/1 ready .*; shelled 1/1 ready")
    children = run.descendants()
    assert len(children) >= 3
    run.signal(signal.SIGKILL)
    run.wait(timeout=5)
    wait_until(lambda: not any(alive(p) for p in children), 10, "every child to be gone")


def test_second_sigint_forces_exit(tmp_path: Path, up) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "kanri.toml"
    config.write_text(
        f"""
[apps.stubborn]
command = "{PY} {APPS / "pyapp.py"} --ignore-term"
kill_timeout = "60s"
"""
    )
    run = up(config)
    run.wait_for_output(r"ready: stubborn 1/1")
    children = run.descendants()
    run.signal(signal.SIGINT)
    run.wait_for_output(r"SIGINT received: stopping")
    run.signal(signal.SIGINT)
    assert run.wait(timeout=5) == 130
    wait_until(lambda: not any(alive(p) for p in children), 5, "every child to be gone")


def test_invalid_config_starts_nothing(tmp_path: Path, up) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "kanri.toml"
    config.write_text(
        f"""
[apps.ok]
command = "{PY} {APPS / "pyapp.py"}"

[apps.bad]
comand = "x"
"""
    )
    run = up(config)
    assert run.wait(timeout=20) == 2
    assert "apps.bad.comand" in run.text()
    assert not (tmp_path / ".kanri").exists()


def test_app_never_ready_fails_up_with_its_log(tmp_path: Path, up) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "kanri.toml"
    config.write_text(
        f"""
[apps.mute]
command = "{PY} {APPS / "pyapp.py"} --no-listen --print-lines 1"
ready_timeout = "1s"
kill_timeout = "2s"
"""
    )
    run = up(config)
    assert run.wait(timeout=30) == 1
    text = run.text()
    assert "did not become ready" in text and "ready_timeout (1s)" in text
    assert "line 0" in text  # the last log lines are shown
    # process_iter with attrs tolerates processes that exit while it looks at them.
    pids = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "--no-listen" in " ".join(p.info["cmdline"] or [])
    ]
    assert not [p for p in pids if alive(p)]


def test_a_taken_listen_port_is_a_clear_error_and_starts_nothing(tmp_path: Path, up) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "kanri.toml"
        config.write_text(
            f'[proxy]\nlisten = ["127.0.0.1:{port}"]\n[[routes]]\npath = "/"\napp = "web"\n'
            f'[apps.web]\ncommand = "{PY} {APPS / "pyapp.py"}"\n'
        )
        run = up(config)
        assert run.wait(timeout=30) == 1
    text = run.text()
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in text
    assert "Traceback" not in text and "spawned" not in text
