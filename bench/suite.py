"""Runs scenarios 1-9 (one, or ``all``), prints their tables and checks kanri's targets.

``python -m bench all`` also writes docs/benchmarks.md with the date, the
machine and the versions of everything measured.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from collections.abc import Callable
from functools import partial
from types import FrameType

from bench import footprint, idle, options, peers, proxies, reload, restart, stacks
from bench.options import Options
from bench.procs import BenchError, flat_scheduling, raise_fd_limit
from bench.report import (
    DOCS,
    Table,
    Target,
    header,
    machine,
    print_tables,
    versions,
    write_docs,
    write_json,
)

NAMES = {
    "1": 1,
    "small": 1,
    "2": 2,
    "large": 2,
    "3": 3,
    "upload": 3,
    "4": 4,
    "static": 4,
    "5": 5,
    "node": 5,
    "6": 6,
    "restart": 6,
    "7": 7,
    "footprint": 7,
    "8": 8,
    "idle": 8,
    "9": 9,
    "reload": 9,
}
NEEDS = {
    1: ("wrk", "nginx", "haproxy", "caddy"),
    2: ("wrk", "nginx", "haproxy", "caddy"),
    3: ("wrk", "nginx", "haproxy", "caddy"),
    4: ("wrk", "nginx", "caddy"),
    5: ("wrk", "nginx", "node", "pm2"),
    6: ("node", "pm2"),
    7: ("node", "pm2", "supervisord"),
    8: ("nginx", "haproxy", "caddy"),
    9: ("nginx", "node", "pm2"),
}
SINGLE: dict[int, Callable[[Options], Table]] = {
    5: stacks.run,
    6: restart.run,
    7: footprint.run,
    8: idle.run,
    9: reload.run,
}
TITLES = {
    5: "Two Node.js instances: kanri against nginx + PM2",
    6: "Restart after kill -9",
    7: "Footprint with 10 idle apps",
    8: "Memory per idle keep-alive connection",
    9: "Failed requests during a reload under load",
}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C, so every Cleanup stops what it started.
    raise KeyboardInterrupt


def _single(scenario: int, opts: Options) -> list[Table]:
    return [SINGLE[scenario](opts)]


def run(scenarios: set[int], opts: Options) -> list[Table]:
    tables: list[Table] = []
    proxy = scenarios & {1, 2, 3, 4}
    steps: list[tuple[set[int], Callable[[], list[Table]]]] = []
    if proxy:
        steps.append((proxy, lambda: proxies.run(proxy, opts)))
    for s in sorted(scenarios - proxy):
        steps.append(({s}, partial(_single, s, opts)))
    for which, step in steps:
        began = time.monotonic()
        try:
            tables += step()
        except (BenchError, peers.UnavailableError) as exc:
            if len(steps) == 1:
                raise
            for s in sorted(which):
                failed = Table(s, TITLES.get(s, proxies.TITLES.get(s, ("", ""))[0]), "", [])
                failed.skipped.append(f"the scenario failed: {exc}")
                tables.append(failed)
            traceback.print_exc()
        print(
            f"bench: scenario {', '.join(map(str, sorted(which)))} took {time.monotonic() - began:.0f}s",
            file=sys.stderr,
            flush=True,
        )
    return tables


def _rows(tables: list[Table], scenario: int) -> list[dict[str, object]]:
    return [r for t in tables if t.scenario == scenario for r in t.rows]


def _row(
    tables: list[Table], scenario: int, contender: str, workers: int, case: str | None = None
) -> dict[str, object] | None:
    return next(
        (
            r
            for r in _rows(tables, scenario)
            if r.get("contender") == contender
            and r.get("workers") == workers
            and (case is None or r.get("case") == case)
        ),
        None,
    )


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _by_round(row: dict[str, object], ref: dict[str, object] | None) -> str:
    """The requests/s ratio of each round (both measured within seconds of each other)."""
    mine, theirs = row.get("rps_rounds"), ref.get("rps_rounds") if ref else None
    if not isinstance(mine, list) or not isinstance(theirs, list) or len(mine) != len(theirs):
        return ""
    ratios = sorted(a / b for a, b in zip(mine, theirs, strict=True) if b)
    if len(ratios) < 2:
        return ""
    return f"; by round {ratios[0]:.2f}-{ratios[-1]:.2f}x"


def targets(tables: list[Table]) -> list[Target]:
    """kanri's targets from the issue, judged on this run's figures."""
    out: list[Target] = []

    def ratio_target(
        scenario: int,
        case: str,
        key: str,
        limit: float,
        what: str,
        *,
        at_least: bool = False,
        workers: tuple[int, ...] = (1, 2),
    ) -> None:
        for w in workers:
            row = _row(tables, scenario, "kanri", w, case)
            ref = _row(tables, scenario, "nginx", w, case)
            value = _num(row.get(key)) if row else None
            label = f"{what}, {w} worker{'s' if w > 1 else ''}"
            if row is None or value is None:
                out.append(Target(label, "not measured", ""))
                continue
            ok = value >= limit if at_least else value <= limit
            spread = _by_round(row, ref) if key == "rps_x" else ""
            out.append(Target(label, "met" if ok else "missed", f"{value:.2f}x nginx{spread}"))

    ratio_target(1, "small GET", "cpu_us_x", 1.5, "1: CPU per request at most 1.5x nginx")
    ratio_target(
        1, "small GET", "rps_x", 1.0, "1: requests/s at least nginx's", at_least=True, workers=(2,)
    )
    ratio_target(
        4, "static 1 KiB", "cpu_us_x", 2.0, "4: static 1 KiB CPU per request at most 2x nginx"
    )
    ratio_target(
        4, "static 1 MiB", "cpu_us_x", 1.3, "4: static 1 MiB CPU per request at most 1.3x nginx"
    )

    for w in (1, 2):
        kanri = _row(tables, 5, "kanri", w)
        ref = _row(tables, 5, "nginx + PM2 cluster", w)
        label = f"5: kanri ≥ nginx + PM2 cluster in req/s, with a lower p99, {w} worker{'s' if w > 1 else ''}"
        if not kanri or not ref:
            out.append(Target(label, "not measured", ""))
            continue
        k_rps, r_rps = _num(kanri["rps"]) or 0.0, _num(ref["rps"]) or 0.0
        k_p99, r_p99 = _num(kanri["p99_ms"]) or 0.0, _num(ref["p99_ms"]) or 0.0
        ok = k_rps >= r_rps and k_p99 < r_p99
        out.append(
            Target(
                label,
                "met" if ok else "missed",
                f"{k_rps:,.0f} vs {r_rps:,.0f} req/s{_by_round(kanri, ref)}; "
                f"p99 {k_p99:.2f} vs {r_p99:.2f} ms",
            )
        )

    feet = _rows(tables, 7)
    kanri7 = next((r for r in feet if r.get("contender") == "kanri"), None)
    pm2 = next((r for r in feet if r.get("contender") == "PM2"), None)
    label = "7: kanri daemon + 1 proxy worker use less memory than PM2's daemon"
    if kanri7 and pm2:
        k, p = _num(kanri7.get("rss_mib")) or 0.0, _num(pm2.get("rss_mib")) or 0.0
        out.append(Target(label, "met" if k < p else "missed", f"RSS {k:.1f} vs {p:.1f} MiB"))
    else:
        out.append(Target(label, "not measured", ""))

    reloads = [r for r in _rows(tables, 9) if str(r.get("contender", "")).startswith("kanri")]
    label = "9: kanri 0 failed requests"
    if reloads:
        failed = sum(int(_num(r.get("failed")) or 0) for r in reloads)
        out.append(
            Target(
                label,
                "met" if failed == 0 else "missed",
                f"{failed} failed in {len(reloads)} cases",
            )
        )
    else:
        out.append(Target(label, "not measured", ""))
    return out


def main(name: str, argv: list[str]) -> int:
    p = options.parser(f"python -m bench {name}", __doc__)
    opts = options.from_args(p.parse_args(argv))
    scenarios = set(range(1, 10)) if name == "all" else {NAMES[name]}
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started with SIGINT ignored (`cmd &`)
    raise_fd_limit(65536)  # scenario 8 holds 5,000 connections; children inherit the limit
    began = time.monotonic()
    wanted = tuple(sorted({peer for s in scenarios for peer in NEEDS[s]}))
    for peer in peers.install(wanted).values():
        if peer.path is None:
            print(f"bench: {peer.name} is not available: {peer.why}", file=sys.stderr, flush=True)
    info = machine()
    vers = versions()
    try:
        with flat_scheduling(keep=opts.keep_autogroup) as autogroup:
            info["autogroup"] = autogroup
            print(header(info, vers), flush=True)
            tables = run(scenarios, opts)
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    except (BenchError, peers.UnavailableError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print_tables(tables)
    judged = targets(tables) if name == "all" else []
    for t in judged:
        print(f"target {t.verdict:>12}: {t.what} ({t.detail})")
    settings = (
        f"Settings: {opts.seconds:g} s per measured run, {opts.rounds} round(s), "
        f"workers {', '.join(map(str, opts.workers))}"
        + (" (smoke run: figures only show that the scenarios work)" if opts.smoke else "")
        + "."
    )
    elapsed = time.monotonic() - began
    if name == "all" and not opts.smoke:
        write_docs(
            DOCS,
            tables=tables,
            info=info,
            vers=vers,
            targets=judged,
            settings=settings,
            elapsed=elapsed,
        )
        print(f"bench: wrote {DOCS}")
    if opts.output is not None:
        write_docs(
            opts.output,
            tables=tables,
            info=info,
            vers=vers,
            targets=judged,
            settings=settings,
            elapsed=elapsed,
        )
    if opts.json is not None:
        write_json(opts.json, tables, info)
    print(f"bench: done in {elapsed:.0f}s", file=sys.stderr)
    return 0
