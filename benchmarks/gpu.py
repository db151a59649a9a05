"""`python -m benchmarks.gpu` (`make bench-gpu`): check a GPU in a few minutes. A random Llama of
the chosen size is built on the spot (no download), then run through the vllm provider and the
transformers provider, and through each engine bare, on the same prompts (top-5 logprobs on
every side, temperature 0). The records are checked (every position's top 5, sorted; seeded
answers at temperature 0.7 the same on a second run; the run line naming the GPU), and one table
gives the ratios: harness over bare engine, the transformers backend's default batch over the
best batch measured, and one prompt at a time (the legacy way, a sample scaled up) over the
harness. Exits 2 with one line when there is no GPU (`--device cpu` runs it on the CPU, with the
`tiny` size, to try the script itself).

    python -m benchmarks.gpu [--size 1b|tiny] [--prompts 512] [--tokens 64] [--device cuda|cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.local import direct_seconds, engine_body, harness_run
from benchmarks.project import ledger_wall_seconds

# Model shapes: (hidden, intermediate, layers, heads, key-value heads, vocabulary)
SIZES = {
    "1b": (2048, 5632, 22, 32, 4, 32_000),  # TinyLlama's shape, 1.1B parameters
    "tiny": (128, 256, 2, 4, 4, 1_024),
}
BATCHES = (64, 256, 512)  # the transformers backend's batch sizes tried for the best one
SEQUENTIAL_SAMPLE = 16  # prompts the one-at-a-time baseline runs (scaled to all of them)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="1b")
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "error: no GPU here (torch.cuda.is_available() is False); benchmarks.gpu checks a GPU "
            "(--device cpu --size tiny tries the script on the CPU)",
            file=sys.stderr,
        )
        return 2
    dtype = "bfloat16" if args.device == "cuda" else "float32"
    with tempfile.TemporaryDirectory(prefix="harness-gpu-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        model = build_random_llama(root / "model", SIZES[args.size], dtype)
        print(f"built a random {args.size} Llama in {time.perf_counter() - started:.0f} s")
        rows, problems = measure(root, model, args, dtype)
    print_table(rows)
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


def build_random_llama(folder: Path, shape: tuple[int, ...], dtype: str) -> Path:
    """The tests' tiny tokenizer, padded with tokens of its own to the shape's vocabulary, and a
    Llama of that shape with random weights at `dtype`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tests.harness.providers.local.tiny_model import build_tiny_llama

    build_tiny_llama(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hidden, intermediate, layers, heads, kv_heads, vocabulary = shape
    tokenizer.add_tokens([f"<t{i}>" for i in range(max(0, vocabulary - len(tokenizer)))])
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(getattr(torch, dtype)).save_pretrained(folder)
    return folder


def measure(
    root: Path, model: Path, args: argparse.Namespace, dtype: str
) -> tuple[list[tuple[str, str]], list[str]]:
    """Every figure of the table, and what the record checks found wrong."""
    prompts, tokens = args.prompts, args.tokens
    rows, problems = [], []
    bare_vllm = direct_seconds("vllm", model, prompts, tokens, dtype)
    harness_vllm, records = _harness(root / "vllm", "vllm", model, args, dtype)
    gpu = args.device == "cuda"
    problems += check_records(records, tokens, "vllm", gpu)
    rows.append(("vllm: harness / bare AsyncLLM", _ratio(harness_vllm, bare_vllm)))
    spans, bare = {}, {}
    for size in BATCHES:
        bare[size] = direct_seconds(f"hf-batch-{size}", model, prompts, tokens, dtype)
        spans[size], _ = _harness(
            root / f"hf{size}", "transformers", model, args, dtype, f"batch_size = {size}\n"
        )
        rows.append(
            (f"transformers, batches of {size}: harness / bare", _ratio(spans[size], bare[size]))
        )
    default, records = _harness(root / "hf", "transformers", model, args, dtype)
    problems += check_records(records, tokens, "transformers", gpu)
    best = min(spans, key=spans.__getitem__)
    rows.append((f"transformers: default batch / best ({best})", _ratio(default, spans[best])))
    sample = min(SEQUENTIAL_SAMPLE, prompts)
    sequential = direct_seconds("hf-sequential", model, sample, tokens, dtype)
    sequential *= prompts / sample
    rows.append(("one at a time (legacy) / harness vllm", _ratio(sequential, harness_vllm)))
    rows.append(("one at a time (legacy) / harness transformers", _ratio(sequential, default)))
    problems += check_seeded(root / "seeded", model, args, dtype)
    return rows, problems


def _harness(
    folder: Path,
    provider: str,
    model: Path,
    args: argparse.Namespace,
    dtype: str,
    options: str = "",
) -> tuple[float, list[dict]]:
    """Run the harness in a child; its generation span (from the ledger) and its lines."""
    config = harness_run(
        folder, engine_body(provider, model, args.tokens, dtype, options), args.prompts
    )
    return ledger_wall_seconds(config), _lines(config)


def _lines(config: Path) -> list[dict]:
    """The lines of the ledger of a run of `config`."""
    return [json.loads(line) for line in (config.parent / "out" / "ledger.jsonl").open()]


def check_records(lines: list[dict], tokens: int, provider: str, gpu: bool) -> list[str]:
    """What is wrong with a run's records: not every one answered, a position without its
    top 5 or with them out of order, no GPU named in its run line (on a GPU)."""
    records = [line for line in lines if "key" in line]
    problems = []
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        problems.append(f"{provider}: {len(failed)} of {len(records)} jobs failed")
    for record in records:
        for position in record.get("token_logprobs") or []:
            values = [logprob for _, logprob in position["top"]]
            if len(values) != 5 or values != sorted(values, reverse=True):
                problems.append(f"{provider}: {record['key']}: a position's top 5 is wrong")
                break
        if len(record.get("token_logprobs") or []) > tokens:
            problems.append(f"{provider}: {record['key']}: more positions than tokens")
    (run,) = [line for line in lines if line.get("type") == "run"][:1] or [{}]
    if gpu and not run.get("gpu"):
        problems.append(f"{provider}: the run line names no GPU")
    return sorted(set(problems))


def check_seeded(root: Path, model: Path, args: argparse.Namespace, dtype: str) -> list[str]:
    """Seeded answers at temperature 0.7, run twice through each provider: the same texts."""
    problems = []
    for provider in ("vllm", "transformers"):
        body = engine_body(provider, model, args.tokens, dtype, "", temperature=0.7)
        texts = []
        for attempt in range(2):
            config = harness_run(root / f"{provider}{attempt}", body, 32)
            texts.append({r["key"]: r["full_response"] for r in _lines(config) if "key" in r})
        if texts[0] != texts[1]:
            problems.append(f"{provider}: seeded answers at temperature 0.7 differ between runs")
    return problems


def _ratio(measured: float, against: float) -> str:
    return f"{measured:.2f} s / {against:.2f} s = {measured / against:.2f}"


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, figure in rows:
        print(f"{name:<{width}}  {figure}")


if __name__ == "__main__":
    sys.exit(main())
