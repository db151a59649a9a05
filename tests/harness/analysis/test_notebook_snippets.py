"""The notebook snippets of docs/exports.md (pandas, polars, DuckDB) run as written on the demo's
results."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGE = REPO / "docs" / "exports.md"


def notebook_snippets() -> list[str]:
    section = PAGE.read_text().split("\n## Notebooks\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_docs_have_a_snippet_for_pandas_polars_and_duckdb() -> None:
    snippets = notebook_snippets()
    assert [s.split("\n", 1)[0] for s in snippets] == [
        "import pandas as pd",
        "import polars as pl",
        "import duckdb",
    ]


@pytest.mark.slow
def test_the_notebook_snippets_run_on_the_demo_results(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[..., tuple[int, str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    config = REPO / "configs" / "demo.toml"
    assert run_cli("run", config, "--output", "results/demo", "--limit", "5")[0] == 1  # a 400
    assert run_cli("rerun", config, "--output", "results/demo", "--limit", "5")[0] == 0
    assert run_cli("export", "results/demo", "--format", "parquet")[0] == 0
    for snippet in notebook_snippets():
        exec(compile(snippet, str(PAGE), "exec"), {})
    printed = capsys.readouterr().out
    assert "sim-claude@t0" in printed and "sim-local@t0" in printed
    assert "uncertainty" in printed or "margin" in printed
