"""Every verb that reads results says the same of a shard tree as of its merged ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import SIMPLE_MODEL, ledger_lines, results, write_config
from tests.harness.analysis.score_project import EXISTENCE

FAILING = SIMPLE_MODEL + "[models.options]\nfatal_rate = 0.25\n" + EXISTENCE


@pytest.fixture
def sharded(tmp_path, run_cli) -> tuple[Path, Path, Path]:
    """Three shards of a run with failures, and a copy of them merged elsewhere."""
    config = write_config(tmp_path, FAILING, prompts=30)
    for k in range(3):
        code, _, err = run_cli("run", config, "--shard", f"{k}/3")
        assert code in (0, 1), err
    tree, merged = tmp_path / "out", tmp_path / "merged"
    assert run_cli("merge", tree, "--into", merged)[0] == 0
    return config, tree, merged


def without(text: str, *paths: Path) -> str:
    """Output with the lines that name where it was read from left out."""
    return "\n".join(
        line for line in text.splitlines() if not any(str(path) in line for path in paths)
    )


def test_status_of_a_tree_is_status_of_its_merged_ledger(sharded, run_cli):
    _config, tree, merged = sharded
    for filters in ((), ("--category", "a"), ("--no-probes",)):
        code, from_tree, _ = run_cli("status", tree, *filters)
        assert code == 0
        code, from_merged, _ = run_cli("status", merged, *filters)
        assert code == 0
        assert without(from_tree, tree) == without(from_merged, merged)
    assert "│      0 │" not in from_tree  # failures are there to compare


def test_status_counts_pending_against_a_shard_alone_or_all_of_them(sharded, tmp_path, run_cli):
    _config, tree, _ = sharded
    shard = tree / "shards" / "1-of-3"
    code, out, _ = run_cli("status", shard)
    assert code == 0 and "│       0 │" in out  # the shard is done: nothing pending in it
    lone = tmp_path / "lone"
    assert run_cli("merge", shard, "--into", lone)[0] == 0
    code, out, _ = run_cli("status", tree / "shards" / "1-of-3", tree / "shards" / "2-of-3")
    done = sum(1 for path in (shard, tree / "shards" / "2-of-3")
               for _ in results(path / "ledger.jsonl"))  # fmt: skip
    pending = [int(cell) for line in out.splitlines() if line.startswith("│ sim")
               for cell in [line.split("│")[4].strip().replace(",", "")]]  # fmt: skip
    assert sum(pending) == 60 - done  # two shards of three: the third's jobs are pending


def test_plan_of_a_tree_is_plan_of_its_merged_ledger(sharded, run_cli):
    config, _tree, merged = sharded
    code, from_tree, _ = run_cli("plan", config, "--json")
    assert code == 0
    code, from_merged, _ = run_cli("plan", config, "--json", "--output", merged)
    assert code == 0
    a, b = json.loads(from_tree), json.loads(from_merged)
    assert a["variants"] == b["variants"] and sum(v["pending"] for v in a["variants"]) > 0


def test_score_of_a_tree_is_score_of_its_merged_ledger(sharded, run_cli):
    config, tree, merged = sharded
    code, from_tree, err = run_cli("score", config)
    assert code == 0, err
    code, from_merged, err = run_cli("score", config, "--output", merged)
    assert code == 0, err
    assert without(from_tree, tree) == without(from_merged, merged)

    def labels(folder: Path) -> dict[str, str]:
        return {line["key"]: line["label"] for line in ledger_lines(folder / "scores.jsonl")}

    assert labels(tree) == labels(merged) and len(labels(tree)) > 30


def test_annotation_sheets_of_a_tree_are_those_of_its_merged_ledger(sharded, run_cli):
    _, tree, merged = sharded
    for folder in (tree, merged):
        code, _, err = run_cli("annotate", "export", folder, "--labels", "a,b", "--seed", "5",
                               "--sample", "12")  # fmt: skip
        assert code == 0, err
    keys = [json.loads((f / "annotation.key.json").read_text()) for f in (tree, merged)]
    assert keys[0]["items"] == keys[1]["items"] and len(keys[0]["items"]) == 12
    for rater in ("r1", "r2"):  # alike but for the tag of the row ids, each export's own
        sheets = [
            (f / "annotation" / f"{rater}.csv").read_text().replace(key["tag"], "TAG")
            for f, key in zip((tree, merged), keys, strict=True)
        ]
        assert sheets[0] == sheets[1] and "TAG-" in sheets[0]


def test_rerun_of_a_tree_retries_what_rerun_of_its_merged_ledger_retries(sharded, run_cli):
    config, tree, merged = sharded
    rerun_lines = {}
    for folder, extra in ((tree, ()), (merged, ("--output", merged))):
        code, out, _ = run_cli("rerun", config, *extra)
        assert code in (0, 1)
        rerun_lines[folder] = [line for line in out.splitlines() if line.startswith("Rerunning")]
    assert rerun_lines[tree] == rerun_lines[merged] and rerun_lines[tree]
    retried = [
        {r["key"] for r in results(folder / "ledger.jsonl") if r["run_id"] != first}
        for folder, first in ((tree, None), (merged, ledger_lines(merged / "ledger.jsonl")[0]))
    ]
    assert retried[0]  # the tree's rerun wrote beside the shards, to OUTPUT/ledger.jsonl


def test_a_shards_rerun_reads_its_own_failures_and_writes_its_own_ledger(sharded, run_cli):
    config, tree, _ = sharded
    shard = tree / "shards" / "2-of-3" / "ledger.jsonl"
    failed = {r["key"] for r in results(shard) if r["status"] == "error"}
    before = len(ledger_lines(shard))
    code, out, _ = run_cli("rerun", config, "--shard", "2/3")
    assert code in (0, 1)
    assert f"Rerunning {len(failed):,} failed job(s)." in out
    rerun = ledger_lines(shard)[before:]
    assert rerun[0]["type"] == "run" and rerun[0]["shard"]["index"] == 2
    assert {line["key"] for line in rerun[1:]} == failed
    assert not (tree / "ledger.jsonl").exists()


def test_stats_and_exports_of_a_tree_are_those_of_its_merged_ledger(sharded, run_cli):
    config, tree, merged = sharded
    assert run_cli("score", config)[0] == 0
    assert run_cli("score", config, "--output", merged)[0] == 0
    printed = []
    for folder in (tree, merged):
        code, out, err = run_cli("stats", folder, "--resamples", "50")
        assert code == 0, err
        printed.append(without(out, folder))
    assert printed[0] == printed[1] and "existence" in printed[0]
    for form, name in (("parquet", "answers.parquet"), ("jsonl", "answers.jsonl"),
                       ("pilot-json", "pilot_results.json")):  # fmt: skip
        for folder in (tree, merged):
            code, _, err = run_cli("export", folder, "--format", form)
            assert code == 0, err
        if form == "parquet":
            tables = [pq.read_table(f / name) for f in (tree, merged)]  # rows in the same order
            assert tables[0].equals(tables[1]) and tables[0].num_rows == 60
        elif form == "jsonl":
            assert ledger_lines(tree / name) == ledger_lines(merged / name)
        else:
            runs = [json.loads((f / name).read_text())["runs"] for f in (tree, merged)]
            assert runs[0] == runs[1]


def test_an_output_that_cannot_be_read_is_one_line_not_a_traceback(tmp_path, run_cli, monkeypatch):
    from pathlib import Path

    def glob(self, pattern):
        raise PermissionError(13, "Permission denied", str(self))

    (tmp_path / "out").mkdir()
    monkeypatch.setattr(Path, "glob", glob)
    code, out, err = run_cli("status", tmp_path / "out")
    assert (code, out) == (2, "")
    assert err == f"error: {tmp_path / 'out' / 'shards'}: cannot read: Permission denied\n"
