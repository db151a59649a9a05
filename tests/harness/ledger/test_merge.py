"""`merge` and ledgers read as one: nothing recorded lost, timestamp order, duplicates once,
conflicting answers reported, the target written whole under its lock."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson

from harness.api.types import Completion, Message, Usage
from harness.config.models import ModelConfig
from harness.config.run_config import make_variant
from harness.errors import RateLimited
from harness.ledger.index import build_index
from harness.ledger.lines import sealed
from harness.ledger.sets import ledgers_of
from harness.ledger.writer import LedgerWriter
from harness.prompts.load import Prompt
from harness.run.jobs import Job, job_key
from harness.run.records import failure_record, success_record
from tests.conftest import ledger_lines

VARIANT = make_variant(ModelConfig(name="sim", provider="simulated"), 0.0, 7, {})


def job(prompt_id: str, sample: int = 0) -> Job:
    prompt = Prompt(prompt_id, (Message("user", f"is {prompt_id} real?"),), "c", False, {})
    return Job(job_key(VARIANT.id, prompt_id, sample), VARIANT, prompt, sample)


def answer(prompt_id: str, text: str, at: str, run: str = "run-a") -> bytes:
    record = success_record(run, job(prompt_id), Completion(text, "stop", Usage(3, 4), "sim"),
                            elapsed=0.1)  # fmt: skip
    return sealed({**_as_dict(record), "timestamp": at})


def failure(prompt_id: str, at: str, run: str = "run-a") -> bytes:
    record = failure_record(run, job(prompt_id), RateLimited("slow down"), elapsed=0.1)
    return sealed({**_as_dict(record), "timestamp": at})


def run_line(run: str, at: str) -> bytes:
    return sealed({"type": "run", "schema": 2, "run_id": run, "started": at, "plan": {}})


def _as_dict(record: object) -> dict:
    return orjson.loads(orjson.dumps(record))


def ledger(folder: Path, *lines: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ledger.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def t(second: int) -> str:
    return f"2026-11-24T10:00:{second:02d}.000Z"


def test_lines_are_merged_in_timestamp_order_byte_for_byte(tmp_path, run_cli):
    a = ledger(tmp_path / "a", run_line("ra", t(0)), answer("p1", "yes", t(1)),
               failure("p2", t(5)))  # fmt: skip
    b = ledger(tmp_path / "b", run_line("rb", t(2)), answer("p2", "no", t(3)),
               answer("p3", "maybe", t(4)))  # fmt: skip
    code, out, err = run_cli("merge", a, b, "--into", tmp_path / "m")
    assert code == 0, err
    merged = (tmp_path / "m" / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    given = a.read_bytes().splitlines(True) + b.read_bytes().splitlines(True)
    assert sorted(merged) == sorted(given)
    times = [ledger_lines(tmp_path / "m" / "ledger.jsonl")[i].get("timestamp") for i in range(6)]
    assert times[1:] == [t(1), None, t(3), t(4), t(5)]  # the run lines sit at their start
    index = build_index(tmp_path / "m" / "ledger.jsonl")
    assert set(index.answered) == {job("p1").key, job("p3").key}
    assert set(index.failures) == {job("p2").key}  # the later failure wins, from the other file
    assert "Merged 2 ledger(s)" in out and "status" in out


def test_a_ledgers_own_order_is_kept_when_its_clock_went_back(tmp_path, run_cli):
    # The run moved to a machine whose clock is behind: the answer written last must still win.
    a = ledger(tmp_path / "a", failure("p1", t(30)), answer("p1", "yes", t(10)))
    b = ledger(tmp_path / "b", answer("p9", "no", t(20)))
    assert run_cli("merge", a, b, "--into", tmp_path / "m")[0] == 0
    index = build_index(tmp_path / "m" / "ledger.jsonl")
    assert set(index.answered) == {job("p1").key, job("p9").key}


def test_merging_again_or_merging_a_copy_changes_nothing(tmp_path, run_cli):
    a = ledger(tmp_path / "out" / "shards" / "0-of-2", run_line("ra", t(0)),
               answer("p1", "yes", t(1)))  # fmt: skip
    ledger(tmp_path / "out" / "shards" / "1-of-2", run_line("rb", t(0)), answer("p2", "no", t(2)))
    shutil.copy(a, tmp_path / "copy.jsonl")
    out = tmp_path / "out"
    assert run_cli("merge", out, "--into", out)[0] == 0
    first = (out / "ledger.jsonl").read_bytes()
    code, stdout, _ = run_cli("merge", out, tmp_path / "copy.jsonl", a, "--into", out)
    assert code == 0 and (out / "ledger.jsonl").read_bytes() == first
    assert "6 exact duplicate line(s) left out" in stdout
    assert len(first.splitlines()) == 4


def test_conflicting_answers_are_listed_kept_and_exit_1(tmp_path, run_cli):
    a = ledger(tmp_path / "a", answer("p1", "yes", t(1)), answer("p2", "same", t(1)))
    b = ledger(tmp_path / "b", answer("p1", "no", t(3), run="run-b"),
               answer("p2", "same", t(2), run="run-b"))  # fmt: skip
    code, out, _ = run_cli("merge", a, b, "--into", tmp_path / "m")
    assert code == 1
    listed = tmp_path / "m" / "merge-conflicts.jsonl"
    assert "1 key(s) have different answers in different ledgers" in out and str(listed) in out
    (conflict,) = ledger_lines(listed)
    assert conflict["key"] == job("p1").key and conflict["read"] == 1
    assert [a["full_response"] for a in conflict["answers"]] == ["yes", "no"]
    assert [a["ledger"] for a in conflict["answers"]] == [str(a), str(b)]
    assert len(ledger_lines(tmp_path / "m" / "ledger.jsonl")) == 4  # every answer kept


def test_the_targets_own_lines_are_never_lost(tmp_path, run_cli):
    out = tmp_path / "out"
    ledger(out, answer("p0", "first", t(0)))
    shard = ledger(tmp_path / "elsewhere", answer("p1", "yes", t(1)))
    assert run_cli("merge", shard, "--into", out)[0] == 0
    assert {line["key"] for line in ledger_lines(out / "ledger.jsonl")} == {
        job("p0").key, job("p1").key}  # fmt: skip


def test_a_ledger_in_use_is_not_merged_into(tmp_path, run_cli):
    out = tmp_path / "out"
    ledger(out, answer("p0", "first", t(0)))
    before = (out / "ledger.jsonl").read_bytes()
    shard = ledger(tmp_path / "s", answer("p1", "yes", t(1)))
    writer = LedgerWriter(out / "ledger.jsonl")
    try:
        code, _, err = run_cli("merge", shard, "--into", out)
    finally:
        writer.close()
    assert code == 2 and err == f"error: {out / 'ledger.jsonl'}: in use by another harness run\n"
    assert (out / "ledger.jsonl").read_bytes() == before
    assert [p.name for p in out.iterdir()] == ["ledger.jsonl"]


def test_an_unfinished_last_line_is_left_out_and_counted(tmp_path, run_cli):
    whole = answer("p2", "no", t(2))
    a = ledger(tmp_path / "a", answer("p1", "yes", t(1)), whole[:40])
    code, out, _ = run_cli("merge", a, "--into", tmp_path / "m")
    assert code == 0 and "1 unfinished last line(s) left out" in out
    assert len(ledger_lines(tmp_path / "m" / "ledger.jsonl")) == 1


def test_a_damaged_line_is_copied_as_it_is(tmp_path, run_cli):
    damaged = answer("p2", "no", t(2)).replace(b'"no"', b'"NO"')
    a = ledger(tmp_path / "a", answer("p1", "yes", t(1)), damaged, answer("p3", "x", t(3)))
    assert run_cli("merge", a, "--into", tmp_path / "m")[0] == 0
    assert (tmp_path / "m" / "ledger.jsonl").read_bytes() == a.read_bytes()
    assert build_index(tmp_path / "m" / "ledger.jsonl").skipped == 1


def test_a_file_that_is_not_a_ledger_is_refused_and_nothing_is_written(tmp_path, run_cli):
    other = tmp_path / "notes.jsonl"
    other.write_text('{"hello": 1}\n')
    a = ledger(tmp_path / "a", answer("p1", "yes", t(1)))
    code, _, err = run_cli("merge", a, other, "--into", tmp_path / "m")
    assert code == 2
    assert err == f"error: {other}: not a ledger (no run line or result record in it)\n"
    assert not (tmp_path / "m" / "ledger.jsonl").exists()


def test_a_directory_without_ledgers_is_bad_input(tmp_path, run_cli):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("merge", tmp_path / "empty", "--into", tmp_path / "m")
    assert code == 2 and err == f"error: {tmp_path / 'empty' / 'ledger.jsonl'}: no such ledger\n"
    assert not (tmp_path / "m").exists()


def test_an_open_batch_of_a_shard_stays_open_in_the_merged_ledger(tmp_path, run_cli):
    submit = sealed({"type": "batch", "event": "submit", "batch": "b1", "run_id": "ra",
                     "model": "sim", "provider": "anthropic", "timestamp": t(1),
                     "keys": [job("p1").key, job("p2").key], "hashes": ["h1", "h2"]})  # fmt: skip
    submitted = sealed({"type": "batch", "event": "submitted", "batch": "b1",
                        "batch_id": "msgbatch_1", "timestamp": t(2)})  # fmt: skip
    a = ledger(tmp_path / "a", submit, submitted, answer("p1", "yes", t(3)))
    b = ledger(tmp_path / "b", answer("p7", "no", t(2)))
    assert run_cli("merge", a, b, "--into", tmp_path / "m")[0] == 0
    index = build_index(tmp_path / "m" / "ledger.jsonl")
    assert list(index.batches) == ["b1"] and index.batches["b1"].batch_id == "msgbatch_1"
    assert index.awaiting == {job("p2").key: "b1"}
    assert build_index(ledgers_of([a, b])).awaiting == index.awaiting


def test_ledgers_read_as_one_are_the_merged_ledger(tmp_path, run_cli):
    a = ledger(tmp_path / "a", run_line("ra", t(0)), answer("p1", "yes", t(1)),
               failure("p2", t(4)), answer("p2", "ok now", t(6)))  # fmt: skip
    b = ledger(tmp_path / "b", run_line("rb", t(2)), answer("p3", "no", t(3)),
               answer("p1", "yes", t(5), run="run-b"))  # fmt: skip
    assert run_cli("merge", a, b, a, "--into", tmp_path / "m")[0] == 0
    merged = (tmp_path / "m" / "ledger.jsonl").read_bytes()
    assert b"".join(ledgers_of([a, b, tmp_path / "b"])) == merged


def test_duplicates_are_found_when_a_clock_went_back(tmp_path, run_cli):
    # Out of order, duplicates no longer meet at one time: the fingerprint pass finds them.
    a = ledger(tmp_path / "a", answer("p1", "yes", t(30)), failure("p2", t(10)),
               answer("p2", "ok", t(20)))  # fmt: skip
    b = ledger(tmp_path / "b", answer("p3", "no", t(15)))
    out = tmp_path / "m"
    assert run_cli("merge", a, b, "--into", out)[0] == 0
    first = (out / "ledger.jsonl").read_bytes()
    code, stdout, _ = run_cli("merge", a, b, "--into", out)
    assert code == 0 and (out / "ledger.jsonl").read_bytes() == first
    assert "4 exact duplicate line(s) left out" in stdout
    assert b"".join(ledgers_of([out, a, b])) == first
    index = build_index(out / "ledger.jsonl")
    assert set(index.answered) == {job("p1").key, job("p2").key, job("p3").key}
