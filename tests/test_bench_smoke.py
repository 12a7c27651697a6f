"""Smoke runs of the benchmark scenarios: each for a second or two, checking they report.

The peers (nginx, wrk, PM2, ...) are installed by ``python -m bench install``
first; a scenario whose peers cannot be had here is skipped with the reason.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.procs import flat_scheduling
from bench.report import Table
from bench.suite import targets
from bench.wrk import parse

ROOT = Path(__file__).parent.parent

# The peers each smoke run needs (the smoke runs use kanri and a couple of others).
NEEDS = {
    1: ("wrk", "nginx"),
    2: ("wrk", "nginx"),
    3: ("wrk", "nginx"),
    4: ("wrk", "nginx"),
    5: ("wrk", "nginx", "node", "pm2"),
    6: ("node", "pm2"),
    7: ("node", "pm2"),
    8: ("nginx",),
    9: ("nginx", "node", "pm2"),
}
# Per scenario: the contenders a smoke run measures, and the figures each row must carry (> 0).
EXPECT: dict[int, tuple[set[str], tuple[str, ...]]] = {
    1: ({"kanri", "nginx"}, ("rps", "p50_ms", "p99_ms", "cpu_us")),
    2: ({"kanri", "nginx"}, ("rps", "p50_ms", "p99_ms", "cpu_us")),
    3: ({"kanri", "nginx"}, ("rps", "p50_ms", "p99_ms", "cpu_us")),
    4: ({"kanri", "nginx"}, ("rps", "p50_ms", "p99_ms", "cpu_us")),
    5: ({"kanri", "nginx + PM2 cluster"}, ("rps", "p99_ms", "cpu_us", "stack_cpu_us")),
    6: ({"kanri", "kanri, through its proxy", "PM2 fork"}, ("median_ms", "max_ms")),
    7: ({"kanri", "PM2"}, ("rss_mib", "pss_mib")),
    8: ({"kanri", "nginx"}, ("held", "before_mib", "after_mib")),
    9: ({"kanri", "nginx + PM2 cluster"}, ("ok",)),
}


@pytest.fixture(scope="module")
def peers() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "install", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        pytest.skip(f"could not install the benchmark peers: {result.stderr[-500:]}")
    found: dict[str, Any] = json.loads(lines[-1])
    return found


def test_soak_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "soak", "--seconds", "2", "--warmup", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    row = result.stdout.strip().splitlines()[-1]
    start, end, peak, _growth = re.findall(r"([-+]?[\d.]+) MiB", row)
    assert all(float(f) > 1 for f in (start, end, peak)), result.stdout


@pytest.mark.timeout(900)  # the first one may wait for apt-get and npm
@pytest.mark.parametrize("scenario", sorted(NEEDS))
def test_scenario_smoke(scenario: int, peers: dict[str, Any], tmp_path: Path) -> None:
    missing = [f"{p}: {peers[p]['why']}" for p in NEEDS[scenario] if not peers[p]["path"]]
    if missing:
        pytest.skip("peers not available here: " + "; ".join(missing))
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", str(scenario), "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    tables = json.loads(out.read_text())["tables"]
    assert [t["scenario"] for t in tables] == [scenario]
    rows = tables[0]["rows"]
    contenders, figures = EXPECT[scenario]
    assert {r["contender"] for r in rows} == contenders, rows
    for row in rows:
        for key in figures:
            assert isinstance(row[key], int | float) and row[key] > 0, (key, row)
        if "errors" in row:
            assert row["errors"] == 0, row
        if row["contender"] == "kanri, through its proxy":  # held through the restart
            assert row["failed"] == 0, row
    # The table is printed too.
    assert f"### {scenario}." in result.stdout


def test_wrk_report_is_read() -> None:
    output = """Running 4s test @ http://127.0.0.1:18090/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.47ms    2.84ms  24.55ms   70.47%
  Latency Distribution
     50%  519.00us
     75%    6.86ms
     90%    9.51ms
     99%    1.20s
  47355 requests in 4.01s, 5.87MB read
  Socket errors: connect 0, read 2, write 1, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  11812.73
Transfer/sec:      1.46MB
"""
    result = parse(output)
    assert result.requests == 47355
    assert result.seconds == pytest.approx(4.01)
    assert result.rps == pytest.approx(11812.73)
    assert result.p50_ms == pytest.approx(0.519)
    assert result.p99_ms == pytest.approx(1200.0)
    assert (result.errors, result.non2xx) == (6, 7)


def test_hotpath_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "hotpath", "--requests", "300", "--repeats", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = re.findall(r"^\| [^|]+ \| ([\d.]+) \|$", result.stdout, re.M)
    assert len(figures) == 2, result.stdout
    assert all(float(f) > 0 for f in figures), result.stdout


def test_autogroup_is_off_for_the_run_and_restored(tmp_path: Path) -> None:
    switch = tmp_path / "sched_autogroup_enabled"
    switch.write_text("1\n")
    with flat_scheduling(switch=switch) as said:
        assert switch.read_text() == "0"
        assert said.startswith("off for the run")
    assert switch.read_text() == "1"
    with pytest.raises(RuntimeError), flat_scheduling(switch=switch):  # restored on errors too
        assert switch.read_text() == "0"
        raise RuntimeError("a scenario failed")
    assert switch.read_text() == "1"
    with flat_scheduling(keep=True, switch=switch) as said:
        assert switch.read_text() == "1"
        assert said.startswith("on")
    switch.write_text("0")
    with flat_scheduling(switch=switch) as said:
        assert said == "off"
    with flat_scheduling(switch=tmp_path / "absent") as said:
        assert said == "not in this kernel"


def test_requests_targets_show_each_rounds_ratio() -> None:
    def row(contender: str, rounds: list[float], p99: float) -> dict[str, object]:
        return {
            "contender": contender,
            "workers": 2,
            "case": "small GET",
            "rps": sorted(rounds)[len(rounds) // 2],
            "rps_rounds": rounds,
            "p99_ms": p99,
        }

    small = Table(1, "", "", [], [row("kanri", [90.0, 99.0, 100.0], 1.0)])
    small.rows.append(row("nginx", [100.0, 90.0, 100.0], 1.0))
    small.rows[0]["rps_x"] = 99.0 / 100.0
    node = Table(5, "", "", [], [row("kanri", [50.0, 60.0], 3.0)])
    node.rows.append(row("nginx + PM2 cluster", [40.0, 60.0], 4.0))
    judged = {t.what: t for t in targets([small, node])}

    rps = judged["1: requests/s at least nginx's, 2 workers"]
    assert rps.verdict == "missed"
    assert rps.detail == "0.99x nginx; by round 0.90-1.10x"
    five = judged["5: kanri ≥ nginx + PM2 cluster in req/s, with a lower p99, 2 workers"]
    assert five.verdict == "met"
    assert "by round 1.00-1.25x" in five.detail, five.detail
    assert judged["1: CPU per request at most 1.5x nginx, 1 worker"].verdict == "not measured"
