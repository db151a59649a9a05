"""Crash safety of `harness score` with real processes: SIGKILL mid-way, resume, and every
answer ends with exactly one score per scorer (and the judge with one answer per question)."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SIMPLE_MODEL, crash, harness_process, results, write_config
from tests.harness.analysis.score_project import EXISTENCE, REFUSAL, per_key, write_answers

SLOW_JUDGE = """
[[scorers]]
name = "grader"
type = "judge"
labels = ["Yes", "No"]
verdict_pattern = "\\\\A(\\\\w+)"
template = "Grade: {response}"
[scorers.model]
provider = "simulated"
max_concurrency = 4
[scorers.model.options]
latency_ms = 30
jitter_ms = 20
rate_limit_rate = 0.05
retry_after = 0.01
"""


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def asked(judge_ledger: Path) -> int:
    """How many records the judge's ledger holds."""
    return judge_ledger.read_bytes().count(b'"status"') if judge_ledger.exists() else 0


def kill_until_done(config: Path, progress: Callable[[], int], step: Callable[[], int]) -> int:
    """Start `harness score` again and again, SIGKILLing it once `progress()` has grown by
    `step()` since its start, until one finishes; then once more, which must find nothing to
    do wrong. Returns how many were killed."""
    kills = 0
    for _ in range(20):
        target = progress() + step()
        process = harness_process("score", str(config))
        while process.poll() is None and progress() < target:
            time.sleep(0.005)
        if process.poll() is not None:
            assert process.wait() == 0, process.stderr.read().decode()
            break
        crash(process)
        kills += 1
    process = harness_process("score", str(config))
    assert process.wait(timeout=120) == 0, process.stderr.read().decode()
    return kills


@pytest.mark.slow
def test_sigkill_during_rule_scoring_then_resume_gives_one_score_per_answer(tmp_path):
    config = write_config(tmp_path, SIMPLE_MODEL + EXISTENCE + REFUSAL)
    out = tmp_path / "out"
    write_answers(out / "ledger.jsonl", 20_000)
    scores, rng = out / "scores.jsonl", random.Random(20261124)
    kills = kill_until_done(config, lambda: size(scores), lambda: rng.randint(100_000, 2_000_000))
    assert kills >= 2
    counts = per_key(out)
    assert len(counts) == 40_000 and set(counts.values()) == {1}


@pytest.mark.slow
def test_sigkill_during_a_judges_run_then_resume_asks_each_question_once(tmp_path):
    config = write_config(tmp_path, SIMPLE_MODEL + SLOW_JUDGE, prompts=120)
    assert harness_process("run", str(config)).wait(timeout=60) == 0
    out = tmp_path / "out"
    judge_ledger = out / "judge" / "grader" / "ledger.jsonl"
    rng = random.Random(7)
    kills = kill_until_done(config, lambda: asked(judge_ledger), lambda: rng.randint(5, 40))
    assert kills >= 2
    answered = Counter(r["key"] for r in results(judge_ledger) if r["status"] == "ok")
    assert len(answered) == 240 and set(answered.values()) == {1}
    counts = per_key(out)
    assert len(counts) == 240 and set(counts.values()) == {1}
