"""The house's floors (docs/architecture.md), checked by import-linter from pyproject.toml's
contracts: an import goes down a floor or sideways, never up; the foundations import no floor;
no two modules of a package import each other in a circle."""

from __future__ import annotations

import pytest
from importlinter.cli import lint_imports

from tests.conftest import REPO


def test_imports_keep_the_floors_and_make_no_circles(monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(REPO)
    code = lint_imports(no_cache=True)
    assert code == 0, capsys.readouterr().out
