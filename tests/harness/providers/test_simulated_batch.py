"""Batch mode on the simulated provider: no key, batches kept in the process that sent them, their
delays as configured, the answers and injected failures a live run gets."""

from __future__ import annotations

import json
import time
from collections import Counter

import anyio
import pytest

from harness.api.types import Message, Request, SamplingParams
from harness.errors import BatchCancelled
from harness.providers.simulated import SimulatedOptions, SimulatedProvider
from tests.clock import run_virtual
from tests.conftest import crash, harness_process, results, write_config

BATCH = """
[retry]
max_attempts = 3
initial_wait = 0.0
max_wait = 0.0
attempt_timeout = 2.0

[[models]]
name = "sim"
provider = "simulated"
temperatures = [0.0, 0.7]
mode = "batch"
[models.batch]
max_requests = 8
poll_interval = 0.01
max_poll_interval = 0.05
[models.options]
"""


def by_key(records: list[dict]) -> dict[str, dict]:
    return {r["key"]: r for r in records if r.get("type") is None}


def test_batch_mode_records_the_answers_a_live_run_gives(tmp_path, run_cli):
    config = write_config(tmp_path, BATCH + "batch_ready_ms = 30\n", prompts=10)
    code, out, err = run_cli("run", config)
    assert code == 0, out + err
    lines = results(tmp_path / "out" / "ledger.jsonl")
    batched = by_key(lines)
    assert len(batched) == 20 and {r["mode"] for r in batched.values()} == {"batch"}
    events = Counter(line["event"] for line in lines if line.get("type") == "batch")
    assert events == {"submit": 3, "submitted": 3, "closed": 3}  # 8 + 8 + 4 jobs
    assert all(r["batch_id"].startswith("simbatch_") for r in batched.values())

    assert run_cli("run", config, "--mode", "live", "--output", tmp_path / "live")[0] == 0
    live = by_key(results(tmp_path / "live" / "ledger.jsonl"))
    assert live.keys() == batched.keys() and {r["mode"] for r in live.values()} == {"live"}
    for key, record in live.items():
        assert batched[key]["full_response"] == record["full_response"]
        assert batched[key]["tokens"] == record["tokens"]


def test_injected_failures_fail_a_batchs_jobs_as_a_first_live_attempt_and_rerun_live_retries(
    tmp_path, run_cli
):
    options = "fatal_rate = 0.2\nserver_error_rate = 0.2\n"
    config = write_config(tmp_path, BATCH + options, prompts=15)
    assert run_cli("run", config)[0] == 1
    ledger = tmp_path / "out" / "ledger.jsonl"
    failed = {k: r for k, r in by_key(results(ledger)).items() if r["status"] == "error"}
    assert {r["error"]["type"] for r in failed.values()} == {"FatalError", "ServerError"}
    assert {r["mode"] for r in failed.values()} == {"batch"}

    single = config.read_text().replace("max_attempts = 3", "max_attempts = 1")
    config.write_text(single)  # each job's first attempt alone, live: the same draws
    assert run_cli("run", config, "--mode", "live", "--output", tmp_path / "live")[0] == 1
    live = by_key(results(tmp_path / "live" / "ledger.jsonl"))
    first = {k: r["error"]["type"] for k, r in live.items() if r["status"] == "error"}
    assert first == {k: r["error"]["type"] for k, r in failed.items()}

    code, out, _ = run_cli("rerun", config, "--mode", "live")
    assert code == 1 and f"Rerunning {len(failed)} failed job(s)" in out
    rerun = [r for r in results(ledger) if r.get("type") is None][-len(failed) :]
    assert {r["key"] for r in rerun} == failed.keys() and {r["mode"] for r in rerun} == {"live"}
    came_in = sum(r["status"] == "ok" for r in rerun)
    assert 0 < came_in < len(failed)  # each job's failure drawn afresh, at the same rates


