"""The ledger at 10,000,000 jobs: a project of 250,000 prompts x 10 variants x 4 samples, its
ledger written directly as 8 shards (running 10M jobs would take half an hour here), then merged,
indexed and summarized by real `harness` processes; and real runs of 1M and 2M jobs for memory.

Records are the ones a run writes (`success_record`, sealed), made from a per-variant template
that is checked against `sealed(success_record(...))` before use: short answers, no logprobs,
about 700 bytes each, 7 GB in all. Every file is deleted as soon as it has been measured.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from harness.api.types import Completion, Usage
from harness.config.run_config import Variant
from harness.ledger.lines import sealed
from harness.ledger.shards import Shard, part_of
from harness.prompts.load import Prompt
from harness.run.jobs import Job, job_key, job_seed
from harness.run.prepare import Overrides, prepare
from harness.run.provenance import new_run_id, run_line
from harness.run.records import success_record

PROMPTS, MODELS, SAMPLES = 250_000, 5, 4  # two temperatures each: 10 variants, 10M jobs
_COMPLETION = Completion("Yes, it exists.", "stop", Usage(14, 5), "sim-1")
_START = datetime(2026, 11, 24, tzinfo=UTC)
_PLACEHOLDERS: dict[str, Any] = {"prompt_id": "\x00P\x00", "sample": 987654321, "seed": 1234567891}


def write_scale_project(folder: Path, prompts: int = PROMPTS, samples: int = SAMPLES) -> Path:
    """A prompts file and a config of MODELS simulated models (0 ms) at two temperatures."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "prompts.jsonl").open("w") as file:
        for i in range(prompts):
            item = {"id": f"p{i:07d}", "prompt": f"Does package number {i} exist?", "category": "c"}
            file.write(json.dumps(item) + "\n")
    models = "".join(
        f'[[models]]\nname = "sim{m}"\nprovider = "simulated"\nmax_concurrency = 256\n'
        "[models.options]\nlatency_ms = 0\noutput_tokens = 5\n"
        for m in range(MODELS)
    )
    config = folder / "run.toml"
    head = f'prompts = "prompts.jsonl"\noutput = "{folder / "out"}"\nsamples = {samples}\n'
    config.write_text(head + "[defaults]\ntemperatures = [0.0, 0.7]\n" + models)
    return config


def write_shard_ledgers(config: Path, shards: int) -> tuple[list[Path], int]:
    """Every job of the config answered, each record in its shard's ledger (timestamps 0.1 ms
    apart in job order, a run line first in each); returns the ledgers and their bytes."""
    prepared = prepare(config)
    seed = prepared.config.seed
    templates = {v.id: _template(v, prepared.prompts[0], seed) for v in prepared.variants}
    paths = [
        Shard(k, shards).folder(prepared.config.output) / "ledger.jsonl" for k in range(shards)
    ]
    plans = [dict.fromkeys((v.id for v in prepared.variants), 0) for _ in range(shards)]
    for job in prepared.jobs(lambda key, prompt_hash: True):
        plans[part_of(job.key, shards)][job.variant.id] += 1
    files = []
    for k, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        files.append(path.open("wb", buffering=1 << 20))
        part_shard = Shard(k, shards)
        part = prepare(config, Overrides(shard=part_shard))
        shard = {**part_shard.as_record(), "plan_unsharded": prepared.totals()}
        line = run_line(new_run_id(), "run", part.config, [], part.variants, plans[k], shard=shard)
        files[k].write(sealed({**line, "started": _stamp(0)}))
    n = 0
    for prompt in prepared.prompts:
        for sample in range(prepared.config.samples):
            job_seed_ = job_seed(seed, prompt.id, sample)
            for variant in prepared.variants:
                key = job_key(variant.id, prompt.id, sample)
                head = templates[variant.id].format(
                    key=_json(key), pid=_json(prompt.id), hash=prompt.hash, sample=sample,
                    seed=job_seed_, ts=_stamp(n),
                ).encode()  # fmt: skip
                files[part_of(key, shards)].write(b'%b,"crc":"%08x"}\n' % (head, zlib.crc32(head)))
                n += 1
    for file in files:
        file.close()
    return paths, sum(path.stat().st_size for path in paths)


def _template(variant: Variant, prompt: Prompt, seed: int) -> str:
    """A variant's record as format text, checked against the real record of a job."""
    placeholder = replace(prompt, id=_PLACEHOLDERS["prompt_id"])
    record = _record(Job(job_key(variant.id, placeholder.id, 7), variant, placeholder, 7))
    record["sample"] = _PLACEHOLDERS["sample"]
    record["sampling_params"]["seed"] = _PLACEHOLDERS["seed"]
    record["prompt_hash"] = "\x00H\x00"
    record["timestamp"] = "\x00T\x00"
    text = orjson.dumps(record).decode()[:-1].replace("{", "{{").replace("}", "}}")
    for old, new in (
        (orjson.dumps(job_key(variant.id, placeholder.id, 7)).decode(), "{key}"),
        ('"\\u0000P\\u0000"', "{pid}"),
        ('"\\u0000H\\u0000"', '"{hash}"'),
        ('"\\u0000T\\u0000"', '"{ts}"'),
        (str(_PLACEHOLDERS["sample"]), "{sample}"),
        (str(_PLACEHOLDERS["seed"]), "{seed}"),
    ):
        text = text.replace(old, new, 1)
    job = Job(job_key(variant.id, prompt.id, 0), variant, prompt, 0)
    made = text.format(key=_json(job.key), pid=_json(prompt.id), hash=prompt.hash, sample=0,
                       seed=job_seed(seed, prompt.id, 0), ts=_stamp(0)).encode()  # fmt: skip
    if b'%b,"crc":"%08x"}\n' % (made, zlib.crc32(made)) != sealed(
        {**_record(job), "timestamp": _stamp(0)}
    ):
        raise RuntimeError("the record template no longer matches success_record")
    return text


def _record(job: Job) -> dict:
    return orjson.loads(orjson.dumps(success_record("bench-run", job, _COMPLETION, elapsed=0.0)))


def _json(text: str) -> str:
    return orjson.dumps(text).decode()


def _stamp(n: int) -> str:
    """The n-th job's time: 0.1 ms apart, ISO-8601 UTC with milliseconds."""
    moment = _START + timedelta(microseconds=100 * n)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def measured(args: list[str]) -> tuple[float, float, str]:
    """Run `python -m benchmarks.peak_rss ARGS` (a harness verb); (seconds, peak RSS MB,
    stdout)."""
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.peak_rss", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if child.returncode not in (0, 1):
        raise RuntimeError(child.stderr[-2000:])
    peak = float(re.findall(r"peak_rss_mb=([\d.]+)", child.stderr)[-1])
    return seconds, peak, child.stdout


def index_figures(ledger: Path) -> tuple[float, float, int]:
    """Build the resume index of `ledger` in a fresh process: (seconds, peak RSS MB, keys)."""
    code = (
        "import sys, time; from pathlib import Path; from harness.ledger.index import build_index; "
        "from benchmarks.peak_rss import peak_rss_mb; t = time.perf_counter(); "
        "i = build_index(Path(sys.argv[1])); s = time.perf_counter() - t; "
        "print(s, peak_rss_mb(), len(i.answered))"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, str(ledger)], capture_output=True, text=True, check=True
    )
    seconds, peak, keys = child.stdout.split()
    return float(seconds), float(peak), int(keys)
