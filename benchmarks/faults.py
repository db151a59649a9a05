"""Throughput under random, load-independent 429s: the simulated provider and the openai provider
on a loopback server, each against the ideal the retries allow: every job's latency spread over
the concurrency, plus one retry-after."""

from __future__ import annotations

from pathlib import Path

from benchmarks.http import loopback_server, provider_project
from benchmarks.project import ledger_wall_seconds, run_in_process, write_project

JOBS, LATENCY, CONCURRENCY, SHARE, RETRY_AFTER = 2000, 0.1, 64, 0.05, 1.0


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


def _walls(configs: list[Path]) -> list[float]:
    walls = []
    for config in configs:
        run_in_process(config)
        walls.append(ledger_wall_seconds(config))
    return walls
