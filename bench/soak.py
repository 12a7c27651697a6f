"""Soak: does the daemon's memory stay flat under restarts and log traffic?

Runs 10 apps that print steadily and crash every few seconds (so kanri
restarts them again and again) under `kanri up -d`, samples the daemon's RSS
for the whole run, and reports it at the start and the end. PM2's daemon is
known to grow over time; kanri's must not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

APPS = 10
HERE = Path(__file__).parent


def config(rate: float) -> str:
    chatter = HERE / "apps" / "chatter.py"
    return "".join(
        f'[apps.app{i}]\ncommand = "{sys.executable} {chatter} {rate} 2 6"\n'
        'restart_delay = "100ms"\nmin_uptime = "1s"\nmax_restarts = 1000\n'
        'log_max_size = "1MiB"\nlog_backups = 2\nkill_timeout = "2s"\n\n'
        for i in range(APPS)
    )


def kanri(project: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "kanri", *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout


def run(seconds: float, rate: float, warmup: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="kanri-soak-") as tmp:
        project = Path(tmp)
        (project / "kanri.toml").write_text(config(rate))
        kanri(project, "up", "-d")
        try:
            pid = int((project / ".kanri" / "kanri.lock").read_text())
            daemon = psutil.Process(pid)
            time.sleep(warmup)
            start_rss = daemon.memory_info().rss
            samples = [start_rss]
            began = time.monotonic()
            while time.monotonic() - began < seconds:
                time.sleep(min(1.0, seconds))
                samples.append(daemon.memory_info().rss)
            end_rss = daemon.memory_info().rss
            rows = json.loads(kanri(project, "ls", "--json"))
            restarts = sum(r["restarts"] for r in rows)
            lines = sum(
                len(p.read_bytes().splitlines())
                for p in (project / ".kanri" / "logs").glob("app*.log*")
            )
        finally:
            kanri(project, "down")
    return {
        "seconds": seconds,
        "start_rss_mib": start_rss / 2**20,
        "end_rss_mib": end_rss / 2**20,
        "peak_rss_mib": max(samples) / 2**20,
        "growth_mib": (end_rss - start_rss) / 2**20,
        "restarts": restarts,
        "log_lines_kept": lines,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    parser.add_argument(
        "--seconds", type=float, default=300.0, help="how long to soak (default 300)"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="lines per second per app")
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="seconds before the first sample"
    )
    args = parser.parse_args(argv)
    result = run(args.seconds, args.rate, min(args.warmup, args.seconds))
    print(
        f"daemon soak: {APPS} apps, {args.rate:g} lines/s each, crashing every 2-6 s, {args.seconds:g} s"
    )
    print("| daemon RSS at start | at end | peak | growth | restarts | log lines on disk |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {result['start_rss_mib']:.1f} MiB | {result['end_rss_mib']:.1f} MiB "
        f"| {result['peak_rss_mib']:.1f} MiB | {result['growth_mib']:+.1f} MiB "
        f"| {result['restarts']:.0f} | {result['log_lines_kept']:.0f} |"
    )
    return 0
