"""`harness export`: one row per job (latest wins) joined with current scores, as Parquet, CSV and
JSONL with the documented columns and types; DuckDB reads the ledger and the Parquet file."""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from types import SimpleNamespace

import duckdb
import orjson
import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness.analysis import export as export_module
from harness.analysis.export import BATCH, write_export
from harness.errors import InputError
from tests.harness.analysis.ledgers import (
    answer,
    failure,
    logprobs,
    score,
    write_ledger,
    write_scores,
)


@pytest.fixture
def project(tmp_path):
    """A ledger of 5 jobs (one answered twice, one answered then failed) and its scores."""
    superseded = answer("a@t0", "p0", response="first try")
    p0 = answer("a@t0", "p0", response="second try", metadata={"subject": "x", "year": 2021})
    p1 = answer(
        "a@t0",
        "p1",
        probe=True,
        metadata={"subject": "y", "year": "unknown"},
        token_logprobs=logprobs([-0.1, -2.5], [-0.7, -0.9]),
        tokens={"input": 10, "output": 20, "total": 30, "cache_read": 4},
    )
    p2_answered = answer("a@t0", "p2")
    p2 = failure("a@t0", "p2")
    b0 = answer("b@t0.7", "p0", category="pkg", cost_usd=None, attempt_errors=[p2["error"]])
    records = [superseded, p0, p1, p2_answered, b0, p2]
    for second, record in enumerate(records):  # written one after another, as a run writes them
        record["timestamp"] = f"2026-11-24T00:00:{second:02d}.000Z"
    ledger = write_ledger(tmp_path / "out" / "ledger.jsonl", records)
    write_scores(
        tmp_path / "out" / "scores.jsonl",
        [
            score(superseded, "claims", "exists"),  # given to the first answer: stale
            score(p1, "claims", "refused"),
            score(b0, "claims", "exists"),
            score(p0, "judge", "wrong", value=0.25),
            score(p1, "judge", None, status="error"),
        ],
    )
    return tmp_path / "out", ledger


# The export's columns, in order, and their Parquet types.
COLUMNS = """
key string | status string | variant string | provider string | model string | prompt_id string
sample int64 | prompt_category string | is_synthetic_probe bool | prompt_hash string
run_id string | schema int64 | full_response string | finish_reason string
finish_detail string | tokens.input int64 | tokens.output int64 | tokens.total int64
tokens.cache_read int64 | cost_usd double | sampling.temperature double | sampling.top_p double
sampling.max_tokens int64 | sampling.seed int64 | sampling.stop list<element: string>
timestamp timestamp[ms, tz=UTC] | elapsed_seconds double | retry_count int64 | error.type string
error.message string | error.retryable bool | error.status int64 | error.retry_after string
attempt_errors list<element: struct<type: string, message: string, retryable: bool, status: int64, retry_after: double>>
mode string | batch_id string | adapter string | metadata.subject string
metadata.year string
token_logprobs list<element: struct<token: string, logprob: double, token_id: int64, top_tokens: list<element: string>, top_logprobs: list<element: double>, top_ids: list<element: int64>>>
uncertainty.first_token_margin double | uncertainty.mean_topk_entropy double
uncertainty.sequence_logprob double | score.claims string | score.judge string
score.judge.value double
"""  # noqa: E501
# error.retry_after is never given a value: a null column; metadata.year is 2021 in one record
# and "unknown" in another: the values' JSON text.


