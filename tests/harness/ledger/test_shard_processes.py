"""Shards as a job array runs them: N real processes at once, one killed with SIGKILL and started
again, then one merge; every job answered exactly once."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from harness.ledger.shards import part_of
from tests.conftest import harness_process, kill_until_finished, results
from tests.harness.run.test_crash import busy_config, count_records, wait_for_records

SHARDS = 4


@pytest.mark.slow
def test_n_shard_processes_then_merge_answer_every_job_once(tmp_path):
    config = busy_config(tmp_path, prompts=120)
    processes = [harness_process("run", str(config), "--shard", f"{k}/{SHARDS}")
                 for k in range(SHARDS)]  # fmt: skip
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stderr.read().decode()
    out = tmp_path / "out"
    for k in range(SHARDS):
        keys = {r["key"] for r in results(out / "shards" / f"{k}-of-{SHARDS}" / "ledger.jsonl")}
        assert keys and all(part_of(key, SHARDS) == k for key in keys)
    merge = harness_process("merge", str(out), "--into", str(out))
    assert merge.wait(timeout=60) == 0, merge.stderr.read().decode()
    ok = Counter(r["key"] for r in results(out / "ledger.jsonl") if r["status"] == "ok")
    assert len(ok) == 240 and set(ok.values()) == {1}


@pytest.mark.slow
def test_a_shard_killed_with_sigkill_resumes_and_the_merge_has_every_job_once(tmp_path):
    config = busy_config(tmp_path, prompts=400)
    out = tmp_path / "out"
    others = [harness_process("run", str(config), "--shard", f"{k}/{SHARDS}")
              for k in range(1, SHARDS)]  # fmt: skip
    victim = out / "shards" / f"0-of-{SHARDS}" / "ledger.jsonl"
    rng = random.Random(20261124)

    def until(process):
        wait_for_records(victim, count_records(victim) + rng.randint(3, 15), process)

    def start():
        return harness_process("run", str(config), "--shard", f"0/{SHARDS}")

    kills = kill_until_finished(start, until, rounds=30)
    for process in others:
        assert process.wait(timeout=120) == 0, process.stderr.read().decode()
    assert kills >= 3
    merge = harness_process("merge", str(out), "--into", str(out))
    assert merge.wait(timeout=60) == 0, merge.stderr.read().decode()
    ok = Counter(r["key"] for r in results(out / "ledger.jsonl") if r["status"] == "ok")
    assert len(ok) == 800 and set(ok.values()) == {1}
    shard0 = Counter(r["key"] for r in results(victim) if r["status"] == "ok")
    assert shard0 and set(shard0.values()) == {1}
