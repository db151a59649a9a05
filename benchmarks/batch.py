"""(m) Batch mode at scale: jobs through each provider's batch API on a loopback server that ends
every batch at once, the harness in a child process of its own: its time from its start (the run
line) to its last record, and its peak RSS."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from benchmarks.http import loopback_server
from benchmarks.http_server import serve_batches
from benchmarks.project import peak_rss_of_run, write_project
from harness.ledger.lines import read_ledger

MODELS = {"anthropic": "claude-sonnet-4-6", "gemini": "gemini-2.5-flash"}


def batch_project(root: Path, provider: str, url: str, jobs: int, batch: str = "") -> Path:
    """A project of `jobs` jobs of one model in batch mode on the server at `url`."""
    os.environ.setdefault("BENCH_BATCH_KEY", "bench-key")
    body = (
        f'[[models]]\nname = "bench"\nprovider = "{provider}"\nmodel = "{MODELS[provider]}"\n'
        'mode = "batch"\ntemperatures = [0.0]\nmax_tokens = 64\n'
        f"[models.batch]\npoll_interval = 0.05\nmax_poll_interval = 0.5\n{batch}"
        f'[models.options]\nbase_url = "{url}"\napi_key_env = "BENCH_BATCH_KEY"\n'
    )
    return write_project(root / f"{provider}-{jobs}-{len(batch)}", jobs, body)


def batch_run(root: Path, provider: str, jobs: int, batch: str = "") -> tuple[float, float, int]:
    """(seconds from the run's start to its last record, its peak RSS in MB, its batches)."""
    with loopback_server(serve=serve_batches) as url:
        config = batch_project(root, provider, url, jobs, batch)
        _, rss = peak_rss_of_run(config)
    contents = read_ledger(config.parent / "out" / "ledger.jsonl")
    assert len(contents.records) == jobs and {r["status"] for r in contents.records} == {"ok"}
    started = datetime.fromisoformat(contents.runs[0]["started"])
    last = max(datetime.fromisoformat(r["timestamp"]) for r in contents.records)
    batches = sum(line["event"] == "submit" for line in contents.batches)
    return (last - started).total_seconds(), rss, batches