def test_parquet_has_one_typed_row_per_job_with_its_current_scores(project, run_cli):
    output, _ = project
    code, out, err = run_cli("export", output, "--format", "parquet")
    assert code == 0, err
    target = output / "answers.parquet"
    assert f"Exported 4 job(s) to {target}" in out
    assert f"pandas.read_parquet('{target}')" in out
    table = pq.read_table(target)
    expected = [
        column.split(" ", 1) for line in COLUMNS.split("\n") for column in line.split(" | ")
    ]
    assert [[f.name, str(f.type)] for f in table.schema] == [c for c in expected if c != [""]]
    rows = {row["key"]: row for row in table.to_pylist()}
    assert list(rows) == ["a@t0|p0|0", "a@t0|p1|0", "b@t0.7|p0|0", "a@t0|p2|0"]  # ledger order
    p0, p1, b0, p2 = rows.values()
    assert p0["full_response"] == "second try"
    assert p0["score.claims"] is None  # its only score was given to the first answer
    assert (p0["score.judge"], p0["score.judge.value"]) == ("wrong", 0.25)
    assert p0["metadata.year"] == "2021" and p1["metadata.year"] == '"unknown"'
    assert p1["score.claims"] == "refused" and p1["score.judge"] is None  # the judge failed
    assert p1["tokens.cache_read"] == 4 and p0["tokens.cache_read"] is None
    assert b0["cost_usd"] is None and b0["attempt_errors"][0]["status"] == 503
    assert (p2["status"], p2["error.type"], p2["full_response"]) == ("error", "ServerError", None)
    assert p2["error.retryable"] is True and p2["tokens.input"] is None
    assert p0["timestamp"].isoformat() == "2026-11-24T00:00:01+00:00"
    assert p2["timestamp"].isoformat() == "2026-11-24T00:00:05+00:00"
    assert p0["sampling.stop"] == [] and p0["token_logprobs"] is None
    first, second = p1["token_logprobs"]
    assert first == {
        "token": "t0",
        "logprob": -0.1,
        "token_id": None,
        "top_tokens": ["t0_0", "t0_1"],
        "top_logprobs": [-0.1, -2.5],
        "top_ids": None,
    }
    assert second["top_logprobs"] == [-0.7, -0.9]
    assert p1["uncertainty.first_token_margin"] == pytest.approx(math.exp(-0.1) - math.exp(-2.5))
    assert p1["uncertainty.sequence_logprob"] == pytest.approx(-0.8)
    assert p0["uncertainty.mean_topk_entropy"] is None  # no logprobs: null, not NaN


def test_parquet_keeps_a_dictionary_for_every_column_but_floating_point_ones(project, run_cli):
    output, _ = project
    assert run_cli("export", output, "--format", "parquet")[0] == 0
    metadata = pq.ParquetFile(output / "answers.parquet").metadata
    group = metadata.row_group(0)
    chunks = [group.column(at) for at in range(group.num_columns)]
    with_dictionary = {c.path_in_schema for c in chunks if "RLE_DICTIONARY" in c.encodings}
    floating = {c.path_in_schema for c in chunks if c.physical_type == "DOUBLE"}
    assert "token_logprobs.list.element.top_logprobs.list.element" in floating
    assert "uncertainty.sequence_logprob" in floating and not floating & with_dictionary
    assert with_dictionary == {c.path_in_schema for c in chunks} - floating - {
        c.path_in_schema for c in chunks if c.physical_type == "BOOLEAN"
    }
    assert "token_logprobs.list.element.top_tokens.list.element" in with_dictionary


def test_parquet_keeps_statistics_for_the_columns_that_are_not_nested(project, run_cli):
    output, _ = project
    assert run_cli("export", output, "--format", "parquet")[0] == 0
    group = pq.ParquetFile(output / "answers.parquet").metadata.row_group(0)
    chunks = [group.column(at) for at in range(group.num_columns)]
    with_statistics = {c.path_in_schema for c in chunks if c.is_stats_set}
    assert {"key", "variant", "timestamp", "uncertainty.sequence_logprob"} <= with_statistics
    nested = {c.path_in_schema for c in chunks if ".list." in c.path_in_schema}
    assert "token_logprobs.list.element.top_logprobs.list.element" in nested
    assert with_statistics == {c.path_in_schema for c in chunks} - nested


def test_csv_and_jsonl_hold_the_same_rows(project, run_cli):
    output, _ = project
    for form in ("parquet", "csv", "jsonl"):
        assert run_cli("export", output, "--format", form)[0] == 0
    parquet = pd.read_parquet(output / "answers.parquet")
    csv = pd.read_csv(output / "answers.csv")
    jsonl = pd.read_json(output / "answers.jsonl", lines=True)
    assert list(csv.columns) == list(parquet.columns) == list(jsonl.columns)
    assert csv["key"].tolist() == parquet["key"].tolist() == jsonl["key"].tolist()
    assert csv["score.claims"].tolist()[1:3] == ["refused", "exists"]
    assert csv["tokens.total"].tolist()[:3] == [30, 30, 30]
    # nested values: as in Parquet, as JSON text in CSV
    first = json.loads(csv["token_logprobs"][1])[0]
    assert (first["top_tokens"], first["top_logprobs"]) == (["t0_0", "t0_1"], [-0.1, -2.5])
    lines = [orjson.loads(line) for line in (output / "answers.jsonl").read_bytes().splitlines()]
    assert lines[1]["token_logprobs"][1]["top"] == [["t1_0", -0.7], ["t1_1", -0.9]]
    assert lines[0]["metadata.year"] == "2021" and lines[1]["metadata.year"] == '"unknown"'
    assert lines[0]["uncertainty.first_token_margin"] is None
    assert lines[2]["attempt_errors"][0]["type"] == "ServerError"
    assert lines[0]["timestamp"] == "2026-11-24T00:00:01+00:00"


