"""The house's floors (docs/architecture.md), checked by import-linter from pyproject.toml's
contracts: an import goes down a floor or sideways, never up; the foundations import no floor;
no two modules of a package import each other in a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO


def test_imports_keep_the_floors_and_make_no_circles():
    # In a process of its own: import-linter reconfigures logging, which would silence the
    # harness's loggers for every test after this one.
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_floors_list_no_exceptions():
    """No import up a floor is excused: the analysis layer runs a judge through the interface it
    declares (`harness.analysis.judge.JudgeRunner`) and takes the harness version from a
    foundation, never from the run path."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    assert {c["name"]: c.get("ignore_imports", []) for c in contracts} == {
        c["name"]: [] for c in contracts
    }


def test_the_floors_hold_for_imports_only_the_type_checker_sees():
    """An import under `if TYPE_CHECKING:` never runs, but a type checker and a reader follow it:
    it may no more run up a floor or close a circle than one that runs."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert config["tool"]["importlinter"].get("exclude_type_checking_imports", False) is False


# Classes of one name in two modules, from before #21; not to grow.
SHARED_CLASS_NAMES = {"Tally", "Exported"}


def test_no_new_public_class_name_is_defined_in_two_modules():
    """A name says what is inside: a protocol and its implementation, say, are named apart
    (`analysis.judge.JudgeRun`, `run.judge_runs.PreparedJudgeRun`)."""
    modules: dict[str, list[str]] = {}
    for path in sorted((REPO / "harness").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                modules.setdefault(node.name, []).append(str(path.relative_to(REPO)))
    assert {name for name, found in modules.items() if len(found) > 1} == SHARED_CLASS_NAMES


def test_the_command_line_starts_without_the_analysis_libraries():
    # Every verb starts by importing the command line: `run`, `status` and `plan` must not pay for
    # DuckDB, scipy, statsmodels, pyarrow or matplotlib (about a second), which load when a verb
    # that uses them runs.
    heavy = ("duckdb", "scipy", "statsmodels", "pyarrow", "matplotlib")
    code = f"import sys, harness.cli.main; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
