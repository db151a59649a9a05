"""A result line whose checksum is right but whose record is of the wrong shape (an older or buggy
harness wrote it, or a hand with a recomputed checksum): every reader skips and counts it like a
damaged line, and every verb still does its work, with no traceback."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from harness.ledger.index import build_index
from harness.ledger.lines import parse_line, read_ledger, sealed
from harness.ledger.record import Record, RecordLine
from tests.conftest import SIMPLE_MODEL, write_config
from tests.harness.analysis.score_project import EXISTENCE

# Each: the fields that make a record of the harness's own the wrong shape.
WRONG = {
    "content as a list": {"full_response": [{"type": "text", "text": "hi"}]},
    "content as an object": {"full_response": {"text": "hi"}},
    "model as a number": {"model": 3},
    "a logprob as a string": {
        "token_logprobs": [{"token": "a", "logprob": "-0.1", "top": [["a", -0.1]]}]
    },
    "an alternative's logprob as a string": {
        "token_logprobs": [{"token": "a", "logprob": -0.1, "top": [["a", "-0.1"]]}]
    },
    "an alternative that is no pair": {
        "token_logprobs": [{"token": "a", "logprob": -0.1, "top": [["a"]]}]
    },
    "a position that is no object": {"token_logprobs": [["a", -0.1]]},
    "token counts as strings": {"tokens": {"input": "10", "output": "2", "total": 12}},
    "a negative token count": {"tokens": {"input": -1, "output": 2}},
    "an unknown status": {"status": "maybe"},
    "a category as a number": {"prompt_category": 5},
    "metadata as a list": {"metadata": [1]},
    "a timestamp as a number": {"timestamp": 5},
    "a sample as true": {"sample": True},
    "a sample past 32 bits": {"sample": 1 << 40},
    "a seed past 64 bits": {"sampling_params": {"seed": 1 << 63}},
    "an attempt error that is no object": {"attempt_errors": ["503"]},
    "an attempt error's status as text": {"attempt_errors": [{"type": "E", "status": "503"}]},
    "an unknown mode": {"mode": "carrier pigeon"},
    "a negative cost": {"cost_usd": -5.0},
    "a cost past any run's": {"cost_usd": 1e308},
    "a negative time": {"elapsed_seconds": -100.0},
}


def wrong_lines(record: dict, fields: dict[str, dict]) -> bytes:
    """One sealed line per entry of `fields`: `record` changed so, each under a key of its own."""
    lines = []
    for number, changes in enumerate(fields.values()):
        prompt_id = f"wrong{number}"
        key = f"{record['variant']}|{prompt_id}|0"
        lines.append(sealed({**record, "key": key, "prompt_id": prompt_id, **changes}))
    return b"".join(lines)


def first_answer(ledger: Path) -> dict:
    for line in ledger.read_bytes().splitlines():
        record = orjson.loads(line)
        if record.get("status") == "ok":
            del record["crc"]
            return record
    raise AssertionError("no answer")


@pytest.mark.parametrize("changes", WRONG.values(), ids=WRONG)
def test_a_sealed_record_of_the_wrong_shape_is_not_a_record(tmp_path, changes):
    path = tmp_path / "ledger.jsonl"
    fine = sealed({"key": "v|a|0", "status": "ok", "variant": "v", "prompt_id": "a", "sample": 0})
    path.write_bytes(fine + sealed({**orjson.loads(fine[:-1]), "key": "v|b|0", **changes}))
    assert parse_line(path.read_bytes().splitlines(keepends=True)[1]) is None
    contents = read_ledger(path)
    assert [r["key"] for r in contents.records] == ["v|a|0"] and contents.skipped == 1


def test_the_shape_names_every_field_of_a_record():
    assert set(typing.get_type_hints(RecordLine)) == {f.name for f in dataclasses.fields(Record)}


def test_every_verb_skips_and_counts_records_of_the_wrong_shape(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL + EXISTENCE, prompts=3)
    assert run_cli("run", config)[0] == 0
    out = tmp_path / "out"
    ledger = out / "ledger.jsonl"
    with ledger.open("ab") as file:
        file.write(wrong_lines(first_answer(ledger), WRONG))
    counted = f"skipped {len(WRONG)} unreadable line(s)"
    verbs = [
        ["status", out],
        ["stats", out],
        ["export", out, "--format", "parquet"],
        ["export", out, "--format", "csv"],
        ["export", out, "--format", "jsonl"],
        ["export", out, "--format", "pilot-json"],
        ["report", out, "--resamples", "0"],
        ["score", config],
        ["annotate", "export", out, "--labels", "yes,no"],
    ]
    for verb in verbs:
        code, stdout, err = run_cli(*verb)
        assert (code, err) == (0, ""), verb
        assert counted in stdout, verb
    rows = orjson.loads((out / "pilot_results.json").read_bytes())["metadata"]["total_results"]
    assert rows == 6  # the run's answers, none of the wrong shape
    code, _, err = run_cli("merge", out, "--into", tmp_path / "merged")
    assert (code, err) == (0, "")
    assert (tmp_path / "merged" / "ledger.jsonl").read_bytes() == ledger.read_bytes()


def test_a_failure_of_the_wrong_shape_is_counted_and_run_again(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=1)
    assert run_cli("run", config)[0] == 0
    ledger = tmp_path / "out" / "ledger.jsonl"
    answer = first_answer(ledger)
    failure = {**answer, "status": "error", "full_response": None, "error": "503 overloaded"}
    with ledger.open("ab") as file:
        file.write(sealed(failure))
    assert not build_index(ledger).is_done(answer["key"], answer["prompt_hash"])
    code, stdout, err = run_cli("rerun", config)
    assert (code, err) == (0, "")
    assert f"{ledger}: skipped 1 unreadable line(s)" in stdout
    code, stdout, err = run_cli("run", config)
    assert (code, err) == (0, "")
    assert build_index(ledger).is_done(answer["key"], answer["prompt_hash"])


def test_every_value_a_prompt_file_gives_as_metadata_is_read_back_by_every_verb(tmp_path, run_cli):
    # What the writer takes, the readers take: a uint64 hash, the int64 ends, a huge float,
    # nested values. A record the harness wrote and then could not read would count as done while
    # no analysis saw it.
    edges = {"row_hash": 2**64 - 1, "low": -(2**63), "big": 1.5e308, "nested": {"a": [1, "b"]}}
    prompts = tmp_path / "edges.jsonl"
    lines = [{"id": f"p{i}", "prompt": f"Does {i} exist?", **edges} for i in range(2)]
    prompts.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    config = write_config(tmp_path, SIMPLE_MODEL)
    config.write_text(config.read_text().replace('"prompts.json"', '"edges.jsonl"'))
    assert run_cli("run", config)[0] == 0
    out = tmp_path / "out"
    for line in (out / "ledger.jsonl").read_bytes().splitlines(keepends=True)[1:]:
        assert parse_line(line)["metadata"] == edges
    for verb in (["status", out], ["stats", out], ["export", out, "--format", "parquet"]):
        code, stdout, err = run_cli(*verb)
        assert (code, err) == (0, "") and "unreadable" not in stdout, verb
    exported = pq.read_table(out / "answers.parquet")
    assert exported.num_rows == 4
    assert exported.column("metadata.row_hash").to_pylist() == [str(2**64 - 1)] * 4
    assert exported.column("metadata.low").to_pylist() == [-(2**63)] * 4


def test_every_verb_skips_score_lines_of_the_wrong_shape(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL + EXISTENCE, prompts=3)
    assert run_cli("run", config)[0] == 0
    assert run_cli("score", config)[0] == 0
    out = tmp_path / "out"
    scores = out / "scores.jsonl"
    good = orjson.loads(scores.read_bytes().splitlines()[0])
    good.pop("crc", None)
    wrong = [{"label": 5}, {"label": ["a"]}, {"label": {"a": 1}}, {"value": "high"}]
    with scores.open("ab") as file:
        for changes in wrong:
            file.write(sealed({**good, **changes}))
    verbs = [
        ["score", config],
        ["stats", out, "--resamples", "0"],
        ["export", out, "--format", "parquet"],
        ["report", out, "--resamples", "0"],
        ["annotate", "export", out, "--scorer", "existence"],
    ]
    for verb in verbs:
        code, _, err = run_cli(*verb)
        assert (code, err) == (0, ""), verb
