"""The README's notebook snippets (pandas, polars, DuckDB) run as written on the demo's results."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO


def notebook_snippets() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Exports and notebooks", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_has_a_snippet_for_pandas_polars_and_duckdb():
    snippets = notebook_snippets()
    assert [s.split("\n", 1)[0] for s in snippets] == [
        "import pandas as pd",
        "import polars as pl",
        "import duckdb",
    ]


@pytest.mark.slow
def test_the_readme_snippets_run_on_the_demo_results(tmp_path, monkeypatch, run_cli, capsys):
    monkeypatch.chdir(tmp_path)
    config = REPO / "configs" / "demo.toml"
    assert run_cli("run", config, "--output", "results/demo", "--limit", "5")[0] == 1  # a 400
    assert run_cli("rerun", config, "--output", "results/demo", "--limit", "5")[0] == 0
    assert run_cli("export", "results/demo", "--format", "parquet")[0] == 0
    for snippet in notebook_snippets():
        exec(compile(snippet, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "sim-claude@t0" in printed and "sim-local@t0" in printed
    assert "uncertainty" in printed or "margin" in printed
