"""`harness export`: one row per job (latest wins) joined with current scores, as Parquet, CSV and
JSONL with the documented columns and types; DuckDB reads the ledger and the Parquet file."""

from __future__ import annotations

import json
import math

import duckdb
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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


COLUMNS = [
    ("key", pa.string()),
    ("status", pa.string()),
    ("variant", pa.string()),
    ("provider", pa.string()),
    ("model", pa.string()),
    ("prompt_id", pa.string()),
    ("sample", pa.int64()),
    ("prompt_category", pa.string()),
    ("is_synthetic_probe", pa.bool_()),
    ("prompt_hash", pa.string()),
    ("run_id", pa.string()),
    ("schema", pa.int64()),
    ("full_response", pa.string()),
    ("finish_reason", pa.string()),
    ("finish_detail", pa.string()),
    ("tokens.input", pa.int64()),
    ("tokens.output", pa.int64()),
    ("tokens.total", pa.int64()),
    ("tokens.cache_read", pa.int64()),
    ("cost_usd", pa.float64()),
    ("sampling.temperature", pa.float64()),
    ("sampling.top_p", pa.float64()),
    ("sampling.max_tokens", pa.int64()),
    ("sampling.seed", pa.int64()),
    ("sampling.stop", pa.list_(pa.string())),
    ("timestamp", pa.timestamp("ms", tz="UTC")),
    ("elapsed_seconds", pa.float64()),
    ("retry_count", pa.int64()),
    ("error.type", pa.string()),
    ("error.message", pa.string()),
    ("error.retryable", pa.bool_()),
    ("error.status", pa.int64()),
    ("error.retry_after", pa.string()),  # never given a value: a null column
    ("attempt_errors", None),  # list<struct>: checked apart
    ("metadata.subject", pa.string()),
    ("metadata.year", pa.string()),  # 2021 and "unknown": the values' JSON text
    ("token_logprobs", None),
    ("uncertainty.first_token_margin", pa.float64()),
    ("uncertainty.mean_topk_entropy", pa.float64()),
    ("uncertainty.sequence_logprob", pa.float64()),
    ("score.claims", pa.string()),
    ("score.judge", pa.string()),
    ("score.judge.value", pa.float64()),
]


def test_parquet_has_one_typed_row_per_job_with_its_current_scores(project, run_cli):
    output, _ = project
    code, out, err = run_cli("export", output, "--format", "parquet")
    assert code == 0, err
    target = output / "answers.parquet"
    assert f"Exported 4 job(s) to {target}" in out
    assert f"pandas.read_parquet('{target}')" in out
    table = pq.read_table(target)
    assert table.schema.names == [name for name, _ in COLUMNS]
    for name, kind in COLUMNS:
        if kind is not None:
            assert table.schema.field(name).type == kind, name
    attempts = table.schema.field("attempt_errors").type
    assert pa.types.is_list(attempts) and attempts.value_type.names == [
        "type",
        "message",
        "retryable",
        "status",
        "retry_after",
    ]
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
    assert lines[1]["token_logprobs"][1]["top_logprobs"] == [-0.7, -0.9]
    assert lines[0]["metadata.year"] == "2021" and lines[1]["metadata.year"] == '"unknown"'
    assert lines[0]["uncertainty.first_token_margin"] is None
    assert lines[2]["attempt_errors"][0]["type"] == "ServerError"
    assert lines[0]["timestamp"] == "2026-11-24T00:00:01+00:00"


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


def test_a_record_that_does_not_fit_its_column_exits_2_and_writes_nothing(tmp_path, run_cli):
    records = [answer("a@t0", f"p{i}") for i in range(3)]
    records[2]["elapsed_seconds"] = "slow"
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    target = tmp_path / "answers.parquet"
    target.write_bytes(b"an older export")
    code, _, err = run_cli("export", tmp_path, "--format", "parquet")
    assert code == 2
    assert err.startswith(f"error: {ledger}: record 'a@t0|p2|0': elapsed_seconds: 'slow'")
    assert len(err.splitlines()) == 1
    assert target.read_bytes() == b"an older export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.parquet", "ledger.jsonl"]


def test_export_to_a_path_in_a_new_folder_and_bad_targets(project, run_cli):
    output, _ = project
    target = output.parent / "exports" / "run1.csv"
    assert run_cli("export", output, "--format", "csv", "--to", target)[0] == 0
    assert len(pd.read_csv(target)) == 4
    code, _, err = run_cli("export", output, "--format", "csv", "--to", output)
    assert (code, err) == (2, f"error: {output}: is a directory; name a file to write\n")
    code, _, err = run_cli("export", output.parent / "nothing", "--format", "csv")
    assert code == 2 and "no such ledger" in err
