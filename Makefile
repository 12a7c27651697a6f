# Two commands do all set-up on a fresh machine:
#   make demo   run kanri on the example stack (Next.js + Django) on http://127.0.0.1:8080
#   make test   lint, type-check, set up the example, and run the whole test suite
#   make bench  kanri against nginx, HAProxy, Caddy and PM2 (about 10 minutes; writes docs/benchmarks.md)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NATIVE := $(VENV)/.compiled
# setup.py compiles the proxy's hot modules with mypyc; editing one recompiles them.
HOT    := $(wildcard kanri/proxy/*.py) kanri/proxy/_heads.c kanri/native.py

.PHONY: install demo example test lint bench clean

install: $(NATIVE)

# pip also compiles the proxy (setup.py): about a minute.
$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP) $(NATIVE)

# mypyc leaves the library untouched when the C it generates is unchanged:
# touch it, so tests/proxy/test_native.py sees it is as new as the sources.
$(NATIVE): $(STAMP) $(HOT)
	KANRI_REQUIRE_COMPILED=1 $(PY) setup.py -q build_ext --inplace
	touch -c kanri/proxy/*.so
	touch $(NATIVE)

demo:
	$(MAKE) -C examples/nextjs-django demo

example:
	$(MAKE) -C examples/nextjs-django setup

lint: $(NATIVE)
	$(PY) -m ruff check kanri tests bench setup.py
	$(PY) -m ruff format --check kanri tests bench setup.py
	$(PY) -m mypy

test: lint example
	$(PY) -m pytest -q

bench: $(NATIVE)
	$(PY) -m bench all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build kanri/proxy/*.so
	$(MAKE) -C examples/nextjs-django clean
