"""Throughput under faults, each case against the ideal its faults allow.

Random 429s (case (i)): 2,000 jobs at 100 ms, concurrency 64, 5% random, load-independent 429s
with retry-after 1 s, through the simulated provider and the openai provider on a loopback
server. The ideal: every job's latency spread over the concurrency, plus one retry-after.

Heavy faults (case (s)): 1,000 prompts through the openai provider on a loopback server answering
after 100 ms, concurrency 64, with a fifth of the requests failing at once, half of them as 429s
with `retry-after: 1` and half as 500s (`benchmarks.http_server.serve_faults`). Which request
fails is a fixed draw per prompt and attempt, so every run, and the code before and after a
change, meets the same failures; each run gets a server of its own. The ideal is what the
server's own waits allow: every job's 100 ms spread over the 64 slots (1.56 s), plus the longest
series of retry-after waits that one prompt draws before its answer (3 s in this draw: three 429s
and a 500). The failures take no time and a 500 asks for no wait, so a client that honoured every
retry-after to the letter and retried each 500 at once would finish about then. It is not a
strict bound: the unlucky prompt's waits overlap the other jobs' work, so a run can beat it a
little, and a ratio near 1 is as good as it gets.
The runs set `[retry] max_attempts = 10`: at 20% failures the default 5 leaves one job in 3,125
failing for good by chance (this draw has a prompt failing five times in a row), and the case
measures the time to answer every job.
"""

from __future__ import annotations

import io
import json
from functools import partial
from pathlib import Path

import anyio
from rich.console import Console

from benchmarks.http import loopback_server, provider_project
from benchmarks.http_server import fault, serve_faults
from benchmarks.project import ledger_wall_seconds, run_in_process, write_project
from harness.ledger.index import build_index
from harness.ledger.lines import read_ledger
from harness.run.execute import execute, pending
from harness.run.prepare import prepare

JOBS, LATENCY, CONCURRENCY, SHARE, RETRY_AFTER = 2000, 0.1, 64, 0.05, 1.0
HEAVY_JOBS, HEAVY_SHARE, HEAVY_ATTEMPTS = 1000, 0.2, 10


def simulated_model(concurrency: int) -> str:
    """A [[models]] table: the simulated provider at 100 ms with 5% random 429s."""
    return (
        '[[models]]\nname = "sim"\nprovider = "simulated"\ntemperatures = [0.0]\n'
        f"max_concurrency = {concurrency}\n[models.options]\nlatency_ms = {LATENCY * 1000:g}\n"
        f"rate_limit_rate = {SHARE}\nretry_after = {RETRY_AFTER}\n"
    )


IDEAL = JOBS * LATENCY / CONCURRENCY + RETRY_AFTER


def simulated_walls(root: Path, rounds: int) -> list[float]:
    """Ledger wall seconds of `rounds` runs through the simulated provider."""
    model = simulated_model(CONCURRENCY)
    return _walls([write_project(root / f"sim429-{i}", JOBS, model) for i in range(rounds)])


def openai_walls(root: Path, rounds: int) -> list[float]:
    """Ledger wall seconds of `rounds` runs through the openai provider on a loopback server."""
    with loopback_server(delay=LATENCY, limited=SHARE) as url:
        configs = [
            provider_project(root / f"openai429-{i}", "openai", url, CONCURRENCY, JOBS)
            for i in range(rounds)
        ]
        return _walls(configs)


def one_at_a_time_seconds(root: Path, jobs: int = 40) -> float:
    """The simulated case one job at a time (`jobs` timed), scaled to JOBS."""
    config = write_project(root / "sim429-seq", jobs, simulated_model(1))
    return run_in_process(config) * JOBS / jobs


def heavy_round(root: Path) -> tuple[int, float, float]:
    """One run of the heavy-faults case on a server of its own: (jobs answered, the ledger's wall
    seconds, the ideal seconds)."""
    serve = partial(serve_faults, delay=LATENCY, share=HEAVY_SHARE, retry_after=RETRY_AFTER)
    head = f"[retry]\nmax_attempts = {HEAVY_ATTEMPTS}\n"
    with loopback_server(serve=serve) as url:
        config = provider_project(root, "openai", url, CONCURRENCY, HEAVY_JOBS, head)
        _run_to_the_end(config)
    items = json.loads((config.parent / "prompts.json").read_text())["prompts"]
    ideal, failures = heavy_ideal([item["prompt"] for item in items])
    records = read_ledger(config.parent / "out" / "ledger.jsonl").records
    answered = sum(record["status"] == "ok" for record in records)
    retried = sum(record["retry_count"] for record in records)
    # Every job answered: each failure the server drew was seen and retried, none other.
    assert answered < HEAVY_JOBS or retried == failures, (retried, failures)
    return answered, ledger_wall_seconds(config), ideal


def heavy_ideal(prompts: list[str]) -> tuple[float, int]:
    """The heavy-faults case's ideal seconds for `prompts`, and how many requests fail in all."""
    longest, failures = 0.0, 0
    for prompt in prompts:
        attempt, waits = 1, 0.0
        while (failure := fault(prompt, attempt, HEAVY_SHARE)) is not None:
            waits += RETRY_AFTER if failure == "429" else 0.0
            attempt += 1
        assert attempt <= HEAVY_ATTEMPTS, f"{prompt!r} fails {attempt - 1} times in a row"
        longest, failures = max(longest, waits), failures + attempt - 1
    return len(prompts) * LATENCY / CONCURRENCY + longest, failures


def _run_to_the_end(config: Path) -> None:
    """Run the config in this process; jobs that failed for good (exit 1) are in the ledger."""
    prepared = prepare(config)
    wanted = pending(build_index(prepared.ledger_path))
    console = Console(file=io.StringIO())
    code = anyio.run(lambda: execute(prepared, command="run", wanted=wanted, console=console))
    if code not in (0, 1):
        raise RuntimeError(f"benchmark run exited {code}")


def _walls(configs: list[Path]) -> list[float]:
    walls = []
    for config in configs:
        run_in_process(config)
        walls.append(ledger_wall_seconds(config))
    return walls
