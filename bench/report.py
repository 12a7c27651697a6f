"""Tables of results, the machine they were measured on, and docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import peers

DOCS = Path(__file__).parent.parent / "docs" / "benchmarks.md"
VERSIONS = (
    "kanri",
    "python",
    "uvloop",
    "nginx",
    "haproxy",
    "caddy",
    "pm2",
    "node",
    "wrk",
    "supervisord",
)
Row = dict[str, Any]


@dataclass
class Table:
    """One scenario's results: ``rows`` hold raw numbers, ``columns`` say how to show them."""

    scenario: int
    title: str
    about: str  # what was measured and how, in a sentence or two
    columns: list[tuple[str, str, str]]  # (header, row key, format spec or "" for str)
    rows: list[Row] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "contender: why"

    def markdown(self) -> str:
        out = [f"### {self.scenario}. {self.title}", "", self.about, ""]
        if self.rows:
            out.append("| " + " | ".join(h for h, _, _ in self.columns) + " |")
            out.append("|" + "|".join("---" for _ in self.columns) + "|")
            for row in self.rows:
                cells = []
                for _, key, spec in self.columns:
                    value = row.get(key)
                    if value is None or value == "":
                        cells.append("-")
                    elif spec and isinstance(value, int | float):
                        cells.append(format(value, spec))
                    else:
                        cells.append(str(value))
                out.append("| " + " | ".join(cells) + " |")
        for why in self.skipped:
            out.append(f"\nNot measured: {why}.")
        return "\n".join(out) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "title": self.title,
            "rows": self.rows,
            "skipped": self.skipped,
        }


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def add_ratios(rows: list[Row], *, group: Sequence[str], base: str, keys: Sequence[str]) -> None:
    """For each row, key_x = row[key] / row[key] of the ``base`` contender in the same group."""
    bases = {tuple(r.get(g) for g in group): r for r in rows if r["contender"] == base}
    for row in rows:
        ref = bases.get(tuple(row.get(g) for g in group))
        for key in keys:
            value, ref_value = row.get(key), ref.get(key) if ref else None
            if isinstance(value, int | float) and isinstance(ref_value, int | float) and ref_value:
                row[key + "_x"] = value / ref_value


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": model,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "load average at start": load,
    }


def versions() -> dict[str, str]:
    return {name: peers.version(name) for name in VERSIONS}


def header(info: dict[str, str], vers: dict[str, str]) -> str:
    lines = ["| machine | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    lines += ["", "| software | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in vers.items()]
    return "\n".join(lines) + "\n"


def print_tables(tables: Iterable[Table]) -> None:
    for table in tables:
        print()
        print(table.markdown(), flush=True)


def write_json(path: Path, tables: Iterable[Table], info: dict[str, str]) -> None:
    path.write_text(
        json.dumps({"machine": info, "tables": [t.to_json() for t in tables]}, indent=1)
    )


@dataclass(frozen=True)
class Target:
    what: str
    verdict: str  # "met", "missed" or "not measured"
    detail: str


def write_docs(
    path: Path,
    *,
    tables: list[Table],
    info: dict[str, str],
    vers: dict[str, str],
    targets: list[Target],
    settings: str,
    elapsed: float,
) -> None:
    out = [INTRO, "## This run", "", header(info, vers), settings, ""]
    out.append(f"The whole run took {elapsed / 60:.1f} minutes.\n")
    if targets:
        out += ["## Targets", "", "| target | verdict | measured |", "|---|---|---|"]
        out += [f"| {t.what} | {t.verdict} | {t.detail} |" for t in targets]
        out.append("")
    out += ["## Results", ""]
    out += [t.markdown() for t in sorted(tables, key=lambda t: t.scenario)]
    out.append(METHOD)
    path.write_text("\n".join(out))


