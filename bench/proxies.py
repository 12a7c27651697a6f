"""Scenarios 1-4: kanri's proxy against nginx, HAProxy and Caddy, with 1 and 2 workers.

(1) small GET, (2) 64 KiB response, (3) 1 MiB POST upload through the proxy to
the shared upstream; (4) static 1 KiB and 1 MiB files served by the proxy
itself (kanri, nginx, Caddy; HAProxy serves no files). All contenders run at
once on their own ports, idle while another is measured; the measurements of
a round go through the contenders in turn, in a rotated order each round.
"""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import peers
from bench.contenders import (
    Running,
    make_content,
    start_caddy,
    start_haproxy,
    start_kanri_proxy,
    start_nginx,
    start_upstream,
)
from bench.options import Options
from bench.procs import Cleanup, free_port
from bench.report import Table, add_ratios, median
from bench.wrk import Sample, measure, run_wrk

KEEPALIVE = 64  # upstream keep-alive pool of every proxy (kanri's upstream_keepalive)


@dataclass(frozen=True)
class Case:
    scenario: int
    title: str
    path: str
    connections: int
    post: bool = False
    static: bool = False
    judged: bool = False  # a requests/s target is judged on it: more rounds (Options.judged_rounds)


CASES = {
    1: (Case(1, "small GET", "/", 64, judged=True),),
    2: (Case(2, "64 KiB response", "/64k.bin", 64),),
    3: (Case(3, "1 MiB POST", "/upload", 16, post=True),),
    4: (
        Case(4, "static 1 KiB", "/static/1k.bin", 64, static=True),
        Case(4, "static 1 MiB", "/static/1m.bin", 16, static=True),
    ),
}
TITLES = {
    1: (
        "Small GET through the proxy",
        "`GET /` (13-byte answer) from the shared upstream, 64 keep-alive clients.",
    ),
    2: (
        "64 KiB response",
        "`GET /64k.bin` (65,536 bytes) from the shared upstream, 64 keep-alive clients.",
    ),
    3: (
        "1 MiB POST upload",
        "`POST /upload` with a 1 MiB body, streamed to the shared upstream, 16 keep-alive clients.",
    ),
    4: (
        "Static files",
        "Files served by the proxy itself from a local directory (HAProxy serves no files), 64 clients for 1 KiB and 16 for 1 MiB.",
    ),
}
CONTENDERS = ("kanri", "nginx", "haproxy", "caddy")
SMOKE = frozenset({"kanri", "nginx"})
STATIC = frozenset({"kanri", "nginx", "caddy"})

POST_LUA = """wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
"""


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _starters(
    cleanup: Cleanup, tmp: Path, workers: int, upstream: int, static: Path
) -> dict[str, Callable[[], Running]]:
    return {
        "kanri": lambda: start_kanri_proxy(
            cleanup,
            tmp,
            free_port(),
            workers,
            keepalive=KEEPALIVE,
            upstream_port=upstream,
            static=static,
        ),
        "nginx": lambda: start_nginx(
            cleanup,
            tmp,
            free_port(),
            workers,
            keepalive=KEEPALIVE,
            upstream_ports=[upstream],
            static=static,
        ),
        "haproxy": lambda: start_haproxy(
            cleanup, tmp, free_port(), workers, keepalive=KEEPALIVE, upstream_port=upstream
        ),
        "caddy": lambda: start_caddy(
            cleanup,
            tmp,
            free_port(),
            workers,
            keepalive=KEEPALIVE,
            upstream_port=upstream,
            static=static,
        ),
    }


def run(scenarios: set[int], opts: Options) -> list[Table]:
    only = opts.only if opts.only is not None else (SMOKE if opts.smoke else None)
    names = [n for n in CONTENDERS if only is None or n in only]
    cases = [c for s in sorted(scenarios) for c in CASES[s]]
    tables = {
        s: Table(
            s,
            TITLES[s][0],
            TITLES[s][1],
            [
                ("case", "case", ""),
                ("contender", "contender", ""),
                ("workers", "workers", ""),
                ("req/s", "rps", ",.0f"),
                ("x nginx", "rps_x", ".2f"),
                ("p50 ms", "p50_ms", ".2f"),
                ("p99 ms", "p99_ms", ".2f"),
                ("CPU µs/req", "cpu_us", ".1f"),
                ("x nginx", "cpu_us_x", ".2f"),
                ("of which user", "user_us", ".1f"),
                ("errors", "errors", "d"),
            ],
        )
        for s in scenarios
    }
    samples: dict[tuple[Case, int, str], list[Sample]] = defaultdict(list)
    skipped: dict[str, str] = {}
    # The directory goes last: what runs in it is stopped first.
    with tempfile.TemporaryDirectory(prefix="kanri-bench-") as tmp_name, Cleanup() as cleanup:
        tmp = Path(tmp_name)
        content = make_content(tmp / "content")
        upstream = free_port()
        start_upstream(cleanup, tmp, upstream, content)
        post = tmp / "post.lua"
        post.write_text(POST_LUA)
        for workers in opts.workers:
            with Cleanup() as per_run:
                starters = _starters(per_run, tmp, workers, upstream, content)
                running: list[Running] = []
                for name in names:
                    try:
                        running.append(starters[name]())
                    except peers.UnavailableError as exc:
                        skipped[name] = str(exc)
                log(
                    f"{workers} worker(s): "
                    + ", ".join(r.name for r in running)
                    + " up; warming up"
                )
                for r in running:
                    run_wrk(f"http://127.0.0.1:{r.port}/", seconds=1, connections=64)
                for case in cases:
                    field = [r for r in running if not case.static or r.name.lower() in STATIC]
                    rounds = opts.judged_rounds if case.judged else opts.rounds
                    for rnd in range(rounds):
                        shift = rnd % max(1, len(field))
                        for r in field[shift:] + field[:shift]:
                            sample = measure(
                                f"http://127.0.0.1:{r.port}{case.path}",
                                r.pids,
                                seconds=opts.seconds,
                                connections=case.connections,
                                script=post if case.post else None,
                            )
                            samples[(case, workers, r.name)].append(sample)
                            log(
                                f"{case.title}, {r.name}, {workers}w, round {rnd + 1}: "
                                f"{sample.wrk.rps:,.0f} req/s, {sample.cpu_us_per_request:.1f} µs/req"
                            )
    for (case, workers, name), runs in samples.items():
        tables[case.scenario].rows.append(
            {
                "case": case.title,
                "contender": name,
                "workers": workers,
                "rps": median(s.wrk.rps for s in runs),
                "rps_rounds": [s.wrk.rps for s in runs],
                "p50_ms": median(s.wrk.p50_ms for s in runs),
                "p99_ms": median(s.wrk.p99_ms for s in runs),
                "cpu_us": median(s.cpu_us_per_request for s in runs),
                "user_us": median(s.user_us_per_request for s in runs),
                "requests": sum(s.wrk.requests for s in runs),
                "errors": sum(s.wrk.errors + s.wrk.non2xx for s in runs),
            }
        )
    order = {n: i for i, n in enumerate(("kanri", "nginx", "HAProxy", "Caddy"))}
    for table in tables.values():
        table.rows.sort(key=lambda r: (r["case"], r["workers"], order.get(r["contender"], 9)))
        add_ratios(table.rows, group=("case", "workers"), base="nginx", keys=("rps", "cpu_us"))
        for name, why in skipped.items():
            if table.scenario != 4 or name in STATIC:
                table.skipped.append(why)
    return [tables[s] for s in sorted(scenarios)]
