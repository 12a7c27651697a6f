"""Scenario 6: how long after ``kill -9`` an app instance answers again, kanri against PM2.

One Node.js instance (bench/apps/hello.js) on a fixed port under each
supervisor: kanri, PM2 fork mode and PM2 cluster mode (where the cluster's
primary keeps the port open and holds connections until a new worker is up).
The clock starts at the kill and stops at the first 200 answered on that port;
for kanri also through its proxy, where the first request is held, not refused.
Both supervisors run with ``min_uptime`` 1 s, and each kill waits until the
instance has been up longer, so no crash-loop backoff applies.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import peers
from bench.contenders import HELLO_JS, Kanri, Pm2, hello_app, wait_pm2_ready
from bench.options import Options
from bench.procs import BenchError, Cleanup, answers, free_port, wait_answers
from bench.report import Table, median

CONTENDERS = {"kanri": "kanri", "pm2-fork": "PM2 fork", "pm2-cluster": "PM2 cluster"}
SMOKE = frozenset({"kanri", "pm2-fork"})
UPTIME = 1.3  # seconds an instance is left up before the kill (> min_uptime of 1 s)
# Each attempt gives up after this: in PM2 cluster mode a connection handed to the dead
# worker hangs rather than failing, and the next attempt must not wait behind it.
ATTEMPT = 0.25
VIA_PROXY = "kanri, through its proxy"
HELD = 5.0  # through kanri's proxy one request is enough: it waits for the new instance


def kill_and_time(
    port: int, pid: int, *, attempt: float, timeout: float = 15.0
) -> tuple[float, int]:
    """SIGKILL pid, then milliseconds until a GET on port answers 200, and the GETs
    that failed before it."""
    began = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    failed = 0
    while not answers(port, timeout=attempt):
        failed += 1
        if time.monotonic() - began > timeout:
            raise BenchError(f"port {port} did not answer within {timeout:g}s of the kill")
        time.sleep(0.002)
    return (time.monotonic() - began) * 1000, failed


def run(opts: Options) -> Table:
    only = opts.only if opts.only is not None else (SMOKE if opts.smoke else None)
    keys = [k for k in CONTENDERS if only is None or k in only]
    kills = 1 if opts.smoke else 5
    table = Table(
        6,
        "Restart after kill -9",
        f"One Node.js instance on a fixed port, killed {kills} time(s) with SIGKILL; "
        "time until a GET on its port answers 200 again (each attempt waits at most "
        f"{ATTEMPT * 1000:.0f} ms). Through kanri's proxy, one GET sent right after "
        "the kill, answered once the new instance is ready.",
        [
            ("contender", "contender", ""),
            ("kills", "kills", "d"),
            ("median ms", "median_ms", ".0f"),
            ("min ms", "min_ms", ".0f"),
            ("max ms", "max_ms", ".0f"),
            ("failed GETs", "failed", "d"),
        ],
    )
    # The directory goes last: what runs in it is stopped first.
    with tempfile.TemporaryDirectory(prefix="kanri-bench-") as tmp_name, Cleanup() as cleanup:
        tmp = Path(tmp_name)
        setups: list[tuple[str, int, Callable[[], int]]] = []
        if "kanri" in keys:
            port = free_port()
            node = peers.need("node")
            proxy = free_port()
            kanri = Kanri(
                cleanup,
                tmp / "kanri",
                f'[proxy]\nlisten = ["127.0.0.1:{proxy}"]\naccess_log = false\n\n'
                f'[[routes]]\npath = "/"\napp = "node"\n\n'
                f'[apps.node]\ncommand = "{node} {HELLO_JS}"\nport = {port}\nmin_uptime = "1s"\n',
            )

            def kanri_pid(kanri: Kanri = kanri) -> int:
                rows = [r for r in kanri.ls() if r["state"] == "ready" and r.get("pid")]
                if not rows:
                    raise BenchError("kanri's instance is not ready")
                return int(rows[0]["pid"])

            setups.append(("kanri", port, kanri_pid))
            # The same instance, asked through kanri's proxy: the request sent right
            # after the kill is held until the new instance answers it.
            setups.append((VIA_PROXY, proxy, kanri_pid))
        pm2_keys = [k for k in keys if k.startswith("pm2")]
        if pm2_keys:
            try:
                pm2 = Pm2(cleanup, tmp / "pm2")
            except peers.UnavailableError as exc:
                table.skipped.append(f"PM2: {exc}")
                pm2_keys = []
            for key in pm2_keys:
                port = free_port()
                cluster = key == "pm2-cluster"
                pm2.start(
                    [hello_app(key, port, instances=1, cluster=cluster, min_uptime=1000)], key
                )
                wait_pm2_ready(pm2, key, 1, [port])

                def pm2_pid(pm2: Pm2 = pm2, key: str = key) -> int:
                    pids = pm2.app_pids(key)
                    if not pids:
                        raise BenchError(f"PM2 app {key} has no pid")
                    return pids[0]

                setups.append((CONTENDERS[key], port, pm2_pid))
        times: dict[str, list[float]] = {name: [] for name, _, _ in setups}
        failures = dict.fromkeys(times, 0)
        for _ in range(kills):
            for name, port, pid_of in setups:
                wait_answers(port, name, timeout=20)
                pid = pid_of()
                time.sleep(UPTIME)
                ms, failed = kill_and_time(
                    port, pid, attempt=HELD if name == VIA_PROXY else ATTEMPT
                )
                times[name].append(ms)
                failures[name] += failed
                print(f"bench: restart, {name}: {ms:.0f} ms", file=sys.stderr, flush=True)
    for name, all_ms in times.items():
        table.rows.append(
            {
                "contender": name,
                "kills": len(all_ms),
                "median_ms": median(all_ms),
                "min_ms": min(all_ms),
                "max_ms": max(all_ms),
                "failed": failures[name],
            }
        )
    return table