@pytest.mark.parametrize("threads", ["1", "2"])
def test_jsonl_holds_the_ledgers_own_token_logprobs(project, run_cli, threads):
    output, ledger = project
    assert run_cli("export", output, "--format", "jsonl", "--threads", threads)[0] == 0
    rows = {
        row["key"]: row["token_logprobs"]
        for row in map(orjson.loads, (output / "answers.jsonl").read_bytes().splitlines())
    }
    own = {
        r["key"]: r["token_logprobs"] for r in map(orjson.loads, ledger.read_bytes().splitlines())
    }
    assert rows == {key: own[key] for key in rows}
    assert any(rows.values())


def test_duckdb_reads_the_ledger_as_is_and_the_parquet_file(project, run_cli):
    output, ledger = project
    assert run_cli("export", output, "--format", "parquet")[0] == 0
    latest = duckdb.sql(
        f"""
        SELECT key, status, full_response FROM read_json('{ledger}')
        WHERE key IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY key ORDER BY timestamp DESC) = 1
        ORDER BY key
        """
    ).fetchall()
    exported = duckdb.sql(
        f"SELECT key, status, full_response FROM '{output / 'answers.parquet'}' ORDER BY key"
    ).fetchall()
    assert latest == exported
    by_label = duckdb.sql(
        f"""SELECT "score.claims", count(*) FROM '{output / "answers.parquet"}'
        GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    assert by_label == [("exists", 1), ("refused", 1), (None, 2)]


def test_a_record_of_the_wrong_shape_is_skipped_and_counted_and_the_rest_exported(
    tmp_path, run_cli
):
    records = [answer("a@t0", f"p{i}") for i in range(3)]
    records[2]["elapsed_seconds"] = "slow"  # sealed with a right checksum all the same
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    code, out, err = run_cli("export", tmp_path, "--format", "parquet")
    assert (code, err) == (0, "")
    assert f"{ledger}: skipped 1 unreadable line(s)" in out
    table = pq.read_table(tmp_path / "answers.parquet")
    assert table.column("key").to_pylist() == ["a@t0|p0|0", "a@t0|p1|0"]


def test_a_time_that_is_not_iso_8601_is_exported_as_null(tmp_path, run_cli):
    records = [answer("a@t0", f"p{i}") for i in range(3)]
    records[1]["timestamp"] = "yesterday"
    write_ledger(tmp_path / "ledger.jsonl", records)
    assert run_cli("export", tmp_path, "--format", "parquet")[:3:2] == (0, "")
    stamps = pq.read_table(tmp_path / "answers.parquet").column("timestamp").to_pylist()
    assert stamps[1] is None and stamps[0] is not None and stamps[2] is not None


def test_export_to_a_path_in_a_new_folder_and_bad_targets(project, run_cli):
    output, _ = project
    target = output.parent / "exports" / "run1.csv"
    assert run_cli("export", output, "--format", "csv", "--to", target)[0] == 0
    assert len(pd.read_csv(target)) == 4
    code, _, err = run_cli("export", output, "--format", "csv", "--to", output)
    assert (code, err) == (2, f"error: {output}: is a directory; name a file to write\n")
    code, _, err = run_cli("export", output.parent / "nothing", "--format", "csv")
    assert code == 2 and "no such ledger" in err


def test_fields_first_seen_after_the_first_batch_get_their_columns(tmp_path, run_cli):
    records = [answer("a@t0", f"p{i}") for i in range(BATCH + 10)]
    records[-5]["metadata"] = {"subject": "late", "difficulty": 3}
    records[-3] = failure("a@t0", records[-3]["prompt_id"])
    records[-1]["metadata"] = {"subject": 7}  # now numbers and strings: JSON text
    write_ledger(tmp_path / "ledger.jsonl", records)
    assert run_cli("export", tmp_path, "--format", "parquet")[0] == 0
    table = pq.read_table(tmp_path / "answers.parquet")
    assert table.num_rows == BATCH + 10
    assert str(table.schema.field("metadata.difficulty").type) == "int64"
    assert str(table.schema.field("metadata.subject").type) == "string"
    assert table.column("metadata.difficulty").to_pylist()[-5:] == [3, None, None, None, None]
    assert table.column("metadata.subject").to_pylist()[-5:-3] == ['"late"', f'"p{BATCH + 6}"']
    assert table.column("metadata.subject").to_pylist()[-1] == "7"
    assert table.column("error.type").to_pylist()[-3] == "ServerError"


@pytest.mark.parametrize("form", ["parquet", "csv", "jsonl"])
def test_empty_objects_give_no_columns_and_export_in_every_format(tmp_path, run_cli, form):
    # a prompts file of ids and prompts alone gives every record `"metadata": {}`
    records = [answer("a@t0", "p0", metadata={}), answer("a@t0", "p1", metadata={}, tokens={})]
    records.append(answer("a@t0", "p2", metadata={"subject": "x"}))
    write_ledger(tmp_path / "ledger.jsonl", records)
    target = tmp_path / f"a.{form}"
    code, _, err = run_cli("export", tmp_path, "--format", form, "--to", target)
    assert code == 0, err
    read = {"parquet": pd.read_parquet, "csv": pd.read_csv, "jsonl": _read_jsonl}
    table = read[form](target)
    assert table["metadata.subject"].tolist()[2] == "x"
    assert not [c for c in table.columns if c.startswith("metadata.") and c != "metadata.subject"]
    assert table["tokens.input"].tolist()[0] == 10 and pd.isna(table["tokens.input"].tolist()[1])


def _read_jsonl(path):
    return pd.read_json(path, lines=True)


def test_every_pass_reads_the_file_it_started_with_when_the_path_is_replaced(tmp_path):
    ledger = write_ledger(tmp_path / "ledger.jsonl", [answer("a@t0", f"p{i}") for i in range(3)])
    replaced = []

    def replace_the_ledger(count: int) -> None:  # as `run --fresh` does, between two passes
        if not replaced:
            ledger.rename(tmp_path / "ledger.old.jsonl")
            write_ledger(ledger, [answer("z@t0", "other")])
            replaced.append(True)

    target = tmp_path / "answers.jsonl"
    exported = write_export(ledger, tmp_path / "scores.jsonl", "jsonl", target, replace_the_ledger)
    assert replaced and exported.rows == 3
    keys = [orjson.loads(line)["key"] for line in target.read_bytes().splitlines()]
    assert keys == ["a@t0|p0|0", "a@t0|p1|0", "a@t0|p2|0"]


def test_microsecond_times_and_lines_from_before_mode_export_as_the_harness_means_them(
    tmp_path, run_cli
):
    old = answer("a@t0", "p0", timestamp="2026-11-24T00:00:01.123456Z")
    del old["mode"]  # written before the field existed: a live answer
    write_ledger(tmp_path / "ledger.jsonl", [old, answer("a@t0", "p1", mode="batch")])
    assert run_cli("export", tmp_path, "--format", "parquet")[0] == 0
    table = pq.read_table(tmp_path / "answers.parquet")
    assert table.column("mode").to_pylist() == ["live", "batch"]
    stamp = table.column("timestamp").to_pylist()[0]
    assert stamp.isoformat() == "2026-11-24T00:00:01.123000+00:00"


def test_one_fixture_exported_in_every_format_holds_the_expected_values(project, run_cli):
    output, _ = project
    for form in ("parquet", "csv", "jsonl"):
        assert run_cli("export", output, "--format", form, "--threads", "2")[0] == 0
    parquet = pq.read_table(output / "answers.parquet").to_pylist()
    csv_rows = pd.read_csv(output / "answers.csv").to_dict("records")
    lines = [orjson.loads(line) for line in (output / "answers.jsonl").read_bytes().splitlines()]
    p1 = {"parquet": parquet[1], "csv": csv_rows[1], "jsonl": lines[1]}
    expected = {
        "key": "a@t0|p1|0",
        "is_synthetic_probe": True,
        "tokens.cache_read": 4,
        "metadata.subject": "y",
        "metadata.year": '"unknown"',
        "score.claims": "refused",
        "mode": "live",
    }
    for form, row in p1.items():
        assert {name: row[name] for name in expected} == expected, form
        assert row["uncertainty.sequence_logprob"] == pytest.approx(-0.8), form
    # each format's own form of the nested values
    assert parquet[1]["token_logprobs"][1]["top_tokens"] == ["t1_0", "t1_1"]
    assert json.loads(csv_rows[1]["token_logprobs"])[1]["top_tokens"] == ["t1_0", "t1_1"]
    assert lines[1]["token_logprobs"][1]["top"] == [["t1_0", -0.7], ["t1_1", -0.9]]
    assert json.loads(csv_rows[2]["attempt_errors"])[0]["status"] == 503
    assert lines[2]["attempt_errors"][0]["status"] == parquet[2]["attempt_errors"][0]["status"]
    assert csv_rows[3]["error.type"] == lines[3]["error.type"] == parquet[3]["error.type"]
    assert lines[3]["timestamp"] == "2026-11-24T00:00:05+00:00"
    assert csv_rows[3]["timestamp"].startswith("2026-11-24 00:00:05")
    assert [r["score.judge.value"] for r in lines] == [0.25, None, None, None]


@pytest.mark.parametrize(
    "stored",
    [
        "line DESC",  # out of order from the first batch on
        f"line >= {BATCH} DESC, line",  # in order within each part, the later part first
    ],
)
def test_rows_come_in_ledger_order_when_the_latest_table_is_not_stored_in_it(
    tmp_path, monkeypatch, stored
):
    records = [answer("a@t0", f"p{i}") for i in range(BATCH + 10)]
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    made = export_module.open_view

    @contextmanager
    def stored_otherwise(*args, **kwargs):
        with made(*args, **kwargs) as view:
            view.connection.execute(f"CREATE TABLE other AS SELECT * FROM latest ORDER BY {stored}")
            view.connection.execute("DROP TABLE latest")
            view.connection.execute("ALTER TABLE other RENAME TO latest")
            yield view

    monkeypatch.setattr(export_module, "open_view", stored_otherwise)
    target = tmp_path / "answers.parquet"
    exported = write_export(ledger, tmp_path / "scores.jsonl", "parquet", target)
    assert exported.rows == len(records)
    keys = pq.read_table(target, columns=["key"]).column("key").to_pylist()
    assert keys == [record["key"] for record in records]


def test_batches_made_ahead_stop_and_close_when_the_writer_stops():
    closed, made = [], []

    def source():
        try:
            for number in range(1000):
                made.append(number)
                yield number
        finally:
            closed.append(True)

    class Stopped(Exception):
        pass

    view = SimpleNamespace(connection=SimpleNamespace(interrupt=lambda: None))
    taken = []
    with pytest.raises(Stopped):
        for batch in export_module._made_ahead(view, source()):
            taken.append(batch)
            raise Stopped  # as a writer that fails on its first batch
    assert taken == [0] and closed == [True]
    assert len(made) <= export_module.AHEAD + 2  # made ahead, no further


def test_an_error_making_the_batches_reaches_the_writer():
    def source():
        yield 1
        raise ValueError("bad batch")

    view = SimpleNamespace(connection=SimpleNamespace(interrupt=lambda: None))
    with pytest.raises(ValueError, match="bad batch"):
        list(export_module._made_ahead(view, source()))


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_writer_that_fails_stops_the_thread_making_its_rows_and_leaves_no_file(
    tmp_path, monkeypatch
):
    import threading

    ledger = write_ledger(
        tmp_path / "ledger.jsonl", [answer("a@t0", f"p{i}") for i in range(3 * BATCH)]
    )

    def failing(target, batches):
        next(batches)
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(export_module._WRITERS, "parquet", failing)
    target = tmp_path / "answers.parquet"
    with pytest.raises(InputError, match="cannot write: No space left on device"):
        write_export(ledger, tmp_path / "scores.jsonl", "parquet", target)
    assert not [t for t in threading.enumerate() if t.name == "export-rows"]
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] == ["ledger.jsonl"]
