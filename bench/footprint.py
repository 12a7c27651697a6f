"""Scenario 7: the memory a supervisor costs with 10 idle apps.

kanri (its daemon plus one proxy worker, default settings otherwise) against
PM2's daemon ("God") and supervisord, each running the same 10 idle apps
(bench/apps/idle.py). Measured one after another, 2 s after every app is up;
the apps' own memory is not counted. RSS counts shared library pages in full
for each process; PSS splits them among the processes that share them.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench import peers
from bench.contenders import IDLE_PY, Kanri, Pm2, start_supervisord, wait_port_open
from bench.options import Options
from bench.procs import Cleanup, free_port, free_ports, pss_bytes, rss_bytes
from bench.report import Row, Table

APPS = 10
SETTLE = 2.0
CONTENDERS = ("kanri", "pm2", "supervisord")
SMOKE = frozenset({"kanri", "pm2"})
MIB = 2**20


def _kanri(tmp: Path, ports: list[int]) -> Row:
    listen = free_port()
    toml = f'[proxy]\nlisten = ["127.0.0.1:{listen}"]\nworkers = 1\n\n'
    toml += '[[routes]]\npath = "/"\napp = "app0"\n\n'
    for i, port in enumerate(ports):
        toml += f'[apps.app{i}]\ncommand = "{sys.executable} {IDLE_PY}"\nport = {port}\n\n'
    with Cleanup() as cleanup:
        kanri = Kanri(cleanup, tmp / "kanri", toml)
        time.sleep(SETTLE)
        workers = kanri.workers()
        daemon_rss, worker_rss = rss_bytes([kanri.daemon]), rss_bytes(workers)
        return {
            "contender": "kanri",
            "measured": f"daemon + {len(workers)} proxy worker",
            "rss_mib": (daemon_rss + worker_rss) / MIB,
            "pss_mib": pss_bytes([kanri.daemon, *workers]) / MIB,
            "detail": f"daemon {daemon_rss / MIB:.1f} + worker {worker_rss / MIB:.1f} MiB RSS",
        }


def _pm2(tmp: Path, ports: list[int]) -> Row:
    with Cleanup() as cleanup:
        pm2 = Pm2(cleanup, tmp / "pm2")
        pm2.start(
            [
                {
                    "name": f"app{i}",
                    "script": str(IDLE_PY),
                    "interpreter": sys.executable,
                    "env": {"PORT": str(port)},
                }
                for i, port in enumerate(ports)
            ]
        )
        for i, port in enumerate(ports):
            wait_port_open(port, f"PM2 app{i}")
        time.sleep(SETTLE)
        god = pm2.god()
        return {
            "contender": "PM2",
            "measured": "daemon (God)",
            "rss_mib": rss_bytes([god]) / MIB,
            "pss_mib": pss_bytes([god]) / MIB,
            "detail": "",
        }


def _supervisord(tmp: Path, ports: list[int]) -> Row:
    with Cleanup() as cleanup:
        programs = {f"app{i}": (f"{sys.executable} {IDLE_PY}", p) for i, p in enumerate(ports)}
        pid = start_supervisord(cleanup, tmp, programs)
        time.sleep(SETTLE)
        return {
            "contender": "supervisord",
            "measured": "supervisord",
            "rss_mib": rss_bytes([pid]) / MIB,
            "pss_mib": pss_bytes([pid]) / MIB,
            "detail": "no proxy",
        }


def run(opts: Options) -> Table:
    only = opts.only if opts.only is not None else (SMOKE if opts.smoke else None)
    table = Table(
        7,
        "Footprint with 10 idle apps",
        "Memory of the supervisor's own processes while it runs 10 idle apps.",
        [
            ("contender", "contender", ""),
            ("processes", "measured", ""),
            ("RSS MiB", "rss_mib", ".1f"),
            ("PSS MiB", "pss_mib", ".1f"),
            ("", "detail", ""),
        ],
    )
    measure = {"kanri": _kanri, "pm2": _pm2, "supervisord": _supervisord}
    with tempfile.TemporaryDirectory(prefix="kanri-bench-") as tmp_name:
        for name in CONTENDERS:
            if only is not None and name not in only:
                continue
            try:
                row = measure[name](Path(tmp_name), free_ports(APPS))
            except peers.UnavailableError as exc:
                table.skipped.append(str(exc))
                continue
            table.rows.append(row)
            print(
                f"bench: footprint, {name}: {row['rss_mib']:.1f} MiB RSS",
                file=sys.stderr,
                flush=True,
            )
    return table
