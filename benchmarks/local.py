"""Local models on the tiny Llama: harness overhead over vLLM alone, and vLLM against the
transformers backend and the legacy one-prompt-at-a-time `generate`.

Each engine runs in a process of its own (one engine per event loop). Times cover generation
only: engine and model loading are left out on every side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.project import ledger_wall_seconds, write_project

ENGINE_ENV = {
    "TORCHDYNAMO_DISABLE": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
    "VLLM_LOGGING_LEVEL": "WARNING",
}
MAX_TOKENS = 64


def engine_body(
    provider: str,
    path: Path,
    max_tokens: int = MAX_TOKENS,
    dtype: str = "float32",
    options: str = "",
    *,
    temperature: float = 0.0,
) -> str:
    """One variant of the model at `path` through `provider` (vllm or transformers), with top-5
    logprobs, every request submitted at once; `options`: more of its options' lines."""
    engine = "max_model_len = 256\nenforce_eager = true\n" if provider == "vllm" else ""
    return (
        f'[[models]]\nname = "m"\nprovider = "{provider}"\ntemperatures = [{temperature}]\n'
        f"max_tokens = {max_tokens}\nmax_concurrency = 4096\n[models.options]\n"
        f'path = "{path}"\ntop_logprobs = 5\ndtype = "{dtype}"\n{engine}{options}'
    )


def harness_generation_seconds(
    root: Path, provider: str, model: Path, prompts: int, options: str = ""
) -> float:
    """Run the harness in a child process; the span of its records is the generation time."""
    config = harness_run(
        root / f"h-{provider}", engine_body(provider, model, options=options), prompts
    )
    return ledger_wall_seconds(config)


def harness_run(folder: Path, body: str, prompts: int) -> Path:
    """Run the harness on `prompts` prompts and the [[models]] `body` in a child process, in
    `folder`; its config (the ledger is in `out/` beside it)."""
    config = write_project(folder, prompts, body)
    child("harness", "run", str(config), VLLM_CACHE_ROOT=str(folder / "cache"))
    return config


def direct_seconds(
    mode: str, model: Path, prompts: int, max_tokens: int = MAX_TOKENS, dtype: str = "float32"
) -> float:
    """Generation time of `prompts` prompts by `python -m benchmarks.local_direct MODE`."""
    out = child("benchmarks.local_direct", mode, str(model), str(prompts), str(max_tokens), dtype)
    return float(json.loads(out.strip().splitlines()[-1])["seconds"])


def child(module: str, *args: str, **env: str) -> str:
    """Run `python -m module args` with the engine settings; its stdout, or RuntimeError."""
    child = subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **ENGINE_ENV, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(child.stderr[-3000:])
    return child.stdout


def build_model(root: Path) -> Path:
    """The tests' tiny Llama, built here."""
    from tests.harness.providers.local.tiny_model import build_tiny_llama

    started = time.perf_counter()
    path = build_tiny_llama(root / "tiny-llama")
    print(f"    (tiny Llama built in {time.perf_counter() - started:.1f} s)")
    return path
