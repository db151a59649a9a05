"""Crash safety with real processes: SIGKILL mid-run, resume, and nothing lost or done twice."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter

import pytest

from tests.conftest import harness_process, kill_until_finished, results, write_config

BUSY_MODEL = """
grace_seconds = {grace}

[retry]
max_attempts = 8
initial_wait = 0.01
max_wait = 0.05
attempt_timeout = {timeout}

[[models]]
name = "sim"
provider = "simulated"
temperatures = [0.0, 0.7]
max_concurrency = 6
[models.options]
latency_ms = 40
jitter_ms = 30
rate_limit_rate = 0.1
retry_after = 0.02
server_error_rate = 0.05
{extra}
"""


def busy_config(tmp_path, prompts: int, *, grace=10.0, timeout=5.0, extra=""):
    body = BUSY_MODEL.format(grace=grace, timeout=timeout, extra=extra)
    return write_config(tmp_path, body, prompts=prompts)


def count_records(ledger) -> int:
    return ledger.read_bytes().count(b'"status"') if ledger.exists() else 0


def wait_for_records(ledger, count: int, process, deadline: float = 20.0) -> None:
    """Return once the ledger holds `count` records or the process has ended."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if count_records(ledger) >= count or process.poll() is not None:
            return
        time.sleep(0.01)
    raise AssertionError(f"fewer than {count} records after {deadline} s")


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_gives_one_success_per_key(tmp_path):
    config = busy_config(tmp_path, prompts=150)
    ledger = tmp_path / "out" / "ledger.jsonl"
    rng = random.Random(20251112)

    def until(process):
        wait_for_records(ledger, count_records(ledger) + rng.randint(5, 60), process)

    kills = kill_until_finished(lambda: harness_process("run", str(config)), until, rounds=30)
    process = harness_process("run", str(config))
    assert process.wait(timeout=60) == 0
    assert kills >= 3
    records = results(ledger)
    ok = Counter(r["key"] for r in records if r["status"] == "ok")
    assert len(ok) == 300 and set(ok.values()) == {1}


@pytest.mark.slow
def test_sigint_finishes_in_flight_jobs_exits_130_and_the_next_run_continues(tmp_path):
    config = busy_config(tmp_path, prompts=150)
    ledger = tmp_path / "out" / "ledger.jsonl"
    process = harness_process("run", str(config))
    wait_for_records(ledger, 20, process)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 130
    assert b"Interrupted" in process.stdout.read()
    interrupted = results(ledger)
    assert 20 <= len(interrupted) < 300 and all(r["status"] == "ok" for r in interrupted)
    process = harness_process("run", str(config))
    assert process.wait(timeout=60) == 0
    ok = Counter(r["key"] for r in results(ledger) if r["status"] == "ok")
    assert len(ok) == 300 and set(ok.values()) == {1}


@pytest.mark.slow
def test_sigint_cancels_stalled_attempts_after_the_grace_period(tmp_path):
    extra = 'script = ["timeout"]'
    config = busy_config(tmp_path, prompts=20, grace=0.5, timeout=60.0, extra=extra)
    ledger = tmp_path / "out" / "ledger.jsonl"
    process = harness_process("run", str(config))
    time.sleep(1.5)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 130
    assert time.monotonic() - started < 5
    assert results(ledger) == []