def test_a_batch_is_in_progress_until_it_is_ready_and_its_records_take_that_long(tmp_path, run_cli):
    options = "batch_submit_ms = 20\nbatch_ready_ms = 400\nbatch_results_ms = 20\n"
    config = write_config(tmp_path, BATCH + options, prompts=4)
    started = time.monotonic()
    code, out, _ = run_cli("run", config)
    assert code == 0 and time.monotonic() - started >= 0.44
    assert "in_progress (processing " in out
    records = by_key(results(tmp_path / "out" / "ledger.jsonl"))
    assert len(records) == 8
    assert all(r["elapsed_seconds"] == pytest.approx(0.4) for r in records.values())


def test_a_batch_left_open_by_a_killed_run_is_found_expired_and_its_jobs_run_again(tmp_path):
    config = write_config(tmp_path, BATCH + "batch_ready_ms = 60000\n", prompts=3)
    ledger = tmp_path / "out" / "ledger.jsonl"
    process = harness_process("run", str(config))
    deadline = time.monotonic() + 30
    while b'"event":"submitted"' not in (ledger.read_bytes() if ledger.exists() else b""):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    crash(process)

    config.write_text(config.read_text().replace("60000", "0"))
    again = harness_process("run", str(config))
    assert again.wait(timeout=60) == 1
    expired = by_key(results(ledger))
    assert len(expired) == 6 and {r["error"]["type"] for r in expired.values()} == {"BatchExpired"}
    closed = [r for r in results(ledger) if r.get("event") == "closed"]
    assert [line["state"] for line in closed] == ["expired"]
    last = harness_process("run", str(config))
    assert last.wait(timeout=60) == 0, last.stderr.read().decode()
    assert {r["status"] for r in by_key(results(ledger)).values()} == {"ok"}


def test_plan_prices_a_simulated_batch_model_at_its_batch_rate(tmp_path, run_cli):
    price = "[models.price]\ninput = 3.0\noutput = 15.0\nbatch_discount = 0.5\n"
    config = write_config(tmp_path, BATCH.replace("[models.options]\n", price), prompts=10)
    code, out, _ = run_cli("plan", config, "--json")
    live_code, live_out, _ = run_cli("plan", config, "--json", "--mode", "live")
    assert code == live_code == 0
    batch, live = json.loads(out), json.loads(live_out)
    assert batch["total"]["cost_usd"] == pytest.approx(live["total"]["cost_usd"] / 2)
    assert any(note.startswith("sim: batch mode") for note in batch["notes"])


def test_a_cancelled_batch_keeps_the_answers_done_and_cancels_the_rest():
    provider = SimulatedProvider("sim-1", SimulatedOptions(batch_ready_ms=1000))
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=64, seed=1)
    requests = {
        f"b-{i}": Request(f"k{i}", "sim-1", (Message("user", f"q{i}"),), sampling)
        for i in range(10)
    }

    async def cancelled_at_a_quarter():
        items = [provider.batch_item(request, cid) for cid, request in requests.items()]
        batch_id = await provider.submit_batch(items, "hb-1")
        running = await provider.batch_status(batch_id)
        await anyio.sleep(0.25)
        await provider.cancel_batch(batch_id)
        ended = await provider.batch_status(batch_id)
        got = [item async for item in provider.batch_results(batch_id, requests.get)]
        return running, ended, got

    running, ended, got = run_virtual(cancelled_at_a_quarter)
    assert (running.state, running.ended, running.counts) == (
        "in_progress",
        False,
        {"processing": 10, "done": 0},
    )
    assert (ended.state, ended.ended, ended.counts) == (
        "canceled",
        True,
        {"processing": 8, "done": 2},
    )
    assert isinstance(ended.error, BatchCancelled) and ended.seconds == pytest.approx(
        0.25, abs=1e-3
    )
    assert [cid for cid, _ in got] == ["b-0", "b-1"]
    for cid, answer in got:
        assert answer.text == anyio.run(provider.generate, requests[cid]).text
