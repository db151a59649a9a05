"""`status` on ledgers of every shape: plans of several runs, malformed lines, files that are not
ledgers."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from tests.conftest import write_prompts


def run_line(plan: object) -> dict:
    return {"type": "run", "run_id": "r", "plan": plan}


def result(variant: str, prompt: str, status: str = "ok") -> dict:
    return {
        "key": f"{variant}|{prompt}|0",
        "status": status,
        "run_id": "r",
        "variant": variant,
        "prompt_id": prompt,
        "sample": 0,
        "timestamp": "2026-01-01T00:00:01.000Z",
        "elapsed_seconds": 0.5,
        "retry_count": 0,
        "tokens": {"input": 3, "output": 4, "total": 7},
    }


def write_ledger(path: Path, lines: list[object]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def rows(out: str) -> dict[str, list[str]]:
    """The status table's cells after the variant, by variant."""
    table = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if cells and "@" in cells[0]:
            table[cells[0]] = cells[1:]
    return table


def test_pending_comes_from_the_latest_plan_that_names_each_variant(tmp_path, run_cli):
    ledger = write_ledger(
        tmp_path / "ledger.jsonl",
        [
            run_line({"a@t0": 3, "b@t0": 3}),
            result("a@t0", "p0"),
            result("b@t0", "p0"),
            run_line({"a@t0": 3}),  # a `--models a` run
            result("a@t0", "p1"),
            result("a@t0", "p2"),
        ],
    )
    code, out, _ = run_cli("status", ledger)
    assert code == 0
    table = rows(out)
    assert table["a@t0"][:3] == ["3", "0", "0"]
    assert table["b@t0"][:3] == ["1", "0", "2"]


def test_a_shard_whose_index_is_not_an_integer_counts_pending_against_all_jobs(tmp_path, run_cli):
    """A run line's shard names itself by index and count; one that cannot (an index that is no
    integer) is read as no one shard, its pending jobs counted against all jobs, not a
    traceback."""
    shard = {"index": [0], "count": 2, "plan_unsharded": {"a@t0": 4}}
    lines = [{**run_line({"a@t0": 2}), "shard": shard}, result("a@t0", "p0")]
    code, out, _ = run_cli("status", write_ledger(tmp_path / "ledger.jsonl", lines))
    assert code == 0
    assert rows(out)["a@t0"][:3] == ["1", "0", "3"]
    lines[0]["shard"] = {**shard, "index": 0}  # named: its own plan
    code, out, _ = run_cli("status", write_ledger(tmp_path / "ledger.jsonl", lines))
    assert rows(out)["a@t0"][:3] == ["1", "0", "1"]


MALFORMED = [
    {"key": None, "status": "ok"},
    {"key": ["a@t0", "p9"], "status": "ok", "variant": "a@t0"},
    {"key": "a@t0|p8|0", "status": "ok"},  # no variant, no timestamp
    {**result("a@t0", "p7"), "variant": None},
    {**result("a@t0", "p6"), "status": 1},
    {**result("a@t0", "p5"), "timestamp": "yesterday"},
    {**result("a@t0", "p4"), "timestamp": 5},
    {**result("a@t0", "p3"), "tokens": [1, 2]},
    {**result("a@t0", "p3"), "tokens": {"input": "3"}},
    {**result("a@t0", "p3"), "elapsed_seconds": "0.5"},
    {**result("a@t0", "p3"), "retry_count": None},
    {**result("a@t0", "p3"), "run_id": 7},
    run_line([1, 2]),
    run_line({"a@t0": "3"}),
    [1, 2],
    "a string",
    42,
    {"type": "note"},
]


def test_malformed_lines_of_any_shape_are_skipped_counted_and_reported(tmp_path, run_cli):
    lines = [run_line({"a@t0": 2}), result("a@t0", "p0"), *MALFORMED, result("a@t0", "p1")]
    ledger = write_ledger(tmp_path / "ledger.jsonl", lines)
    code, out, _ = run_cli("status", ledger)
    assert code == 0
    assert rows(out)["a@t0"][:3] == ["2", "0", "0"]
    assert f"skipped {len(MALFORMED)} unreadable line(s)" in out


@pytest.mark.parametrize("kind", ["readme", "prompts", "pretty prompts", "empty"])
def test_status_of_a_file_that_is_not_a_ledger_exits_2_with_one_line(tmp_path, run_cli, kind):
    path = tmp_path / "not-a-ledger"
    if kind == "readme":
        path.write_text("# harness\n\nAn evaluation harness.\n")
    elif kind == "prompts":
        write_prompts(path, 3)
    elif kind == "pretty prompts":
        path.write_text(json.dumps(json.loads(write_prompts(path, 3).read_text()), indent=2))
    else:
        path.write_text("")
    code, out, err = run_cli("status", path)
    assert code == 2 and out == ""
    assert err == f"error: {path}: not a ledger (no run line or result record in it)\n"


PRICED_AND_NOT = """
[[models]]
name = "priced"
provider = "simulated"
[models.price]
input = 1.0
output = 2.0

[[models]]
name = "unpriced"
provider = "simulated"
"""


@pytest.mark.parametrize("records", [False, True])
def test_an_unpriced_models_cost_is_unknown_with_records_or_none(tmp_path, run_cli, records):
    from harness.run.summary import summarize
    from tests.conftest import write_config

    config = write_config(tmp_path, PRICED_AND_NOT, prompts=3)
    assert run_cli("run", config)[0] == 0
    ledger = tmp_path / "out" / "ledger.jsonl"
    if not records:  # the run line alone: a run stopped before its first answer
        ledger.write_bytes(ledger.read_bytes().splitlines(keepends=True)[0])
    costs = {
        s.variant.split("@")[0]: (s.cost_unknown, s.cost_usd) for s in summarize(ledger).variants
    }
    assert costs["unpriced"] == (True, 0.0)
    assert costs["priced"][0] is False and (costs["priced"][1] > 0) is records
    code, out, _ = run_cli("status", ledger)
    assert code == 0
    (row,) = [line for line in out.splitlines() if line.startswith("│ unpriced@")]
    assert row.rstrip(" │").endswith("unknown") and "$0.0000" not in row
    assert "total cost: $" in out and "and unknown for unpriced@" in out
