# Two commands do all set-up on a fresh machine:
#   make demo   run kanri on the example stack
#   make test   lint, type-check and run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	cd examples/hello && ../../$(VENV)/bin/kanri up

lint: $(STAMP)
	$(PY) -m ruff check kanri tests bench
	$(PY) -m ruff format --check kanri tests bench
	$(PY) -m mypy

test: lint
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
