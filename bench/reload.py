"""Scenario 9: failed requests while an app is reloaded (or an instance killed) under load.

32 keep-alive clients send GETs through the proxy for a few seconds; a quarter
of the way in, the harness runs ``kanri reload node`` or ``pm2 reload APP``, or
sends SIGKILL to an instance (the only one, or one of two). nginx (1 worker)
in front of PM2 keeps its defaults for failures (``max_fails=1 fail_timeout=10s``,
``proxy_next_upstream error timeout``). Every case starts from a fresh stack.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import peers
from bench.contenders import Kanri, Pm2, hello_app, start_nginx, wait_pm2_ready
from bench.load import BackgroundLoad
from bench.options import Options
from bench.procs import BenchError, Cleanup, free_port, wait_answers
from bench.report import Table
from bench.stacks import _two_ports, kanri_node_toml

CLIENTS = 32


@dataclass(frozen=True)
class Case:
    key: str  # for --only: kanri, nginx-pm2-fork, nginx-pm2-cluster
    contender: str
    instances: int
    action: str  # "reload" or "kill -9"


CASES = (
    Case("kanri", "kanri", 1, "reload"),
    Case("kanri", "kanri", 2, "reload"),
    Case("kanri", "kanri", 1, "kill -9"),
    Case("kanri", "kanri", 2, "kill -9"),
    Case("nginx-pm2-fork", "nginx + PM2 fork", 1, "reload"),
    Case("nginx-pm2-fork", "nginx + PM2 fork", 2, "reload"),
    Case("nginx-pm2-fork", "nginx + PM2 fork", 1, "kill -9"),
    Case("nginx-pm2-fork", "nginx + PM2 fork", 2, "kill -9"),
    Case("nginx-pm2-cluster", "nginx + PM2 cluster", 2, "reload"),
    Case("nginx-pm2-cluster", "nginx + PM2 cluster", 1, "kill -9"),
    Case("nginx-pm2-cluster", "nginx + PM2 cluster", 2, "kill -9"),
)
SMOKE = (CASES[1], CASES[8])


def _kanri_case(
    cleanup: Cleanup, tmp: Path, case: Case, index: int
) -> tuple[int, Callable[[], str]]:
    port = free_port()
    kanri = Kanri(cleanup, tmp / f"kanri-{index}", kanri_node_toml(port, 1, case.instances))
    wait_answers(port, "kanri's proxy")

    def act() -> str:
        if case.action == "reload":
            result = kanri.cli("reload", "node", timeout=60)
            return "" if result.returncode == 0 else f"kanri reload failed: {result.stderr.strip()}"
        rows = [r for r in kanri.ls() if r["state"] == "ready" and r.get("pid")]
        os.kill(int(rows[0]["pid"]), signal.SIGKILL)
        return ""

    return port, act


def _pm2_case(
    cleanup: Cleanup, tmp: Path, pm2: Pm2, case: Case, index: int
) -> tuple[int, Callable[[], str]]:
    name = f"app{index}"
    cluster = case.key == "nginx-pm2-cluster"
    base = free_port() if cluster or case.instances == 1 else _two_ports()
    ports = [base] if cluster else [base + i for i in range(case.instances)]
    pm2.start([hello_app(name, base, instances=case.instances, cluster=cluster)], name)
    cleanup.push(f"pm2 delete {name}", lambda: pm2.cli("delete", name))
    wait_pm2_ready(pm2, name, case.instances, ports)
    proxy = start_nginx(
        cleanup, tmp, free_port(), 1, keepalive=64, upstream_ports=ports, tuned=False
    )

    def act() -> str:
        if case.action == "reload":
            result = pm2.cli("reload", name, timeout=60)
            return "" if result.returncode == 0 else f"pm2 reload failed: {result.stderr.strip()}"
        os.kill(pm2.app_pids(name)[0], signal.SIGKILL)
        return ""

    return proxy.port, act


def run(opts: Options) -> Table:
    cases = [
        c
        for c in (SMOKE if opts.smoke and opts.only is None else CASES)
        if opts.only is None or c.key in opts.only
    ]
    seconds = 2.0 if opts.smoke else max(4.0, 1.5 * opts.seconds)
    table = Table(
        9,
        "Failed requests during a reload under load",
        f"{CLIENTS} keep-alive clients for {seconds:g} s through the proxy to a Node.js app "
        "(bench/apps/hello.js); the action starts a quarter of the way in. "
        "Failed = connection errors, timeouts and 5xx answers.",
        [
            ("contender", "contender", ""),
            ("instances", "instances", "d"),
            ("action", "action", ""),
            ("requests", "ok", ",d"),
            ("failed", "failed", ",d"),
            ("failures", "why", ""),
            ("action took s", "action_s", ".2f"),
        ],
    )
    # The directory goes last: what runs in it is stopped first.
    with tempfile.TemporaryDirectory(prefix="kanri-bench-") as tmp_name, Cleanup() as cleanup:
        tmp = Path(tmp_name)
        pm2: Pm2 | None = None
        if any(c.key != "kanri" for c in cases):
            try:
                pm2 = Pm2(cleanup, tmp / "pm2")
            except peers.UnavailableError as exc:
                table.skipped.append(f"the PM2 cases: {exc}")
                cases = [c for c in cases if c.key == "kanri"]
        for index, case in enumerate(cases):
            with Cleanup() as per:
                if case.key == "kanri":
                    port, act = _kanri_case(per, tmp, case, index)
                else:
                    assert pm2 is not None
                    port, act = _pm2_case(per, tmp, pm2, case, index)
                load = BackgroundLoad(port, seconds, CLIENTS).start()
                time.sleep(seconds / 4)
                began = time.monotonic()
                problem = act()
                took = time.monotonic() - began
                result = load.wait(seconds + 30)
                if problem:
                    raise BenchError(f"{case.contender}, {case.action}: {problem}")
            table.rows.append(
                {
                    "contender": case.contender,
                    "instances": case.instances,
                    "action": case.action,
                    "ok": result.ok,
                    "failed": result.failed,
                    "why": result.why(),
                    "action_s": took,
                }
            )
            print(
                f"bench: reload, {case.contender} x{case.instances} {case.action}: "
                f"{result.ok} ok, {result.failed} failed {result.why()}",
                file=sys.stderr,
                flush=True,
            )
    return table
