"""Batch mode with real processes: killed (SIGKILL) while batches are in flight or while one is
being created, interrupted (SIGINT), then resumed; the loopback servers count what they were
sent."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from functools import partial
from pathlib import Path

import pytest

from tests.conftest import crash, harness_process, kill_until_finished, results
from tests.harness.providers.batch_project import (
    KEY,
    KINDS,
    model_table,
    project,
    sent_per_job,
    server,
)

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))]
ENV = {"BATCH_TEST_KEY": KEY}
SMALL_BATCHES = "max_requests = 40\npoll_interval = 0.05\nmax_poll_interval = 0.2"


def count(ledger: Path, marker: bytes) -> int:
    return ledger.read_bytes().count(marker) if ledger.exists() else 0


def wait_until(condition, process, deadline: float = 30.0) -> None:
    """Return once `condition()` holds or the process has ended."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition() or process.poll() is not None:
            return
        time.sleep(0.01)
    raise AssertionError(f"still waiting after {deadline} s")


def ok_per_key(ledger: Path) -> Counter[str]:
    return Counter(r["key"] for r in results(ledger) if r.get("status") == "ok")


def test_sigkill_while_batches_are_in_flight_then_run_sends_each_job_once(kind, tmp_path):
    backend = kind.backend(delay=1.0)
    ledger = tmp_path / "out" / "ledger.jsonl"
    rng = random.Random(f"kill-{kind.provider}")

    def until(process):
        if rng.random() < 0.5:  # while batches are created, or waited on
            marker, more = b'"event":"submitted"', rng.randint(1, 5)
        else:  # while results are written
            marker, more = b'"status"', rng.randint(1, 150)
        goal = count(ledger, marker) + more
        wait_until(lambda: count(ledger, marker) >= goal, process)

    with server(kind, backend) as loopback:
        table = model_table(kind, loopback.base_url, batch=SMALL_BATCHES)
        config = project(tmp_path, table, prompts=200)  # 400 jobs, 10 batches
        kills = kill_until_finished(partial(harness_process, "run", str(config), env=ENV), until, 8)
        process = harness_process("run", str(config), env=ENV)
        assert process.wait(timeout=60) == 0, process.stderr.read().decode()
    assert kills >= 2
    sent = sent_per_job(kind, backend)
    assert len(sent) == 400 and set(sent.values()) == {1}
    ok = ok_per_key(ledger)
    assert len(ok) == 400 and set(ok.values()) == {1}
    lines = [line for line in results(ledger) if line.get("type") == "batch"]
    assert Counter(line["event"] for line in lines)["closed"] == len(backend.batches)


def test_a_kill_before_a_created_batch_is_confirmed_never_sends_it_again(kind, tmp_path):
    backend = kind.backend(delay=0.2, create_delay=60.0)  # the id never comes back in time
    ledger = tmp_path / "out" / "ledger.jsonl"
    with server(kind, backend) as loopback:
        config = project(tmp_path, model_table(kind, loopback.base_url), prompts=30)
        process = harness_process("run", str(config), env=ENV)
        wait_until(lambda: len(backend.batches) == 1, process)
        crash(process)
        assert count(ledger, b'"event":"submit"') == 1
        assert count(ledger, b'"event":"submitted"') == 0
        backend.create_delay = 0.0
        process = harness_process("run", str(config), env=ENV)
        assert process.wait(timeout=60) == 0, process.stderr.read().decode()
    assert len(backend.batches) == 1  # found by its label (Anthropic: by time and size)
    sent = sent_per_job(kind, backend)
    assert len(sent) == 60 and set(sent.values()) == {1}
    ok = ok_per_key(ledger)
    assert len(ok) == 60 and set(ok.values()) == {1}


def test_ctrl_c_leaves_batches_running_status_shows_them_cancel_ends_them(
    kind, tmp_path, run_cli, monkeypatch
):
    monkeypatch.setenv("BATCH_TEST_KEY", KEY)
    backend = kind.backend(delay=600.0)
    ledger = tmp_path / "out" / "ledger.jsonl"
    with server(kind, backend) as loopback:
        table = model_table(kind, loopback.base_url, batch=SMALL_BATCHES)
        config = project(tmp_path, table, prompts=30)  # 60 jobs, 2 batches
        process = harness_process("run", str(config), env=ENV)
        wait_until(lambda: count(ledger, b'"event":"submitted"') == 2, process)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 130
        said = process.stdout.read().decode()
        assert "2 batch(es) still open at the provider" in said
        assert "batches cancel" in said
        assert results(ledger) and not [r for r in results(ledger) if "key" in r]

        code, out, _ = run_cli("status", tmp_path / "out")
        assert code == 0 and "2 open batch(es)" in out
        running = "in_progress" if kind.provider == "anthropic" else "JOB_STATE_RUNNING"
        assert out.count(running) == 2 and "40 jobs" in out and "20 jobs" in out

        code, out, _ = run_cli("batches", "cancel", tmp_path / "out")
        assert code == 0 and out.count("cancel requested") == 2
        assert all(batch.cancelled is not None for batch in backend.batches.values())

        code, out, _ = run_cli("run", config)
        assert code == 1
        failed = [r for r in results(ledger) if "key" in r]
        assert len(failed) == 60 and {r["error"]["type"] for r in failed} == {"BatchCancelled"}

        backend.delay = 0.0
        assert run_cli("rerun", config, "--error-type", "BatchCancelled")[0] == 0
    assert len(ok_per_key(ledger)) == 60
    assert set(sent_per_job(kind, backend).values()) == {2}  # cancelled once, then answered