INTRO = """# Benchmarks

kanri against the tools it replaces, measured in one run on one machine:
nginx, HAProxy and Caddy as proxies and static file servers; PM2 (with and
without nginx in front) and supervisord as process managers. This page is
written by `make bench` (`python -m bench all`); run it again to measure your
own machine. Single scenarios: `python -m bench 1` ... `python -m bench 9`
(or by name: `small`, `large`, `upload`, `static`, `node`, `restart`,
`footprint`, `idle`, `reload`), with `--seconds S`, `--rounds R`,
`--workers 1|2|both`. Missing peers are installed on demand (`apt-get`,
`npm`), or `python -m bench install` installs them all first.
`python -m bench hotpath` measures kanri's proxy code alone, in-process, with
no socket: steady enough to compare two versions of the hot path.

**CPU µs/req** is the main figure: the user + system CPU time that the
contender's own processes spent during the run (from `/proc/PID/stat`),
divided by the requests `wrk` completed. It holds steady on a busy machine
where requests per second do not. "of which user" is its user-mode part; the
rest is kernel time, mostly the socket reads and writes, which every proxy
needs the same number of (a proxied request is two reads and two writes).
`x nginx` is the ratio to nginx in the same scenario, with the same number of
workers; lower is better for CPU and latency, higher for requests per second.
kanri's proxy runs compiled (mypyc, and a C parser for the common request
and response heads; see [proxy.md](proxy.md#speed)); the software table says
so for each run.
"""

