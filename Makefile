# Every target sets up .venv first (once, and again when pyproject.toml changes).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench lint

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(PY) -m harness run configs/demo.toml

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m benchmarks

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
