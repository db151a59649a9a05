"""A shard tree and the run's edges: `--fresh` sets aside every ledger the run would read (or
refuses, writing nothing), and a run with nothing to do names the ledgers that hold its jobs,
suggests a `status` that works and leaves no empty ledger behind."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.conftest import SIMPLE_MODEL, harness_process, results, write_config
from tests.harness.ledger.test_ledger_process import finish, slow_config, wait_for_records


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` and what it holds."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_fresh_sets_aside_every_shards_ledger_and_counts_none_of_their_jobs_done(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=4)
    out = tmp_path / "out"
    for k in range(2):
        assert run_cli("run", config, "--shard", f"{k}/2")[0] == 0
    assert run_cli("merge", out, "--into", out)[0] == 0
    before = tree_bytes(out)
    code, said, err = run_cli("run", config, "--fresh", "--limit", "1")
    assert code == 0, err
    assert len(results(out / "ledger.jsonl")) == 2  # both variants of the one prompt, run again
    aside = sorted(out.rglob("ledger.2*.jsonl"))
    assert [p.relative_to(out).parent.as_posix() for p in aside] == [
        ".",
        "shards/0-of-2",
        "shards/1-of-2",
    ]
    assert len({p.name for p in aside}) == 1  # one stamp for the whole tree
    for path in aside:  # every line kept, only renamed
        assert path.read_bytes() == before[str(path.with_name("ledger.jsonl").relative_to(out))]
        assert f"{path.with_name('ledger.jsonl')}: it is now {path}" in said or path.parent == out
    assert not list((out / "shards").rglob("ledger.jsonl"))
    code, said, _ = run_cli("status", out)
    assert code == 0
    rows = [line for line in said.splitlines() if "sim@" in line]
    assert len(rows) == 2 and all(line.split("│")[2].strip() == "1" for line in rows)


def test_fresh_of_a_run_that_only_shards_wrote_runs_every_job_again(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=3)
    assert run_cli("run", config, "--shard", "0/2")[0] == 0
    code, _, err = run_cli("run", config, "--fresh")
    assert code == 0, err
    assert len(results(tmp_path / "out" / "ledger.jsonl")) == 6


def test_fresh_of_a_shard_beside_a_merged_ledger_exits_2_and_writes_nothing(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=8)
    out = tmp_path / "out"
    assert run_cli("run", config, "--limit", "4")[0] == 0
    before = tree_bytes(out)
    code, said, err = run_cli("run", config, "--limit", "4", "--shard", "0/2", "--fresh")
    assert code == 2 and said == ""
    assert err == (
        f"error: {out / 'ledger.jsonl'}: the merged ledger holds the jobs of every shard, so "
        "--fresh with --shard cannot set it aside; move it aside first, or start the whole "
        "output anew with --fresh without --shard\n"
    )
    assert tree_bytes(out) == before and not (out / "shards").exists()


def test_fresh_of_a_shard_sets_aside_its_own_ledger(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=4)
    shard = tmp_path / "out" / "shards" / "1-of-2"
    assert run_cli("run", config, "--shard", "1/2")[0] == 0
    old = (shard / "ledger.jsonl").read_bytes()
    code, said, err = run_cli("run", config, "--shard", "1/2", "--fresh")
    assert code == 0 and "the old one is now" in said, err
    [aside] = shard.glob("ledger.2*.jsonl")
    assert aside.read_bytes() == old
    assert {r["key"] for r in results(shard / "ledger.jsonl")} == {r["key"] for r in results(aside)}


@pytest.mark.slow
def test_fresh_while_a_shard_runs_exits_2_and_sets_nothing_aside(tmp_path):
    config = slow_config(tmp_path, concurrency=1)  # about 8 s a shard: time for another process
    out = tmp_path / "out"
    code, _, err = finish(harness_process("run", str(config), "--limit", "1"))
    assert code == 0, err
    shard = out / "shards" / "0-of-2" / "ledger.jsonl"
    live = harness_process("run", str(config), "--shard", "0/2")
    wait_for_records(shard, 1, live)
    before = (out / "ledger.jsonl").read_bytes()
    code, said, err = finish(harness_process("run", str(config), "--fresh"))
    assert live.poll() is None, "the shard's run should still be going"
    assert code == 2 and said == ""
    assert err == (
        f"error: {shard}: in use by another harness run; --fresh sets aside every ledger the "
        "run reads, so none was set aside\n"
    )
    assert finish(live)[0] == 0
    assert (out / "ledger.jsonl").read_bytes() == before
    assert not list(out.rglob("ledger.2*.jsonl"))


def test_a_shard_with_nothing_to_do_names_the_merged_ledger_and_leaves_no_empty_one(
    tmp_path, run_cli
):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=8)
    out = tmp_path / "out"
    assert run_cli("run", config, "--limit", "4")[0] == 0
    code, said, err = run_cli("run", config, "--limit", "4", "--shard", "0/2")
    assert code == 0, err
    lines = said.splitlines()
    assert lines[0].startswith("nothing to do: ") and lines[0].endswith(f"({out / 'ledger.jsonl'})")
    assert not (out / "shards" / "0-of-2" / "ledger.jsonl").exists()
    suggested = shlex.split(lines[1].removeprefix("see them with: "))
    assert suggested[suggested.index("status") + 1 :] == [str(out)]
    code, said, err = run_cli(*suggested[suggested.index("status") :])
    assert code == 0 and "sim@" in said, err


def test_a_shard_rerun_with_nothing_to_rerun_leaves_no_empty_ledger(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=4)
    out = tmp_path / "out"
    assert run_cli("run", config)[0] == 0
    before = tree_bytes(out)
    code, said, err = run_cli("rerun", config, "--shard", "1/2")
    assert code == 0 and "no failed jobs match" in said, err
    assert tree_bytes(out) == before
