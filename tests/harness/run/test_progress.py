"""Progress off a terminal: plain lines per variant, each variant's rate over its own time."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from harness.errors import RateLimited
from harness.ledger.record import Record
from harness.run.progress import Progress


def record(variant: str, number: int, *, elapsed: float) -> Record:
    return Record(
        key=f"{variant}|p{number}|0",
        status="ok",
        prompt_hash="0123456789abcdef",
        schema=2,
        run_id="r",
        variant=variant,
        provider="simulated",
        model="m",
        adapter=None,
        prompt_id=f"p{number}",
        sample=0,
        full_response="yes",
        finish_reason="stop",
        finish_detail=None,
        tokens=None,
        cost_usd=None,
        token_logprobs=None,
        sampling_params={},
        timestamp="2026-01-01T00:00:00.000Z",
        elapsed_seconds=elapsed,
        retry_count=0,
        error=None,
        attempt_errors=[],
        prompt_category="a",
        is_synthetic_probe=False,
        metadata={},
        mode="live",
        batch_id=None,
    )


def test_plain_lines_show_each_variants_rate_over_its_own_time():
    now = 0.0
    out = io.StringIO()
    progress = Progress({"a": 2, "b": 4}, Console(file=out, width=200), clock=lambda: now)
    for now, variant, elapsed in [(1.0, "a", 1.0), (2.0, "a", 1.0), (10.0, "b", 2.0)]:
        progress.on_record(record(variant, int(now), elapsed=elapsed))
    now = 20.0
    progress.draw()
    lines = out.getvalue().splitlines()
    # a finished at 2 s, two jobs since 0 s; b began at 8 s and has one job done at 20 s.
    assert lines[0] == "a: 2/2 ok 2 failed 0 retrying 0 1.0/s eta -"
    assert lines[1] == "b: 1/4 ok 1 failed 0 retrying 0 0.1/s eta 36s"


def test_a_long_server_wait_shows_in_the_progress_line_until_it_ends():
    now = 0.0
    out = io.StringIO()
    progress = Progress({"a": 3}, Console(file=out, width=200), clock=lambda: now)
    job = SimpleNamespace(key="a|p1|0", variant=SimpleNamespace(id="a"))
    progress.on_retry(job, RateLimited("slow down", status=429, retry_after=120), 120.0)
    now = 30.0
    progress.draw()
    now = 121.0
    progress.draw()
    first, second = out.getvalue().splitlines()
    assert "retrying 1 (one waits 90s more, as the server asked)" in first
    assert "retrying 1 " in second and "waits" not in second


def test_a_variant_with_no_job_in_this_run_shows_no_line():
    out = io.StringIO()
    progress = Progress({"a": 1, "idle": 0}, Console(file=out, width=200), clock=lambda: 1.0)
    progress.on_record(record("a", 1, elapsed=1.0))
    progress.draw(final=True)
    assert [line.split(":")[0] for line in out.getvalue().splitlines()] == ["a"]
