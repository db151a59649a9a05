"""A filter value no data has (a variant, a category, an id, a scorer, a label, a model) is refused
by every verb alike: exit 2, one line naming the option and listing the values known."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SIMPLE_MODEL, write_config
from tests.harness.analysis.score_project import EXISTENCE, project
from tests.harness.run.test_run import FLAKY_PAIR


@pytest.fixture
def scored(tmp_path: Path, run_cli) -> Path:
    """A config with a rules scorer, its answers run (categories a and b) and scored."""
    config = project(tmp_path, run_cli, EXISTENCE)
    assert run_cli("score", config)[0] == 0
    return config


def test_rerun_refuses_an_unknown_variant_listing_the_known_ones(tmp_path, run_cli):
    config = write_config(tmp_path, FLAKY_PAIR, prompts=10)
    assert run_cli("run", config)[0] == 1
    before = (tmp_path / "out" / "ledger.jsonl").read_bytes()
    code, out, err = run_cli("rerun", config, "--variant", "nope")
    assert code == 2 and out == ""
    assert err.startswith(f"error: --variant: no variant nope in {config} or its ledger (known: ")
    assert "one, one@t0-" in err and err.count("\n") == 1
    assert (tmp_path / "out" / "ledger.jsonl").read_bytes() == before
    code, _, err = run_cli("rerun", config, "--variant", "one")  # a known name still works
    assert code in (0, 1) and err == ""


@pytest.mark.parametrize("categories", ["nope", "a,nope"])
def test_status_refuses_a_category_no_record_has_listing_those_it_has(scored, run_cli, categories):
    out = scored.parent / "out"
    code, printed, err = run_cli("status", out, "--category", categories)
    assert (code, printed) == (2, "")
    assert err == f"error: {out}: --category: no record in nope (have: a, b)\n"


def test_status_refuses_an_id_no_record_has(scored, run_cli):
    out = scored.parent / "out"
    ids = scored.parent / "ids.txt"
    ids.write_text("p000\nzzz\n")
    code, _, err = run_cli("status", out, "--ids", ids)
    assert code == 2
    assert err == f"error: {out}: --ids {ids}: 1 id(s) with no record here: zzz\n"


def test_run_refuses_an_unknown_model_listing_the_known_ones(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL)
    code, _, err = run_cli("run", config, "--models", "gpt-9")
    assert code == 2
    assert err == f"error: --models: no model named gpt-9 in {config} (models: sim)\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("stats", "{out}", "--scorer", "nope"), "no current scores from nope (scorers: "),
        (("stats", "{out}", "--label", "nope"), "no current score has the label 'nope' (labels:"),
        (("report", "{out}", "--variant", "nope"), "--variant: no variant nope in "),
        (("report", "{out}", "--scorer", "nope"), "no current scores from nope (scorers: "),
        (("score", "{config}", "--scorers", "nope"), "no scorer named nope in"),
        (
            ("annotate", "export", "{out}", "--labels", "y,n", "--scorer", "nope"),
            "--scorer: no scorer named nope (known: existence)",
        ),
    ],
)
def test_every_verb_refuses_an_unknown_filter_value(scored, run_cli, args, expected):
    out = scored.parent / "out"
    words = [word.format(out=out, config=scored) for word in args]
    before = sorted(p.name for p in out.iterdir())
    code, _, err = run_cli(*words)
    assert code == 2 and expected in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == before
