"""Throwaway projects for benchmarks: a prompts file, a config, and ways to run them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from rich.console import Console

from benchmarks.peak_rss import tree_pss_kb
from harness.ledger.index import build_index
from harness.run.execute import execute, pending
from harness.run.prepare import Overrides, prepare
from harness.run.summary import summarize


def write_project(folder: Path, prompts: int, body: str, *, samples: int = 1) -> Path:
    """A prompts file of `prompts` items and a config around `body` ([[models]] etc.)."""
    folder.mkdir(parents=True, exist_ok=True)
    items = [
        {"id": f"p{i:06d}", "prompt": f"Does package number {i} exist on PyPI?", "category": "c"}
        for i in range(prompts)
    ]
    (folder / "prompts.json").write_text(json.dumps({"prompts": items}))
    config = folder / "run.toml"
    head = f'prompts = "prompts.json"\noutput = "{folder / "out"}"\nsamples = {samples}\n'
    config.write_text(head + body)
    return config


def simulated_model(*, concurrency: int, latency_ms: float = 0, rpm: float | None = None) -> str:
    """A [[models]] table for one simulated model at one temperature."""
    limit = f"requests_per_minute = {rpm}\n" if rpm else ""
    return (
        '[[models]]\nname = "sim"\nprovider = "simulated"\ntemperatures = [0.0]\n'
        f"max_concurrency = {concurrency}\n{limit}"
        f"[models.options]\nlatency_ms = {latency_ms}\noutput_tokens = 48\n"
    )


REPO = Path(__file__).resolve().parents[1]


def run_with_summary(config: Path, output: Path | None = None) -> tuple[float, str]:
    """Run the config to the end in this process; returns (wall seconds, its closing table)."""
    prepared = prepare(config, Overrides(output=output))
    buffer = io.StringIO()
    console = Console(file=buffer, width=160)
    wanted = pending(build_index(prepared.ledger_path))
    started = time.perf_counter()
    code = anyio.run(lambda: execute(prepared, command="run", wanted=wanted, console=console))
    elapsed = time.perf_counter() - started
    printed = buffer.getvalue()
    if code != 0:
        raise RuntimeError(f"benchmark run exited {code}: {printed[-2000:]}")
    return elapsed, printed[printed.rfind("\n", 0, printed.find("┏")) + 1 :]


def run_in_process(config: Path) -> float:
    """Run the config to the end in this process; returns the wall seconds of the whole run."""
    return run_with_summary(config)[0]


def ledger_wall_seconds(config: Path) -> float:
    """The run's span from the ledger: first attempt started to last record written."""
    ledger = config.parent / "out" / "ledger.jsonl"
    return sum(s.wall_seconds for s in summarize(ledger).variants)


def peak_rss_of_run(config: Path, verb: str = "run") -> tuple[float, float]:
    """Run the config in a child `harness run` (or another verb); returns (wall seconds, the
    child's peak RSS MB)."""
    return peak_rss_of(verb, str(config))


def peak_rss_of(*args: str) -> tuple[float, float]:
    """Run `python -m harness ARGS` in a child; returns (wall seconds, its peak RSS in MB)."""
    elapsed, stderr = measured_child(*args)
    return elapsed, measure_of(stderr, "peak_rss_mb")


# How often the process tree's memory is sampled. Reading a process's PSS walks its pages: 23 ms
# for a first `stats` of 1M answers and its two forked passes, so every 50 ms took a third of a
# core from the verb measured (20.6 s unsampled, 22.6 s sampled).
_SAMPLE_SECONDS = 0.25


def measured_child(*args: str) -> tuple[float, str]:
    """Run `python -m harness ARGS` in a child under `benchmarks.peak_rss`; returns its wall
    seconds and its stderr (where its figures are), to which the peak memory of the child with
    the workers it forks is added as `tree_pss_mb=` (sampled every `_SAMPLE_SECONDS` from
    here)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.peak_rss", *args],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            text=True,
        )
        peak = 0
        while child.poll() is None:
            peak = max(peak, tree_pss_kb(child.pid))
            time.sleep(_SAMPLE_SECONDS)
        elapsed = time.perf_counter() - started
        errors.seek(0)
        stderr = errors.read()
    if child.returncode != 0:
        raise RuntimeError(stderr)
    return elapsed, f"{stderr}tree_pss_mb={peak / 1024:.1f}\n"


def measure_of(stderr: str, name: str) -> float:
    """The last figure `name=` that `benchmarks.peak_rss` printed."""
    return float(stderr.rsplit(f"{name}=", 1)[1].split()[0])
