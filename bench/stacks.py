"""Scenario 5: two Node.js instances behind kanri, against the setups kanri replaces.

- kanri: ``instances = 2`` of bench/apps/hello.js, its proxy with N workers;
- nginx (N workers) in front of PM2 cluster mode with 2 instances (one port);
- nginx (N workers) in front of 2 PM2 fork instances (two ports);
- PM2 cluster mode alone, no proxy: the no-hop reference.

"proxy + manager" CPU is kanri's daemon and workers, or nginx plus PM2's
daemon (which is the cluster's primary process); "whole stack" adds the Node.js
instances.
"""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from bench import peers
from bench.contenders import (
    HELLO_JS,
    Kanri,
    Pm2,
    Running,
    hello_app,
    start_nginx,
    wait_pm2_ready,
)
from bench.options import Options
from bench.procs import Cleanup, free_port, wait_answers
from bench.report import Table, add_ratios, median
from bench.wrk import Sample, measure, run_wrk

KEEPALIVE = 64
CONNECTIONS = 64
REF = "nginx + PM2 cluster"
CONTENDERS = {
    "kanri": "kanri",
    "nginx-pm2-cluster": REF,
    "nginx-pm2-fork": "nginx + PM2 fork",
    "pm2-cluster": "PM2 cluster, no proxy",
}
SMOKE = frozenset({"kanri", "nginx-pm2-cluster"})


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _two_ports() -> int:
    """A port p such that p and p + 1 are both free (PM2 fork instances get PORT, PORT+1)."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and _free(port + 1):
            return port
    raise RuntimeError("no two consecutive free ports")


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def kanri_node_toml(port: int, workers: int, instances: int, *, proxy: bool = True) -> str:
    node = peers.need("node")
    head = (
        f'[proxy]\nlisten = ["127.0.0.1:{port}"]\nworkers = {workers}\naccess_log = false\n'
        f'upstream_keepalive = {KEEPALIVE}\n\n[[routes]]\npath = "/"\napp = "node"\n\n'
        if proxy
        else ""
    )
    return head + f'[apps.node]\ncommand = "{node} {HELLO_JS}"\ninstances = {instances}\n'


def _fixed(pids: list[int]) -> Callable[[], list[int]]:
    return lambda: pids


def _plus(pids: Callable[[], list[int]], extra: list[int]) -> Callable[[], list[int]]:
    return lambda: pids() + extra


def run(opts: Options) -> Table:
    only = opts.only if opts.only is not None else (SMOKE if opts.smoke else None)
    keys = [k for k in CONTENDERS if only is None or k in only]
    table = Table(
        5,
        "Two Node.js instances: kanri against nginx + PM2",
        "`GET /` answered by bench/apps/hello.js (13 bytes), 64 keep-alive clients. "
        "Ratios are to nginx in front of PM2 cluster mode, the usual setup.",
        [
            ("contender", "contender", ""),
            ("workers", "workers", ""),
            ("req/s", "rps", ",.0f"),
            ("x ref", "rps_x", ".2f"),
            ("p50 ms", "p50_ms", ".2f"),
            ("p99 ms", "p99_ms", ".2f"),
            ("x ref", "p99_ms_x", ".2f"),
            ("CPU µs/req, proxy + manager", "cpu_us", ".1f"),
            ("x ref", "cpu_us_x", ".2f"),
            ("CPU µs/req, whole stack", "stack_cpu_us", ".1f"),
            ("errors", "errors", "d"),
        ],
    )
    samples: dict[tuple[str, int | str], list[Sample]] = defaultdict(list)
    pm2_keys = {"nginx-pm2-cluster", "nginx-pm2-fork", "pm2-cluster"} & set(keys)
    want_cluster = bool(pm2_keys & {"nginx-pm2-cluster", "pm2-cluster"})
    want_fork = "nginx-pm2-fork" in pm2_keys
    # The directory goes last: what runs in it is stopped first.
    with tempfile.TemporaryDirectory(prefix="kanri-bench-") as tmp_name, Cleanup() as cleanup:
        tmp = Path(tmp_name)
        pm2: Pm2 | None = None
        cport, fport = free_port(), _two_ports()
        if pm2_keys:
            try:
                pm2 = Pm2(cleanup, tmp / "pm2")
                apps = []
                if want_cluster:
                    apps.append(hello_app("cluster", cport, instances=2, cluster=True))
                if want_fork:
                    apps.append(hello_app("fork", fport, instances=2, cluster=False))
                pm2.start(apps)
                if want_cluster:
                    wait_pm2_ready(pm2, "cluster", 2, [cport])
                if want_fork:
                    wait_pm2_ready(pm2, "fork", 2, [fport, fport + 1])
            except peers.UnavailableError as exc:
                table.skipped.append(f"the PM2 setups: {exc}")
                keys = [k for k in keys if k not in pm2_keys]
                pm2 = None
        god = [pm2.god()] if pm2 else []
        cluster_apps = pm2.app_pids("cluster") if pm2 and want_cluster else []
        fork_apps = pm2.app_pids("fork") if pm2 and want_fork else []
        for index, workers in enumerate(opts.workers):
            with Cleanup() as per:
                field: list[tuple[str, int | str, Running]] = []
                for key in keys:
                    if key == "kanri":
                        port = free_port()
                        kanri = Kanri(
                            per, tmp / f"kanri-{workers}", kanri_node_toml(port, workers, 2)
                        )
                        wait_answers(port, "kanri's proxy")
                        field.append(
                            (
                                "kanri",
                                workers,
                                Running("kanri", port, kanri.pids, _fixed(kanri.app_pids("node"))),
                            )
                        )
                    elif key == "nginx-pm2-cluster":
                        r = start_nginx(
                            per,
                            tmp,
                            free_port(),
                            workers,
                            keepalive=KEEPALIVE,
                            upstream_ports=[cport],
                        )
                        nginx_pids = r.pids
                        field.append(
                            (
                                REF,
                                workers,
                                Running(
                                    REF,
                                    r.port,
                                    _plus(nginx_pids, god),
                                    _fixed(cluster_apps),
                                ),
                            )
                        )
                    elif key == "nginx-pm2-fork":
                        r = start_nginx(
                            per,
                            tmp,
                            free_port(),
                            workers,
                            keepalive=KEEPALIVE,
                            upstream_ports=[fport, fport + 1],
                        )
                        nginx_pids = r.pids
                        name = CONTENDERS[key]
                        field.append(
                            (
                                name,
                                workers,
                                Running(name, r.port, _plus(nginx_pids, god), _fixed(fork_apps)),
                            )
                        )
                    elif key == "pm2-cluster" and index == 0:
                        name = CONTENDERS[key]
                        field.append(
                            (name, "-", Running(name, cport, _fixed(god), _fixed(cluster_apps)))
                        )
                for _, _, r in field:
                    run_wrk(f"http://127.0.0.1:{r.port}/", seconds=1, connections=CONNECTIONS)
                for rnd in range(opts.judged_rounds):
                    shift = rnd % max(1, len(field))
                    for name, w, r in field[shift:] + field[:shift]:
                        sample = measure(
                            f"http://127.0.0.1:{r.port}/",
                            r.pids,
                            app_pids=r.app_pids,
                            seconds=opts.seconds,
                            connections=CONNECTIONS,
                        )
                        samples[(name, w)].append(sample)
                        log(
                            f"node, {name}, {w}w, round {rnd + 1}: {sample.wrk.rps:,.0f} req/s, "
                            f"{sample.cpu_us_per_request:.1f} µs/req (stack {sample.stack_cpu_us_per_request:.1f})"
                        )
    order = {n: i for i, n in enumerate(CONTENDERS.values())}
    for (name, workers_shown), runs in samples.items():
        table.rows.append(
            {
                "contender": name,
                "workers": workers_shown,
                "rps": median(s.wrk.rps for s in runs),
                "rps_rounds": [s.wrk.rps for s in runs],
                "p50_ms": median(s.wrk.p50_ms for s in runs),
                "p99_ms": median(s.wrk.p99_ms for s in runs),
                "cpu_us": median(s.cpu_us_per_request for s in runs),
                "stack_cpu_us": median(s.stack_cpu_us_per_request for s in runs),
                "errors": sum(s.wrk.errors + s.wrk.non2xx for s in runs),
            }
        )
    table.rows.sort(
        key=lambda r: (r["workers"] == "-", str(r["workers"]), order.get(r["contender"], 9))
    )
    add_ratios(table.rows, group=("workers",), base=REF, keys=("rps", "p99_ms", "cpu_us"))
    return table
