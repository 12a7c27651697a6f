"""Smoke runs of the benchmark scenarios: each for a second or two, checking they report."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


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
