"""Zero downtime under real load: reloads, crashes, scaling and config changes lose nothing.

Each test runs `kanri up` with the proxy, puts 32 keep-alive clients on it for
about ten seconds, acts in the middle (reload, kill -9, scale, config edit),
and counts every failed request: a connection error, a timeout or a 5xx (the
test apps never answer 5xx themselves). Each test prints its counts.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.load import BackgroundLoad, LoadResult
from kanri.control.client import Client
from tests.helpers import APPS, PY, KanriUp, alive, free_port, kanri_cli, wait_until

LOAD_SECONDS = 10.0
CLIENTS = 32


def write_stack(tmp_path: Path, app: str, port: int) -> Path:
    config = tmp_path / "kanri.toml"
    config.write_text(
        f"""
[proxy]
listen = ["127.0.0.1:{port}"]
access_log = false

[[routes]]
path = "/"
app = "web"

{app}
"""
    )
    return config


def py_web(instances: int, extra: str = "") -> str:
    return (
        f'[apps.web]\ncommand = "{PY} {APPS / "pyapp.py"}"\ninstances = {instances}\n'
        f'kill_timeout = "5s"\n{extra}\n'
    )


def node_web(instances: int) -> str:
    return f'[apps.web]\ncommand = "node {APPS / "nodeapp.js"}"\ninstances = {instances}\n'


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[list[KanriUp]]:
    runs: list[KanriUp] = []
    yield runs
    for run in runs:
        run.close()


def start(runs: list[KanriUp], config: Path) -> KanriUp:
    run = KanriUp(config)
    runs.append(run)
    run.wait_for_output(r"ready: web", timeout=30)
    return run


def rows(config: Path) -> list[dict[str, object]]:
    result = kanri_cli(config, "ls", "--json")
    assert result.returncode == 0, result.stderr
    data: list[dict[str, object]] = json.loads(result.stdout)
    return data


def proxied(config: Path) -> int:
    """Requests the proxy has answered so far (all workers), from the daemon's metrics."""
    metrics = Client(config.parent / ".kanri" / "kanri.sock").metrics()
    return int(metrics["proxy"]["requests"])


def wait_for_traffic(config: Path, requests: int = 300) -> None:
    """Wait until the proxy has answered ``requests`` more requests than now."""
    start = proxied(config)
    wait_until(lambda: proxied(config) >= start + requests, 10, f"{requests} proxied requests")


def under_load(config: Path, port: int, path: str = "/") -> BackgroundLoad:
    load = BackgroundLoad(port, LOAD_SECONDS, CLIENTS, path).start()
    # Act only once the load is flowing (clients connected, pools warm).
    wait_for_traffic(config)
    return load


def finish(load: BackgroundLoad, what: str) -> LoadResult:
    result = load.wait(LOAD_SECONDS + 60)
    print(f"{what}: {result}")
    assert result.ok > 500, f"{what}: too little traffic to mean anything: {result}"
    return result


@pytest.mark.parametrize("instances", [2, 1])
@pytest.mark.parametrize("kind", ["python", "node"])
def test_reload_loses_nothing(
    tmp_path: Path, stack: list[KanriUp], kind: str, instances: int
) -> None:
    port = free_port()
    app = py_web(instances) if kind == "python" else node_web(instances)
    config = write_stack(tmp_path, app, port)
    start(stack, config)
    before = {r["pid"] for r in rows(config)}
    load = under_load(config, port)
    reload = kanri_cli(config, "reload", "web")
    assert reload.returncode == 0, reload.stdout + reload.stderr
    result = finish(load, f"reload of a {kind} app with {instances} instance(s)")
    assert result.failed == 0, result
    after = rows(config)
    assert len(after) == instances and all(r["state"] == "ready" for r in after)
    assert not before & {r["pid"] for r in after}, "every instance was replaced"
    assert not any(alive(int(str(p))) for p in before)


def test_kill_9_of_one_instance_loses_no_get(tmp_path: Path, stack: list[KanriUp]) -> None:
    port = free_port()
    config = write_stack(tmp_path, py_web(2, 'restart_delay = "1s"'), port)
    start(stack, config)
    victim = int(str(rows(config)[0]["pid"]))
    load = under_load(config, port)
    os.kill(victim, signal.SIGKILL)
    result = finish(load, "kill -9 of one of two instances")
    assert result.failed == 0, result
    wait_until(lambda: all(r["state"] == "ready" for r in rows(config)), 20, "the restart")


