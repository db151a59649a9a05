"""The job scripts of configs/cluster/, run as the cluster would run them (SLURM's variables set by
hand; Ray on a local cluster of this machine)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from tests.conftest import REPO, SIMPLE_MODEL, results, write_config

CLUSTER = REPO / "configs" / "cluster"


def slurm_task(script: str, *args: object, **variables: str) -> subprocess.CompletedProcess:
    """One array task (or the merge job) as SLURM starts it: the script under bash, its
    `#SBATCH` lines comments, SLURM's variables in the environment."""
    return subprocess.run(
        ["bash", str(CLUSTER / script), *map(str, args)],
        env={**os.environ, "PYTHON": sys.executable, **variables},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("first", [0, 1])
def test_a_slurm_array_runs_every_shard_and_the_merge_joins_them(tmp_path, first):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=12)
    for task in range(first, first + 3):
        done = slurm_task("slurm-array.sh", config, "--limit", "10", SLURM_ARRAY_TASK_ID=str(task),
                          SLURM_ARRAY_TASK_MIN=str(first), SLURM_ARRAY_TASK_COUNT="3")  # fmt: skip
        assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["0-of-3", "1-of-3", "2-of-3"]
    merged = slurm_task("slurm-merge.sh", out)
    assert merged.returncode == 0, merged.stderr
    ok = Counter(r["key"] for r in results(out / "ledger.jsonl") if r["status"] == "ok")
    assert len(ok) == 20 and set(ok.values()) == {1}


def test_a_slurm_task_outside_the_shards_exits_2_naming_the_0_based_range(tmp_path):
    config = write_config(tmp_path, SIMPLE_MODEL)
    done = slurm_task("slurm-array.sh", config, SLURM_ARRAY_TASK_ID="4", SLURM_ARRAY_TASK_COUNT="4")
    assert done.returncode == 2
    assert "--shard 4/4: K must be from 0 to 3 (0-based" in done.stderr


@pytest.mark.slow
def test_ray_runs_one_task_per_shard_then_merges(tmp_path):
    pytest.importorskip("ray")
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=12)
    script = [sys.executable, str(CLUSTER / "ray_shards.py"), str(config), "--shards", "3"]
    done = subprocess.run(
        [*script, "--", "--limit", "8"],
        env={**os.environ, "RAY_ADDRESS": "local", "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(f"shard {k}/3: exit 0" in done.stdout for k in range(3))
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["0-of-3", "1-of-3", "2-of-3"]
    ok = Counter(r["key"] for r in results(out / "ledger.jsonl") if r["status"] == "ok")
    assert len(ok) == 16 and set(ok.values()) == {1}
