"""The options every scenario takes: ``--seconds``, ``--rounds``, ``--workers``, ``--smoke``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SECONDS = 4.0
DEFAULT_ROUNDS = 2


@dataclass(frozen=True)
class Options:
    seconds: float  # length of one measured wrk run (or load run)
    rounds: int  # repetitions of each measurement; medians are reported
    workers: tuple[int, ...]  # proxy workers to measure with
    smoke: bool  # ~1 s runs with a couple of contenders: does the scenario work?
    only: frozenset[str] | None  # contenders to run (lower-case names); None = all
    json: Path | None  # also write the tables as JSON here
    output: Path | None  # also write the tables as markdown here
    # Leave the kernel's autogroup as it is (see procs.flat_scheduling).
    keep_autogroup: bool = False

    def wants(self, contender: str) -> bool:
        return self.only is None or contender.lower() in self.only

    @property
    def judged_rounds(self) -> int:
        """Rounds for a measurement a requests/s target is judged on: twice as many.

        Such a target compares two figures that move by 5-10% from round to round
        on a small machine; a median over more rounds keeps the verdict from
        following the noise. A smoke run stays short.
        """
        return self.rounds if self.smoke else 2 * self.rounds


def parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help=f"length of one measured run (default {DEFAULT_SECONDS:g}; 1 with --smoke)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"repeat each measurement, report the median (default {DEFAULT_ROUNDS}; 1 with --smoke)",
    )
    p.add_argument(
        "--workers",
        choices=("1", "2", "both"),
        default=None,
        help="proxy workers per contender (default both; 1 with --smoke)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="about a second per run, kanri and one peer: checks that the scenario works",
    )
    p.add_argument(
        "--only",
        default=None,
        help="comma-separated contenders to run (e.g. kanri,nginx); default all (smoke: a couple)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    p.add_argument(
        "--output", type=Path, default=None, help="also write the tables as markdown here"
    )
    p.add_argument(
        "--autogroup",
        choices=("off", "keep"),
        default="off",
        help="the kernel's per-session CPU grouping: off for the run (default, needs root) or keep",
    )
    return p


def from_args(args: argparse.Namespace) -> Options:
    smoke = bool(args.smoke)
    workers = args.workers or ("1" if smoke else "both")
    return Options(
        seconds=args.seconds if args.seconds is not None else (1.0 if smoke else DEFAULT_SECONDS),
        rounds=max(1, args.rounds if args.rounds is not None else (1 if smoke else DEFAULT_ROUNDS)),
        workers=(1, 2) if workers == "both" else (int(workers),),
        smoke=smoke,
        only=frozenset(s.strip().lower() for s in args.only.split(",")) if args.only else None,
        json=args.json,
        output=args.output,
        keep_autogroup=args.autogroup == "keep",
    )