@pytest.mark.parametrize("kind", ["python", "node"])
def test_kill_9_of_the_only_instance_loses_no_get(
    tmp_path: Path, stack: list[KanriUp], kind: str
) -> None:
    """No instance is ready while it restarts: the proxy holds the requests until
    the new one is, instead of answering 503."""
    port = free_port()
    config = write_stack(tmp_path, py_web(1) if kind == "python" else node_web(1), port)
    start(stack, config)
    victim = int(str(rows(config)[0]["pid"]))
    load = under_load(config, port)
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: (
            rows(config)[0]["pid"] not in (victim, None) and rows(config)[0]["state"] == "ready"
        ),
        20,
        "the restart",
    )
    result = finish(load, f"kill -9 of the only {kind} instance")
    assert result.failed == 0, result
    assert rows(config)[0]["restarts"] == 1


def test_scale_up_and_down_loses_nothing(tmp_path: Path, stack: list[KanriUp]) -> None:
    port = free_port()
    config = write_stack(tmp_path, py_web(2), port)
    start(stack, config)
    load = under_load(config, port)
    up = kanri_cli(config, "scale", "web", "4")
    assert up.returncode == 0, up.stderr
    assert len([r for r in rows(config) if r["state"] == "ready"]) == 4
    wait_for_traffic(config)  # traffic over all four before shrinking
    down = kanri_cli(config, "scale", "web", "1")
    assert down.returncode == 0, down.stderr
    result = finish(load, "scale 4 then 1")
    assert result.failed == 0, result
    assert len(rows(config)) == 1
    pids_seen = {json.loads(body)["pid"] for body in result.bodies}
    assert len(pids_seen) >= 4, "the new instances took traffic"


def test_config_reload_applies_new_env_without_loss(tmp_path: Path, stack: list[KanriUp]) -> None:
    port = free_port()
    config = write_stack(tmp_path, py_web(2, 'env = { GREETING = "hello" }'), port)
    start(stack, config)
    assert _get(port)["greeting"] == "hello"
    load = under_load(config, port)
    config.write_text(config.read_text().replace('"hello"', '"bonjour"'))
    reload = kanri_cli(config, "reload")
    assert reload.returncode == 0, reload.stdout + reload.stderr
    assert "reloaded: web" in reload.stdout
    result = finish(load, "config reload with a new env")
    assert result.failed == 0, result
    assert all(_get(port)["greeting"] == "bonjour" for _ in range(10))


def test_invalid_config_reload_changes_nothing(tmp_path: Path, stack: list[KanriUp]) -> None:
    port = free_port()
    config = write_stack(tmp_path, py_web(1), port)
    start(stack, config)
    pids = {r["pid"] for r in rows(config)}
    config.write_text(config.read_text() + '\n[apps.broken]\ncomand = "x"\n')
    reload = kanri_cli(config, "reload")
    assert reload.returncode == 1
    assert "apps.broken.comand" in reload.stderr and "not applied" in reload.stderr
    assert {r["pid"] for r in rows(config)} == pids


def test_request_in_flight_survives_reload(tmp_path: Path, stack: list[KanriUp]) -> None:
    port = free_port()
    config = write_stack(tmp_path, py_web(1), port)
    start(stack, config)
    slow = BackgroundLoad(port, 0.1, clients=1, path="/slow?s=3").start()
    wait_until(lambda: _inflight_started(config), 5, "the slow request to reach the app")
    reload = kanri_cli(config, "reload", "web")
    assert reload.returncode == 0, reload.stderr
    result = slow.wait(30)
    assert result.ok == 1 and result.failed == 0, result


def _inflight_started(config: Path) -> bool:
    """The proxy holds a client connection (the slow request is on its way to the app)."""
    metrics = Client(config.parent / ".kanri" / "kanri.sock").metrics()
    return int(metrics["proxy"]["connections"]) > 0


def test_failed_replacement_keeps_the_old_instance(tmp_path: Path, stack: list[KanriUp]) -> None:
    port = free_port()
    broken = tmp_path / "broken-deploy"
    app = (
        f'[apps.web]\ncommand = "{PY} {APPS / "pyapp.py"} --fail-if {broken}"\n'
        'ready_timeout = "5s"\nmax_restarts = 2\nrestart_delay = "100ms"\n'
    )
    config = write_stack(tmp_path, app, port)
    start(stack, config)
    old = rows(config)[0]["pid"]
    broken.write_text("x")
    load = under_load(config, port)
    reload = kanri_cli(config, "reload", "web")
    assert reload.returncode == 1
    assert "did not become ready" in reload.stderr and f"{broken} exists" in reload.stderr
    result = finish(load, "reload with a replacement that exits at once")
    assert result.failed == 0, result
    now = rows(config)
    assert [r["pid"] for r in now] == [old] and now[0]["state"] == "ready"


def _get(port: int) -> dict[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        data: dict[str, str] = json.loads(resp.read())
        return data
