"""`python -m bench SCENARIO [options]`: run one benchmark scenario, or `all` of them."""

from __future__ import annotations

import importlib
import sys

from bench.suite import NAMES

SCENARIOS = {"soak": "bench.soak", "install": "bench.peers", "hotpath": "bench.hotpath"}
USAGE = (
    "usage: python -m bench SCENARIO [--seconds S] [--rounds R] [--workers 1|2|both] [--smoke]\n"
    "scenarios: all, "
    + ", ".join(f"{n} ({name})" for name, n in NAMES.items() if not name.isdigit())
    + ", soak, hotpath (the proxy's code alone, in-process), install (the peers)\n"
    "python -m bench SCENARIO --help for the options"
)


def main() -> int:
    name = sys.argv[1] if len(sys.argv) >= 2 else ""
    if name in ("-h", "--help"):
        print(USAGE)
        return 0
    if name == "all" or name in NAMES:
        from bench import suite

        return suite.main(name, sys.argv[2:])
    if name not in SCENARIOS:
        print(USAGE)
        return 2
    module = importlib.import_module(SCENARIOS[name])
    code: int = module.main(sys.argv[2:])
    return code


sys.exit(main())
