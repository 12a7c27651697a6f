"""Running wrk and reading its report; and one measured run of a contender.

Every HTTP throughput figure comes from the same command line,
``wrk -t1 -cC -dS --latency URL`` (plus a Lua script for the POST upload), so
each contender sees identical load. The contender's CPU time is read from
/proc just before and just after wrk runs.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import peers
from bench.procs import BenchError, cpu_seconds, cpu_split

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors: connect, read, write, timeout
    non2xx: int


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unreadable latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse(output: str) -> WrkResult:
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", output)
    p50 = re.search(r"^\s*50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", output, re.M)
    if not (done and rps and p50 and p99):
        raise BenchError("could not read wrk's report:\n" + output[-800:])
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests=int(done.group(1)),
        seconds=_ms(done.group(2) + done.group(3)) / 1e3,
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
    )


def run_wrk(url: str, *, seconds: float, connections: int, script: Path | None = None) -> WrkResult:
    argv = [
        peers.need("wrk"),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "--latency",
    ]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    try:
        result = subprocess.run(
            argv, check=False, capture_output=True, text=True, timeout=seconds + 30
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish: {exc}") from exc
    if result.returncode != 0:
        raise BenchError(f"wrk failed ({result.returncode}): {result.stderr.strip()[-400:]}")
    return parse(result.stdout)


@dataclass(frozen=True)
class Sample:
    """One measured run: wrk's figures plus the CPU the contender spent on them."""

    wrk: WrkResult
    cpu_s: float  # the contender's processes
    stack_cpu_s: float  # the contender plus its apps (the same as cpu_s when it has none)
    user_s: float  # the user-mode part of cpu_s (the rest is kernel time)

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / max(self.wrk.requests, 1) * 1e6

    @property
    def user_us_per_request(self) -> float:
        return self.user_s / max(self.wrk.requests, 1) * 1e6

    @property
    def stack_cpu_us_per_request(self) -> float:
        return self.stack_cpu_s / max(self.wrk.requests, 1) * 1e6


def measure(
    url: str,
    pids: Callable[[], list[int]],
    *,
    seconds: float,
    connections: int,
    script: Path | None = None,
    app_pids: Callable[[], list[int]] | None = None,
) -> Sample:
    """Run wrk against url and charge the CPU time of pids (and app_pids) to it."""
    own = pids()
    apps = app_pids() if app_pids is not None else []
    (user0, sys0), before_apps = cpu_split(own), cpu_seconds(apps)
    result = run_wrk(url, seconds=seconds, connections=connections, script=script)
    user1, sys1 = cpu_split(own)
    spent = (user1 - user0) + (sys1 - sys0)
    spent_apps = cpu_seconds(apps) - before_apps
    return Sample(result, spent, spent + spent_apps, user1 - user0)
