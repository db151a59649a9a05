"""Throughput under random, load-independent 429s: the simulated provider and the openai provider
on a loopback server, each against the ideal the retries allow."""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks.http import loopback_server, provider_project
from benchmarks.project import ledger_wall_seconds, run_in_process, write_project

JOBS, LATENCY, CONCURRENCY, SHARE, RETRY_AFTER = 2000, 0.1, 64, 0.05, 1.0


def ideal_seconds() -> float:
    """Every job's latency spread over the concurrency, plus one retry-after for the last 429."""
    return JOBS * LATENCY / CONCURRENCY + RETRY_AFTER


def simulated_walls(root: Path, rounds: int) -> list[float]:
    """Ledger wall seconds of `rounds` runs through the simulated provider."""
    body = (
        '[[models]]\nname = "sim"\nprovider = "simulated"\ntemperatures = [0.0]\n'
        f"max_concurrency = {CONCURRENCY}\n[models.options]\nlatency_ms = {LATENCY * 1000:g}\n"
        f"rate_limit_rate = {SHARE}\nretry_after = {RETRY_AFTER}\n"
    )
    walls = []
    for i in range(rounds):
        config = write_project(root / f"sim429-{i}", JOBS, body)
        run_in_process(config)
        walls.append(ledger_wall_seconds(config))
    return walls


def openai_walls(root: Path, rounds: int) -> list[float]:
    """Ledger wall seconds of `rounds` runs through the openai provider on a loopback server."""
    walls = []
    with loopback_server(delay=LATENCY, limited=SHARE) as url:
        for i in range(rounds):
            config = provider_project(root / f"openai429-{i}", "openai", url, CONCURRENCY, JOBS)
            run_in_process(config)
            walls.append(ledger_wall_seconds(config))
    return walls


def median_wall(walls: list[float]) -> float:
    """The median of a benchmark's rounds."""
    return statistics.median(walls)
