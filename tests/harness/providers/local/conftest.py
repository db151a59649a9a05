"""Local-model fixtures: one tiny Llama per test session, and the environment that keeps vLLM on
the CPU fast and offline (settings measured on a 2-core machine)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.harness.providers.local.tiny_model import build_tiny_llama


@pytest.fixture(scope="session")
def engine_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a process that runs vLLM on the CPU."""
    cache = tmp_path_factory.mktemp("vllm-cache")
    return {
        "TORCHDYNAMO_DISABLE": "1",  # else inductor compiles the logprob kernel: ~18 s cold
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_RPC_BASE_PATH": str(cache),
        "VLLM_CACHE_ROOT": str(cache),
        "TORCHINDUCTOR_CACHE_DIR": str(cache),
        "VLLM_LOGGING_LEVEL": "WARNING",
    }


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a chat template, saved once for the session."""
    pytest.importorskip("transformers")
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def local_model(name: str, path: Path, *, chat: bool = True, temperatures="[0.0, 0.7]") -> str:
    """A [[models]] table for the tiny model through vLLM on the CPU."""
    return f"""
[[models]]
name = "{name}"
provider = "vllm"
temperatures = {temperatures}
max_tokens = 12
max_concurrency = 64
[models.options]
path = "{path}"
dtype = "float32"
max_model_len = 256
enforce_eager = true
chat = {"true" if chat else "false"}
top_logprobs = 5
"""


def environ_with(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment plus `extra`."""
    return {**os.environ, **extra}


@pytest.fixture(scope="session")
def tiny_adapters(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two LoRA adapters of the tiny Llama, `sft` and `dpo`, made with PEFT (read only: a test
    that edits one copies it first)."""
    pytest.importorskip("peft")
    from tests.harness.providers.local.tiny_model import build_tiny_adapter

    root = tmp_path_factory.mktemp("tiny-adapters")
    return {
        name: build_tiny_adapter(tiny_llama, root / name, seed=seed)
        for name, seed in (("sft", 1), ("dpo", 2))
    }


def with_adapters(body: str, adapters: dict[str, Path]) -> str:
    """A [[models]] table with a [models.adapters] table naming `adapters`."""
    lines = "".join(
        f"{json.dumps(name)} = {json.dumps(str(path))}\n" for name, path in adapters.items()
    )
    return f"{body}[models.adapters]\n{lines}"
