"""The daemon's side: worker processes, restarts, snapshots and their acks, stats, listeners."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from kanri.config.model import ProxyConfig
from kanri.proxy import ListenError, bind_listeners
from kanri.proxy.workers import MALLOC_TUNABLES, worker_env
from tests.proxy.helpers import RunningProxy, TestUpstream, route, snapshot, wait_for


@pytest.fixture
def pair(tmp_path: Path, upstream: TestUpstream) -> Iterator[RunningProxy]:
    running = RunningProxy(tmp_path, workers=2, access_log=True)
    running.publish(snapshot([route("/", tmp_path, app="app")], {"app": [upstream.upstream()]}))
    yield running
    running.close()


def test_bind_listeners_refuses_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = ProxyConfig(listen=("127.0.0.1:0", f"127.0.0.1:{port}"))
        with pytest.raises(ListenError, match="already in use"):
            bind_listeners(config)


def test_bind_listeners_refuses_a_port_shared_with_reuseport() -> None:
    # Our sockets set SO_REUSEPORT; another server that sets it too must still be refused.
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match="already in use"):
            bind_listeners(ProxyConfig(listen=(f"127.0.0.1:{port}",)))


def test_new_connections_are_spread_over_the_workers(pair: RunningProxy) -> None:
    for _ in range(40):
        with httpx.Client(base_url=pair.url) as client:
            assert client.get("/echo").status_code == 200
    counts = [s.requests for s in pair.stats()]
    assert len(counts) == 2 and min(counts) >= 5, counts


def test_publish_waits_until_every_worker_applied_it(
    pair: RunningProxy, upstream: TestUpstream, upstream_b: TestUpstream, tmp_path: Path
) -> None:
    assert len(pair.pids()) == 2
    pair.publish(
        snapshot([route("/", tmp_path, app="app")], {"app": [upstream_b.upstream()]}, version=2)
    )
    # Right after publish returns, no worker may still route to the removed instance.
    with httpx.Client(base_url=pair.url) as client:
        for _ in range(20):
            with httpx.Client(base_url=pair.url) as fresh:
                assert json.loads(fresh.get("/echo").content)["upstream"] == "b"
        assert client.get("/echo").status_code == 200


def test_stats_and_access_log(pair: RunningProxy, tmp_path: Path) -> None:
    with httpx.Client(base_url=pair.url) as client:
        for _ in range(5):
            client.get("/echo", headers={"User-Agent": "stats-test"})
    stats = pair.stats()
    assert sorted(s.pid for s in stats) == sorted(pair.pids())
    assert sum(s.requests for s in stats) >= 5
    assert sum(s.bytes_out for s in stats) > 0
    log = tmp_path / "logs" / "access.log"
    wait_for(lambda: log.exists() and log.read_text().count("stats-test") >= 5, what="access log")
    line = log.read_text().splitlines()[0]
    assert '"GET /echo HTTP/1.1" 200 ' in line and line.startswith("127.0.0.1 - - [")
    stamp = datetime.strptime(line.split("[", 1)[1].split("]", 1)[0], "%d/%b/%Y:%H:%M:%S %z")
    assert abs(stamp.timestamp() - time.time()) < 120, line  # wall-clock time, not uptime


def test_a_held_head_lost_with_its_instance_is_not_logged_as_sent(
    pair: RunningProxy, upstream: TestUpstream, tmp_path: Path
) -> None:
    """The only instance dies after its head: the GET waits for another instance, and
    a client that leaves meanwhile is logged 499, not with the 200 it never got."""
    key = upstream.upstream().key
    upstream.cutting, upstream.requests = True, 0
    try:
        with socket.create_connection(("127.0.0.1", pair.port)) as client:
            client.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUser-Agent: held-then-lost\r\n\r\n")
            wait_for(lambda: upstream.requests >= 1, what="the request at the instance")
            wait_for(lambda: pair.inflight(key) == 0, what="the proxy to see the cut")
            # Closing with linger 0: the client leaves with a reset.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        upstream.cutting = False
    log = tmp_path / "logs" / "access.log"
    wait_for(lambda: log.exists() and "held-then-lost" in log.read_text(), what="access log")
    line = next(x for x in log.read_text().splitlines() if "held-then-lost" in x)
    assert '"GET /echo HTTP/1.1" 499 0 ' in line, line


def test_workers_do_not_load_pydantic(pair: RunningProxy) -> None:
    # Workers get plain settings and routes; pydantic would add about 14 MiB to each.
    with httpx.Client(base_url=pair.url) as client:
        assert client.get("/echo").status_code == 200
    for pid in pair.pids():
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "pydantic" not in maps
        assert "uvloop" in maps  # the check reads the right process


def test_workers_keep_big_buffers_on_the_heap(pair: RunningProxy) -> None:
    """The workers run with MALLOC_TUNABLES (glibc shows only its first setting in
    /proc/PID/environ once it has parsed them, so that is what is compared)."""
    first = MALLOC_TUNABLES.split(":")[0]
    for pid in pair.pids():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        tunables = [e for e in environ if e.startswith(b"GLIBC_TUNABLES=")]
        assert tunables and first.encode() in tunables[0], tunables


def test_worker_env_adds_the_malloc_tunables_and_keeps_the_users() -> None:
    assert worker_env({"HOME": "/root"}) == {"HOME": "/root", "GLIBC_TUNABLES": MALLOC_TUNABLES}
    other = worker_env({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"})
    assert other["GLIBC_TUNABLES"] == f"glibc.pthread.rseq=0:{MALLOC_TUNABLES}"
    mine = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
    assert worker_env(mine) == mine


def test_killed_worker_is_restarted_and_no_connection_is_refused(pair: RunningProxy) -> None:
    failures: list[str] = []
    served = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal served
        while not stop.is_set():
            try:
                with httpx.Client(base_url=pair.url, timeout=5) as client:
                    response = client.get("/echo")
                if response.status_code == 200:
                    served += 1
            except httpx.ConnectError as exc:  # refused: the listen socket was not there
                failures.append(repr(exc))
            except httpx.HTTPError:
                pass  # a connection the killed worker had accepted may be cut

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: served > 20, what="load to start")
        victim = pair.pids()[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(pair.pids()) == 2 and victim not in pair.pids(), what="a restart")
        before = served
        wait_for(lambda: served > before + 50, what="serving after the restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    new_pids = pair.pids()
    with httpx.Client(base_url=pair.url) as client:
        assert client.get("/echo").status_code == 200
    assert len(new_pids) == 2


def test_single_worker_restart_keeps_the_socket(tmp_path: Path, upstream: TestUpstream) -> None:
    running = RunningProxy(tmp_path, workers=1)
    try:
        running.publish(snapshot([route("/", tmp_path, app="app")], {"app": [upstream.upstream()]}))
        victim = running.pids()[0]
        os.kill(victim, signal.SIGKILL)
        # Connections made while no worker runs wait in the backlog and are served later.
        began = time.monotonic()
        with httpx.Client(base_url=running.url, timeout=10) as client:
            assert client.get("/echo").status_code == 200
        assert time.monotonic() - began < 5
        assert running.pids() and running.pids()[0] != victim
    finally:
        running.close()


def test_workers_die_with_the_daemon(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from kanri.config.model import ProxyConfig\n"
        "from kanri.proxy import ProxyWorkers, bind_listeners\n"
        "async def main():\n"
        "    config = ProxyConfig(listen=('127.0.0.1:0',), workers=2, access_log=False)\n"
        "    async with ProxyWorkers(config, bind_listeners(config), state_dir=Path(sys.argv[1])) as w:\n"
        "        print(*w.pids(), flush=True)\n"
        "        await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    daemon = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert daemon.stdout is not None
    pids = [int(p) for p in daemon.stdout.readline().split()]
    assert len(pids) == 2
    daemon.kill()
    daemon.wait()
    daemon.stdout.close()

    def gone() -> bool:
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            return False
        return True

    wait_for(gone, what="workers to exit after the daemon was killed")


def test_removed_instance_drains_its_in_flight_requests(
    pair: RunningProxy, upstream: TestUpstream, upstream_b: TestUpstream, tmp_path: Path
) -> None:
    old = upstream.upstream()
    result: list[int] = []

    def slow_request() -> None:
        with httpx.Client(base_url=pair.url, timeout=10) as client:
            result.append(client.get("/slow?s=1").status_code)

    thread = threading.Thread(target=slow_request)
    thread.start()
    try:
        wait_for(lambda: pair.inflight(old.key) == 1, what="the request to be in flight")
        pair.publish(
            snapshot([route("/", tmp_path, app="app")], {"app": [upstream_b.upstream()]}, version=3)
        )
        assert pair.inflight(old.key) == 1  # out of rotation, still answering
        wait_for(lambda: pair.inflight(old.key) == 0, what="the instance to drain")
    finally:
        thread.join()
    assert result == [200]


def test_json_access_log_to_a_configured_path(tmp_path: Path, upstream: TestUpstream) -> None:
    path = tmp_path / "custom" / "access.json"
    running = RunningProxy(tmp_path, access_log=str(path), access_log_format="json")
    try:
        running.publish(snapshot([route("/", tmp_path, app="app")], {"app": [upstream.upstream()]}))
        with httpx.Client(base_url=running.url) as client:
            assert client.get("/echo?x=1", headers={"User-Agent": "json-test"}).status_code == 200
            assert client.get("/nowhere-else", headers={"Host": "other"}).status_code == 200
        wait_for(lambda: path.exists() and path.read_text().count("json-test") >= 1, what="log")
        record = json.loads(path.read_text().splitlines()[0])
        assert record["status"] == 200 and record["user_agent"] == "json-test"
        assert "/echo?x=1" in json.dumps(record) and record["remote_addr"] == "127.0.0.1"
    finally:
        running.close()


def test_access_log_off_writes_nothing(tmp_path: Path, upstream: TestUpstream) -> None:
    running = RunningProxy(tmp_path, access_log=False)
    try:
        running.publish(snapshot([route("/", tmp_path, app="app")], {"app": [upstream.upstream()]}))
        with httpx.Client(base_url=running.url) as client:
            for _ in range(5):
                assert client.get("/echo").status_code == 200
        assert sum(s.requests for s in running.stats()) >= 5  # served, and counted
    finally:
        running.close()
    assert not (tmp_path / "logs" / "access.log").exists()
