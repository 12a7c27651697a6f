"""The background daemon, its control socket and the PM2-style CLI, with real processes."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import APPS, PY, alive, wait_until


def kanri(
    project: Path, *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    result = subprocess.run(
        [PY, "-m", "kanri", *args],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"kanri {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result


def ls(project: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(kanri(project, "ls", "--json").stdout)
    return rows


def make_project(path: Path, apps: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "kanri.toml").write_text(apps)
    return path


def py_app(name: str, instances: int = 1, args: str = "--print-lines 3", extra: str = "") -> str:
    return (
        f'[apps.{name}]\ncommand = "{PY} {APPS / "pyapp.py"} {args}"\n'
        f'instances = {instances}\nkill_timeout = "3s"\n{extra}\n'
    )


@pytest.fixture
def projects() -> Iterator[list[Path]]:
    """Projects started in a test; each is brought down afterwards, whatever happened."""
    started: list[Path] = []
    yield started
    for project in started:
        kanri(project, "down", check=False)


def test_daemon_lifecycle_against_real_processes(tmp_path: Path, projects: list[Path]) -> None:
    project = make_project(tmp_path / "p", py_app("api", 2) + py_app("worker"))
    projects.append(project)
    out = kanri(project, "up", "-d").stdout
    assert "started in the background" in out and "api 2/2 ready" in out

    rows = ls(project)
    assert [r["name"] for r in rows] == ["api:0", "api:1", "worker:0"]
    for row in rows:
        assert row["state"] == "ready" and row["ready"] is True
        assert alive(row["pid"]) and row["port"] > 0 and row["memory"] > 1_000_000
    table = kanri(project, "ls").stdout
    assert "api" in table and "ready" in table and "restarts" in table

    again = kanri(project, "up", "-d").stdout
    assert "already running" in again

    logs = kanri(project, "logs", "api", "-n", "2").stdout.splitlines()
    assert len(logs) == 2 and all(line.startswith("api:") for line in logs)
    assert all(" | 20" in line for line in logs), "each line carries its timestamp"
    one = kanri(project, "logs", "api:1", "-n", "50").stdout.splitlines()
    assert one and all(line.startswith("api:1 | ") for line in one)
    assert kanri(project, "logs", "api:9", check=False).returncode == 1

    # restart: a new pid, the old process gone
    old = {r["name"]: r["pid"] for r in rows}
    kanri(project, "restart", "api:0")
    rows = ls(project)
    api0 = next(r for r in rows if r["name"] == "api:0")
    assert api0["pid"] != old["api:0"] and api0["state"] == "ready" and api0["restarts"] == 1
    assert not alive(old["api:0"])

    # stop and start
    kanri(project, "stop", "worker")
    worker = next(r for r in ls(project) if r["app"] == "worker")
    assert worker["state"] == "stopped" and worker["pid"] is None
    assert not alive(old["worker:0"])
    kanri(project, "start", "worker")
    worker = next(r for r in ls(project) if r["app"] == "worker")
    assert worker["state"] == "ready" and alive(worker["pid"])

    # scale up and down
    kanri(project, "scale", "api", "4")
    api = [r for r in ls(project) if r["app"] == "api"]
    assert [r["instance"] for r in api] == [0, 1, 2, 3]
    assert all(r["state"] == "ready" and alive(r["pid"]) for r in api)
    assert len({r["port"] for r in api}) == 4
    kanri(project, "scale", "api", "1")
    remaining = [r for r in ls(project) if r["app"] == "api"]
    assert [r["instance"] for r in remaining] == [0]
    for gone in api[1:]:
        assert not alive(gone["pid"])

    # describe
    info = json.loads(kanri(project, "describe", "api", "--json").stdout)
    assert info["name"] == "api" and info["config"]["instances"] == 2
    first = info["instances"][0]
    assert any(t["reason"] == "restart requested" for t in first["transitions"])
    assert first["log_files"][0].endswith("api-0.log")
    text = kanri(project, "describe", "api").stdout
    assert "recent transitions" in text and "ready -> stopping: restart requested" in text

    # down: everything gone, and the CLI says it is not running
    status_pid = json.loads(kanri(project, "ls", "--json").stdout)[0]["pid"]
    daemon_pid = int((project / ".kanri" / "kanri.lock").read_text())
    kanri(project, "down")
    projects.remove(project)
    assert not alive(daemon_pid) and not alive(status_pid)
    after = kanri(project, "ls", check=False)
    assert after.returncode == 1 and "not running" in after.stderr


def test_up_detached_reports_an_app_that_never_gets_ready(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "p",
        py_app("mute", args="--no-listen --print-lines 2", extra='ready_timeout = "1s"'),
    )
    result = kanri(project, "up", "-d", check=False)
    assert result.returncode == 1
    assert "did not become ready" in result.stderr and "line 1" in result.stderr
    wait_until(lambda: kanri(project, "ls", check=False).returncode == 1, 10, "the daemon to exit")


def test_socket_is_owner_only(tmp_path: Path, projects: list[Path]) -> None:
    project = make_project(tmp_path / "p", py_app("api"))
    projects.append(project)
    kanri(project, "up", "-d")
    sock = project / ".kanri" / "kanri.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    if os.geteuid() != 0:
        pytest.skip("connecting as another user needs root to switch users")
    user = _other_user()
    probe = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX)\n"
        "try:\n s.connect(sys.argv[1])\nexcept OSError as e:\n print(type(e).__name__); sys.exit(0)\n"
        "print('connected')\n"
    )
    result = subprocess.run(
        ["/usr/bin/python3", "-c", probe, str(sock)],
        check=False,
        user=user,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == "PermissionError", result.stdout + result.stderr


def _other_user() -> str:
    """A throwaway unprivileged user, created for the test when the system allows it."""
    name = "kanri-test-other"
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        pass
    if shutil.which("useradd"):
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)
        return name
    return "nobody"


def raw_request(sock_path: Path, data: bytes) -> tuple[int, dict[str, Any]]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(15)
        sock.connect(str(sock_path))
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(body)


def test_malformed_api_requests_get_4xx_and_the_daemon_lives(
    tmp_path: Path, projects: list[Path]
) -> None:
    project = make_project(tmp_path / "p", py_app("api"))
    projects.append(project)
    kanri(project, "up", "-d")
    sock = project / ".kanri" / "kanri.sock"

    def post(path: str, body: bytes) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: kanri\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    cases: list[tuple[bytes, int, str]] = [
        (post("/v1/apps/api/restart", b"{not json"), 400, "not valid JSON"),
        (post("/v1/apps/api/scale", b'{"instances": "many"}'), 422, "whole number"),
        (post("/v1/apps/nope/restart", b"{}"), 404, "no app named 'nope'"),
        (post("/v1/apps/api:7/stop", b"{}"), 404, "no instance '7'"),
        (post("/v1/apps/api/explode", b"{}"), 404, "unknown action"),
        (b"DELETE /v1/apps HTTP/1.1\r\nHost: kanri\r\n\r\n", 405, "use GET"),
        (b"GET /v2/everything HTTP/1.1\r\nHost: kanri\r\n\r\n", 404, "no endpoint"),
        (post("/v1/apps/api/restart", b"x" * 70_000), 413, "body larger"),
        (b"GET /v1/apps HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431, "head larger"),
        (b"complete nonsense\r\n\r\n", 400, "malformed request line"),
        (b"GET /v1/logs?n=lots HTTP/1.1\r\nHost: kanri\r\n\r\n", 400, "whole number"),
    ]
    for data, status, phrase in cases:
        got, body = raw_request(sock, data)
        assert got == status, (data[:60], got, body)
        assert phrase in body["error"], (data[:60], body)
    rows = ls(project)
    assert rows[0]["state"] == "ready" and rows[0]["restarts"] == 0


def test_two_projects_do_not_interfere(tmp_path: Path, projects: list[Path]) -> None:
    one = make_project(tmp_path / "one", py_app("alpha"))
    two = make_project(tmp_path / "two", py_app("beta", 2))
    projects.extend([one, two])
    kanri(one, "up", "-d")
    kanri(two, "up", "-d")
    assert [r["name"] for r in ls(one)] == ["alpha:0"]
    assert [r["name"] for r in ls(two)] == ["beta:0", "beta:1"]
    kanri(one, "down")
    projects.remove(one)
    assert all(r["state"] == "ready" for r in ls(two))


def test_kanri_home_moves_the_state(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", py_app("api"))
    home = tmp_path / "state"
    env = dict(os.environ, KANRI_HOME=str(home))
    subprocess.run(
        [PY, "-m", "kanri", "up", "-d"],
        cwd=project,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    try:
        assert (home / "kanri.sock").exists() and (home / "logs" / "api-0.log").exists()
        assert not (project / ".kanri").exists()
        out = subprocess.run(
            [PY, "-m", "kanri", "ls", "--json"],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        assert json.loads(out.stdout)[0]["name"] == "api:0"
    finally:
        subprocess.run(
            [PY, "-m", "kanri", "down"],
            check=False,
            cwd=project,
            env=env,
            timeout=60,
            capture_output=True,
        )


def test_sd_notify_ready_once_every_app_is_ready(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", py_app("api", 2))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify.sock"))
        notify.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
        proc = subprocess.Popen(
            [PY, "-m", "kanri", "up"], cwd=project, env=env, stdout=subprocess.DEVNULL
        )
        try:
            assert notify.recv(1024) == b"READY=1"
            rows = ls(project)
            assert len(rows) == 2 and all(r["state"] == "ready" for r in rows)
            for row in rows:  # the apps must not see systemd's socket
                environ = Path(f"/proc/{row['pid']}/environ").read_bytes().split(b"\0")
                assert not any(e.startswith(b"NOTIFY_SOCKET=") for e in environ)
            proc.terminate()
            assert notify.recv(1024) == b"STOPPING=1"
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_startup_prints_a_valid_unit(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", py_app("api"))
    text = kanri(project, "startup").stdout
    assert "Type=notify" in text and f"up -c {project / 'kanri.toml'}" in text
    if shutil.which("systemd-analyze"):
        unit = tmp_path / "units" / "kanri-test.service"
        unit.parent.mkdir()
        unit.write_text(text)
        result = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
        )
        problems = [line for line in result.stderr.splitlines() if "kanri-test.service" in line]
        assert result.returncode == 0 and not problems, result.stderr
