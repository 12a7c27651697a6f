"""kanri's benchmark harness: `python -m bench SCENARIO` (see `python -m bench --help`)."""