METHOD = """## How it is measured

- **Load**: `wrk -t1 -cC -dS --timeout 5s --latency` on loopback, identical for
  every contender; C is 64 (16 for the 1 MiB bodies). The upload uses a Lua
  script that POSTs a 1 MiB body. Each contender gets a 1 s warm-up run, then
  each measurement is repeated over the rounds with the contenders' order
  rotated between rounds; the figures are medians over the rounds. The two
  measurements a requests-per-second target is judged on (scenario 1's small
  GET, scenario 5) get twice the rounds, and the targets table gives the
  ratio of each round too: kanri and its reference measured seconds apart.
- **Scheduling**: the kernel's autogroup is off for the run (when the harness
  runs as root; the machine table says whether it was), and back as it was
  after. With it on, the scheduler shares CPU between sessions first, and the
  contenders fall into sessions differently: nginx's workers share their
  master's, the load generator runs in the harness's, and kanri's proxy
  workers had a session each until 03ddb8c. On 2 cores that alone moved
  scenario 1 by up to 10% (see the notes below). Off, every process competes
  on its own. `--autogroup keep` leaves it alone.
- **The same upstream** for every proxy: one nginx process with one worker that
  answers `GET /` with a 13-byte body, serves the 64 KiB file, and answers
  `POST /upload` after reading the body. kanri can only route to apps it runs,
  so its app is a stand-in (`sleep`) whose fixed `port` is that upstream's:
  kanri's proxy sends its requests to the same process as the others.
- **Equal settings**: each proxy with 1 and with 2 workers (nginx
  `worker_processes`, HAProxy `nbthread`, Caddy `GOMAXPROCS`, kanri `workers`),
  access logs off, upstream keep-alive with the same pool size as kanri's
  `upstream_keepalive`, `X-Forwarded-For/-Proto/-Host` and `X-Real-IP` added by
  every proxy. nginx: `proxy_http_version 1.1`, `proxy_set_header Connection ""`,
  `upstream { keepalive N; }`, `reuseport`, `sendfile on`, `tcp_nopush on`,
  `open_file_cache` valid for 1 s (as kanri's static cache),
  `proxy_request_buffering off` (uploads stream as in kanri) and 16 x 16k proxy
  buffers (a 64 KiB answer stays in memory). HAProxy: `http-reuse always`,
  `option http-keep-alive`. Caddy: `admin off`, no access log,
  `reverse_proxy` with a keep-alive pool, `file_server` for static files.
- **Processes counted**: kanri's daemon and its proxy workers; nginx's master
  and workers; the HAProxy and Caddy processes. In scenario 5 the stack figure
  adds the Node.js instances and PM2's daemon. The load generator and the
  upstream are never counted.
- **Scenario 5**: the Node.js app is `bench/apps/hello.js`. PM2's fork
  instances get `PORT` and `PORT+1` (`increment_var`); cluster mode shares one
  port through Node's cluster module.
- **Scenario 6**: `kill -9` of the only instance, then a GET to the instance's
  port every few milliseconds (each attempt given up after 250 ms: in PM2
  cluster mode a connection handed to the dead worker hangs) until one
  answers 200; both supervisors with `min_uptime` 1 s and the kill repeated
  after it, so no restart backoff applies. kanri waits its default
  `restart_delay` (100 ms) before a restart. "Failed GETs" counts the
  attempts refused or reset before the 200. The row "kanri, through its
  proxy" sends one GET to kanri's proxy right after the kill: no instance is
  ready, but one is coming, so the proxy holds the request and the new
  instance answers it (0 failed is the point of that row).
- **Scenario 7**: 10 apps (`bench/apps/idle.py`, listening on their port and
  idle), RSS and PSS after they are all up; the apps themselves not counted.
- **Scenario 8**: 5,000 clients each send one GET and keep the connection
  open; the proxy's RSS after, minus before, divided by 5,000.
- **Where kanri's time goes** (small GET, 1 worker; `perf record`, `perf stat`
  and `strace -c` of the worker): each proxied request is exactly two reads
  and two writes, as in nginx, and under this load the worker waits for
  events about once per 9 requests, as nginx does (once per 8). About 79% of
  the worker's CPU is kernel time, most of it inside the two `write`s
  (loopback delivery and waking the reader, which nginx pays too), and kernel
  time per request is nginx's. The rest, by `perf` on 2026-12-04: CPython's
  object allocation and calls 8.6% of the worker's time, the proxy's compiled
  code 4.9%, uvloop 4.7%, libc 2%, and the C head parser (`_heads`, see
  [proxy.md](proxy.md#speed)) 1.2%. Before that parser, llhttp and its
  per-header callbacks took 6.3% and CPython 13.7%, and a small GET cost
  1.27x nginx's CPU against 1.03x after it, in the same run.
- **Scenario 5**: on 2 cores, the load generator, two Node.js instances and
  the proxy share the CPUs, and the proxy is the busiest single process, the
  stage requests queue in: every microsecond it spends beyond nginx's leaves
  the other core idle meanwhile. Its figures move by 10-20% from round to
  round for every contender (nginx + PM2 cluster gave 31,300 and 37,070
  req/s in two rounds of one run), so a single run can miss or meet the
  target by noise; hence its doubled rounds. Measured side by side on 2026-12-04, with both proxies in
  front of PM2's cluster port (one upstream each, the same Node.js
  processes), kanri's worker took 19.1-21.9 µs per request and nginx
  18.2-21.1 µs; with its own two instances, 19.4-20.4 µs. kanri's Node.js
  instances cost what PM2's cluster workers cost per request (the whole
  stack minus the proxy), and nginx in front of two PM2 fork instances (the
  same shape as kanri's setup) is the slowest of the three.
- **Two proxy workers on two cores**: four or five busy processes then share
  two CPUs, and how the kernel groups them weighs as much as what each one
  costs. Scenario 1 with 2 workers, 4 rounds of 3 s against nginx in one run,
  on a 2-core Xeon on 2026-12-04: with autogroup on and each kanri worker in
  a session of its own (before 03ddb8c), kanri answered 0.90x nginx's
  requests per second, p99 4.7 ms against 1.5 ms, and its workers were
  preempted 0.05 times per request against nginx's 0.4 (the scheduler let
  them run on while the load generator and the upstream waited; the CPUs
  were 9% idle); with the workers in the daemon's session, 0.955x and
  1.7 ms; with autogroup off, 0.99x, and both proxies' p99 about 4.6 ms. Its
  CPU per request was 1.05-1.09x nginx's in all three. Earlier runs, made
  with autogroup on, found kanri's CPU per request 13-34% higher with 2
  workers than with 1 and blamed the five processes alone; part of that was
  the grouping. What remains is per-request cost: kanri's worker makes fewer
  system calls than nginx's (two reads and two writes; nginx adds a
  `getsockopt`) and sends the same 4 TCP segments per request (`nstat`), but
  spends about 0.4 µs more user time (CPython, uvloop: each read callback
  takes and drops the GIL twice) and about 0.8 µs more kernel time per small
  GET with 1 worker (`perf`: level-triggered epoll polls each ready socket
  once more, `read`/`write` go through the VFS where `recvfrom`/`writev` do
  not). Tried and dropped, each for lack of a gain: pinning each worker to
  one CPU, a higher priority for the workers (`nice -5`), deferring the
  writes of a loop iteration to its end, and replacing `Py_BuildValue` and a
  `bytes.find` call on the hot path (no change beyond noise).
- **Scenario 9**: 32 keep-alive clients (a Python asyncio load generator,
  `bench/load.py`) send GETs through the proxy; a quarter of the way in, the
  app is reloaded (or its only instance, or one of two, is killed with
  `kill -9`). A failed request is a connection error, a timeout or a 5xx.
  nginx in front of PM2 keeps its defaults here (`max_fails=1
  fail_timeout=10s`, `proxy_next_upstream error timeout`), as most setups do.
"""
