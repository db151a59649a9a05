"""`harness plan` at scale: 100,000 prompts x 10 variants against a 1,000,000-record ledger."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness.api.types import Completion, Usage
from harness.errors import RateLimited
from harness.ledger.lines import sealed
from harness.run.jobs import Job, job_key
from harness.run.prepare import prepare
from harness.run.records import failure_record, success_record

PROMPTS, MODELS = 100_000, 5  # two temperatures each: 10 variants
CATEGORIES = ("cve_existence", "package_existence", "api_existence", "cwe", "tool_flag")
_ANSWER = " ".join(["The advisory describes a remote code execution in the parser."] * 8)


def write_plan_project(folder: Path) -> Path:
    """A prompts file of PROMPTS items and a config of MODELS priced simulated models."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "prompts.jsonl").open("w") as file:
        for i in range(PROMPTS):
            text = f"Does package number {i} exist on PyPI? " + "Answer yes or no. " * (i % 7)
            item = {"id": f"p{i:06d}", "prompt": text, "category": CATEGORIES[i % 5]}
            file.write(json.dumps(item) + "\n")
    models = "".join(
        f'[[models]]\nname = "sim{m}"\nprovider = "simulated"\nrequests_per_minute = 4000\n'
        f"[models.price]\ninput = 3.0\noutput = 15.0\n"
        for m in range(MODELS)
    )
    config = folder / "run.toml"
    head = f'prompts = "prompts.jsonl"\noutput = "{folder / "out"}"\n'
    config.write_text(head + "[defaults]\ntemperatures = [0.0, 0.7]\n" + models)
    return config


def write_plan_ledger(config: Path, records: int) -> int:
    """A ledger of `records` real records of the config's variants, a tenth of them failures
    (those jobs stay pending); returns its size in bytes."""
    prepared = prepare(config)
    ledger = prepared.ledger_path
    ledger.parent.mkdir(parents=True, exist_ok=True)
    draw = random.Random(7)
    variants, prompts = prepared.variants, prepared.prompts
    with ledger.open("wb") as file:
        for n in range(records):
            variant, prompt = (
                variants[n % len(variants)],
                prompts[n // len(variants) % len(prompts)],
            )
            job = Job(job_key(variant.id, prompt.id, 0), variant, prompt, 0)
            elapsed = draw.uniform(0.5, 4.0)
            if draw.random() < 0.1:
                error = RateLimited("rate_limit_error: busy", status=429, retry_after=30.0)
                record = failure_record("bench", job, error, elapsed=elapsed)
            else:
                usage = Usage(len(prompt.text) // 4 + 1, draw.randint(50, 400))
                completion = Completion(_ANSWER, "stop", usage, variant.model.model_id)
                record = success_record("bench", job, completion, elapsed=elapsed)
            file.write(sealed(record))
    return ledger.stat().st_size


def plan_seconds(config: Path, rounds: int) -> float:
    """Median wall seconds of `python -m harness plan CONFIG --json`, process start to exit."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "harness", "plan", str(config), "--json"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)
