"""`python -m bench SCENARIO [options]`: run one benchmark scenario."""

from __future__ import annotations

import sys

SCENARIOS = {"soak": "bench.soak"}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help") or sys.argv[1] not in SCENARIOS:
        print("usage: python -m bench SCENARIO [options]; scenarios: " + ", ".join(SCENARIOS))
        return 0 if len(sys.argv) >= 2 and sys.argv[1] in ("-h", "--help") else 2
    import importlib

    module = importlib.import_module(SCENARIOS[sys.argv[1]])
    code: int = module.main(sys.argv[2:])
    return code


sys.exit(main())
