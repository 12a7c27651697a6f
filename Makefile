# Two commands do all set-up on a fresh machine:
#   make demo   run kanri on the example stack (Next.js + Django) on http://127.0.0.1:8080
#   make test   lint, type-check, set up the example, and run the whole test suite
#   make bench  kanri against nginx, HAProxy, Caddy and PM2 (about 10 minutes; writes docs/benchmarks.md)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo example test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo:
	$(MAKE) -C examples/nextjs-django demo

example:
	$(MAKE) -C examples/nextjs-django setup

lint: $(STAMP)
	$(PY) -m ruff check kanri tests bench
	$(PY) -m ruff format --check kanri tests bench
	$(PY) -m mypy

test: lint example
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
	$(MAKE) -C examples/nextjs-django clean
