"""`export` and `stats` on several threads give exactly what they give on one: the same report,
the same rows and columns (also when records met late add columns, or change a column's kind),
the same one-line errors; and the export leaves no temporary files behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from harness.analysis import export
from harness.analysis.export import write_export
from harness.analysis.stats import compute_stats
from harness.errors import InputError
from tests.conftest import harness_process
from tests.harness.analysis.ledgers import (
    answer,
    failure,
    logprobs,
    score,
    write_ledger,
    write_scores,
)


@pytest.fixture(autouse=True)
def _read_afresh(monkeypatch):
    """Every view made from the files, never taken from a snapshot (those are tested apart)."""
    monkeypatch.setenv("HARNESS_VIEW_CACHE", "0")


PROMPTS = 400


def _mixed_records(growing: bool) -> list[dict]:
    """Three variants over PROMPTS prompts, two with logprobs, answers superseded by answers and
    by failures; `growing`: fields that only later records have, and kinds that change late."""
    draw = random.Random(7)
    records = []
    for n in range(PROMPTS):
        for variant in ("a@t0", "b@t0", "c@t0.7"):
            fields = {}
            if variant != "c@t0.7":
                top = sorted((-draw.expovariate(1.0) for _ in range(5)), reverse=True)
                fields["token_logprobs"] = logprobs(top, top[::-1])
            if growing and n > PROMPTS * 3 // 4:
                fields["metadata"] = {"subject": n, "year": 2020.5, "late": [f"tag{n}"]}
            elif growing:
                fields["metadata"] = {"subject": f"s{n}", "year": 2020}
            record = answer(variant, f"p{n:04d}", probe=n % 3 == 0, category=f"c{n % 4}", **fields)
            records.append(record)
            if draw.random() < 0.05:  # answered again, or failed after its answer
                again = draw.random() < 0.5
                records.append(
                    answer(variant, f"p{n:04d}", response="again", **fields)
                    if again
                    else failure(variant, f"p{n:04d}")
                )
    if not growing:
        for record in records:
            if record["status"] == "error":
                record["error"] = None  # every record has the same fields
                record["status"] = "ok"
                record["full_response"] = "recovered"
    return records


@pytest.fixture(params=[False, True], ids=["same-columns", "columns-grow-late"])
def mixed(tmp_path, request):
    records = _mixed_records(request.param)
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    draw = random.Random(3)
    latest = {r["key"]: r for r in records}
    lines = []
    for record in latest.values():
        if record["status"] == "ok" and draw.random() < 0.9:
            lines.append(score(record, "claims", draw.choice(["exists", "none", "refused"])))
        if record["status"] == "ok" and draw.random() < 0.5:
            lines.append(score(record, "judge", draw.choice(["yes", "no"]), value=draw.random()))
    scores = write_scores(tmp_path / "scores.jsonl", lines)
    return ledger, scores


def test_stats_on_several_threads_equal_stats_on_one(mixed):
    ledger, scores = mixed
    alone = compute_stats(ledger, scores, resamples=200, seed=4, threads=1)
    assert {s.variant for s in alone.separations} == {"a@t0", "b@t0"}
    assert alone.comparisons and alone.rates
    for threads in (2, 3):
        spread = compute_stats(ledger, scores, resamples=200, seed=4, threads=threads)
        assert spread.as_json() == alone.as_json()
    labelled = compute_stats(ledger, scores, label="exists", resamples=50, threads=1)
    assert compute_stats(ledger, scores, label="exists", resamples=50, threads=2) == labelled


@pytest.mark.parametrize("form", ["parquet", "csv", "jsonl"])
def test_export_on_several_threads_equals_export_on_one(mixed, form, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "BATCH", 256)  # several batches
    ledger, scores = mixed
    alone = tmp_path / f"alone.{form}"
    rows = write_export(ledger, scores, form, alone, threads=1).rows
    assert rows == 3 * PROMPTS > 4 * 256
    for threads in (2, 3):
        spread = tmp_path / f"spread{threads}.{form}"
        assert write_export(ledger, scores, form, spread, threads=threads).rows == rows
        if form == "parquet":
            assert pq.read_table(spread).equals(pq.read_table(alone), check_metadata=True)
        assert spread.read_bytes() == alone.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_columns_that_grow_late_are_typed_as_in_one_process(tmp_path):
    ledger = write_ledger(tmp_path / "ledger.jsonl", _mixed_records(growing=True))
    target = tmp_path / "answers.parquet"
    write_export(ledger, tmp_path / "scores.jsonl", "parquet", target, threads=3)
    table = pq.read_table(target)
    assert str(table.schema.field("metadata.year").type) == "double"  # 2020, then 2020.5
    assert str(table.schema.field("metadata.late").type) == "list<element: string>"
    subjects = table.column("metadata.subject").to_pylist()  # "s1", then 301: JSON text
    assert subjects[3] == '"s1"' and subjects[-1] == str(PROMPTS - 1)
    assert table.column("error.type").to_pylist().count("ServerError") > 0


def test_a_bad_record_late_in_the_ledger_is_skipped_and_counted(tmp_path, run_cli):
    records = [answer("a@t0", f"p{i:04d}") for i in range(2000)]
    records[1700]["elapsed_seconds"] = "slow"
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    for verb in (["export", "--format", "parquet", "--threads", "2"], ["stats", "--threads", "2"]):
        code, out, err = run_cli(verb[0], tmp_path, *verb[1:])
        assert (code, err) == (0, "")
        assert f"{ledger}: skipped 1 unreadable line(s)" in out
    keys = pq.read_table(tmp_path / "answers.parquet").column("key").to_pylist()
    assert len(keys) == 1999 and "a@t0|p1700|0" not in keys


@pytest.mark.slow
def test_ctrl_c_during_an_export_on_threads_exits_130_and_leaves_nothing(tmp_path):
    process, _ = _export_under_way(tmp_path)
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C at a terminal: to every process of it
    assert process.wait(timeout=30) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.jsonl"]
    assert not _processes_naming(tmp_path)  # nothing left behind


def _export_under_way(folder: Path) -> tuple[subprocess.Popen[bytes], list[Path]]:
    """A CSV export of 40,000 records on two threads in `folder`, once it writes its temporary
    file; and that file."""
    records = [answer("a@t0", f"p{i:06d}", response="word " * 100) for i in range(40_000)]
    write_ledger(folder / "ledger.jsonl", records)
    process = harness_process("export", str(folder), "--format", "csv", "--threads", "2")
    deadline = time.monotonic() + 60
    while not (parts := [p for p in folder.iterdir() if p.name.startswith(".answers.csv.")]):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    return process, parts


def _processes_naming(path: Path) -> list[int]:
    """The processes whose command line names `path` (a forked worker has its parent's)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(path).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


@pytest.mark.slow
def test_the_next_export_on_threads_clears_what_a_killed_one_left(tmp_path):
    process, parts = _export_under_way(tmp_path)
    process.kill()  # SIGKILL: no clean-up runs
    process.wait()
    assert parts[0].exists()
    again = harness_process("export", str(tmp_path), "--format", "csv", "--threads", "2")
    assert again.wait(timeout=120) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.csv", "ledger.jsonl"]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _refuse() -> None:
    raise InputError("ledger.jsonl: record 'k': a field that does not fit")


def test_an_export_whose_halves_type_a_field_apart_is_the_same_on_any_threads(tmp_path):
    # Numbers in the first half, an object in the second: the numbers' own JSON text (3, not the
    # 3.0 of a float column the first half alone would make).
    records = [answer("a@t0", f"p{n:04d}", metadata={"x": 3 if n % 2 else 2.5}) for n in range(600)]
    records += [answer("a@t0", f"q{n:04d}", metadata={"x": {"a": 1}}) for n in range(600)]
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    alone, spread = tmp_path / "alone.csv", tmp_path / "spread.csv"
    write_export(ledger, tmp_path / "scores.jsonl", "csv", alone, threads=1)
    write_export(ledger, tmp_path / "scores.jsonl", "csv", spread, threads=2)
    assert spread.read_bytes() == alone.read_bytes()
    assert b',"3",' in alone.read_bytes() and b',"3.0",' not in alone.read_bytes()


def test_a_number_a_column_cannot_hold_is_the_same_one_line_error_on_threads(tmp_path, run_cli):
    records = [answer("a@t0", f"p{n:04d}", metadata={"x": 2**53 + 1}) for n in range(600)]
    records += [answer("a@t0", f"q{n:04d}", metadata={"x": 0.5}) for n in range(600)]
    write_ledger(tmp_path / "ledger.jsonl", records)
    alone = run_cli("export", tmp_path, "--format", "parquet", "--threads", "1")
    spread = run_cli("export", tmp_path, "--format", "parquet", "--threads", "2")
    assert alone[0] == 2 and "record 'a@t0|p0000|0': metadata" in alone[2]
    assert (spread[0], spread[2]) == (alone[0], alone[2])


def _as_the_harness_does(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
