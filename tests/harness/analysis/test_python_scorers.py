"""Python scorers: a function of your own, imported from the config's folder, labels answers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import SIMPLE_MODEL, write_config
from tests.harness.analysis.score_project import EXISTENCE, score_lines

GRADER = '''
def grade(answer, prompt):
    """A label, a value and a why, from the answer and its prompt's fields."""
    claims = "exists" in answer["full_response"]
    right = claims == (prompt["source"] != "fake")
    why = f"{prompt['id']} ({prompt['category']}): claims={claims}"
    return {"label": "right" if right else "wrong", "value": float(right), "explanation": why}
'''
SCORER = '\n[[scorers]]\nname = "mine"\ntype = "python"\nfunction = "graders:grade"\n'


def _project(tmp_path: Path, run_cli, source: str = GRADER) -> Path:
    config = write_config(tmp_path, SIMPLE_MODEL + SCORER)
    (tmp_path / "graders.py").write_text(source)
    code, _, err = run_cli("run", config)
    assert code == 0, err
    return config


def _answers(tmp_path: Path) -> dict[str, dict]:
    lines = (tmp_path / "out" / "ledger.jsonl").read_text().splitlines()
    return {line["key"]: line for line in map(json.loads, lines) if "key" in line}


def test_a_function_labels_every_answer_from_the_answer_and_its_prompt(tmp_path, run_cli):
    config = _project(tmp_path, run_cli)
    code, out, err = run_cli("score", config)
    assert (code, err) == (0, "")
    answers, lines = _answers(tmp_path), score_lines(tmp_path / "out")
    assert {line["answer_key"] for line in lines} == set(answers) and len(lines) == 12
    for line in lines:
        answer = answers[line["answer_key"]]
        right = "exists" in answer["full_response"]  # the test prompts' source is "test"
        assert (line["label"], line["value"]) == (("right", 1.0) if right else ("wrong", 0.0))
        assert line["detail"].startswith(f"{answer['prompt_id']} (")
        assert line["scorer"] == "mine" and line["input"]
    assert "mine: labels per variant and category" in out


def test_an_edited_function_rescores_every_answer_an_edited_prompt_only_its_own(tmp_path, run_cli):
    config = _project(tmp_path, run_cli)
    assert run_cli("score", config)[0] == 0
    assert run_cli("score", config)[0] == 0
    output = tmp_path / "out"
    assert len(score_lines(output)) == 12  # nothing changed: nothing appended

    prompts = json.loads((tmp_path / "prompts.json").read_text())
    prompts["prompts"][2]["source"] = "fake"
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    assert run_cli("score", config)[0] == 0
    added = score_lines(output)[12:]
    assert Counter(line["answer_key"].split("|")[1] for line in added) == {"p002": 2}

    (tmp_path / "graders.py").write_text(GRADER.replace('"right"', '"good"'))
    assert run_cli("score", config)[0] == 0
    added = score_lines(output)[14:]
    assert len(added) == 12 and {line["label"] for line in added} <= {"good", "wrong"}


@pytest.mark.parametrize(
    ("returned", "shown"),
    [
        ("None", "None"),
        ('""', "''"),
        ('("yes",)', "('yes',)"),
        ('{"label": 3}', "{'label': 3}"),
        ('("yes", "high")', "('yes', 'high')"),
        ('{"label": "yes", "score": 1}', "{'label': 'yes', 'score': 1}"),
        ('("yes", float("nan"))', "('yes', nan)"),
        ('("yes", True)', "('yes', True)"),
    ],
)
def test_what_no_label_is_stops_score_with_one_line_naming_scorer_answer_and_value(
    tmp_path, run_cli, returned, shown
):
    config = _project(tmp_path, run_cli, f"def grade(answer, prompt):\n    return {returned}\n")
    code, _, err = run_cli("score", config)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: scorer mine (graders:grade) on 'sim@t0-")
    assert f": returned {shown}: return a label" in err


def test_a_function_that_raises_stops_score_with_one_line_no_traceback(tmp_path, run_cli):
    source = "def grade(answer, prompt):\n    raise KeyError('ground_truth')\n"
    config = _project(tmp_path, run_cli, source)
    code, _, err = run_cli("score", config)
    assert code == 2 and len(err.splitlines()) == 1
    assert "scorer mine (graders:grade) on 'sim@t0-" in err
    assert err.endswith(": raised KeyError: 'ground_truth'\n")


@pytest.mark.parametrize(
    ("source", "function", "expected"),
    [
        (GRADER, "nowhere:grade", "cannot import nowhere: ModuleNotFoundError: No module named"),
        (GRADER, "graders:missing", "graders ("),
        ("grade = 3\n", "graders:grade", "graders:grade is not a function: int"),
        ("def grade(:\n", "graders:grade", "cannot import graders: SyntaxError: "),
        (GRADER, "graders.grade", 'expected "module:callable", such as "my_scorers:grade"'),
    ],
)
def test_a_function_that_cannot_be_imported_is_a_config_error_before_scoring(
    tmp_path, run_cli, source, function, expected
):
    config = _project(tmp_path, run_cli, source)
    config.write_text(config.read_text().replace("graders:grade", function))
    code, _, err = run_cli("score", config)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {config}: scorers[0].function: {expected}"), err
    assert not (tmp_path / "out" / "scores.jsonl").exists()


def test_a_function_that_exits_is_one_line_and_a_module_named_like_pythons_is_refused(
    tmp_path, run_cli
):
    config = _project(tmp_path, run_cli, "def grade(answer, prompt):\n    raise SystemExit(0)\n")
    code, _, err = run_cli("score", config)
    assert code == 2 and err.endswith(": raised SystemExit: 0\n") and len(err.splitlines()) == 1
    (tmp_path / "typing.py").write_text(GRADER)
    config.write_text(config.read_text().replace("graders:grade", "typing:grade"))
    code, _, err = run_cli("score", config)
    assert code == 2 and len(err.splitlines()) == 1
    assert "scorers[0].function: typing is a module Python or the harness has already" in err
    assert score_lines(tmp_path / "out") == []


def test_a_target_scorer_reads_a_python_scorers_labels_in_the_same_pass(tmp_path, run_cli):
    reads = (
        '\n[[scorers]]\nname = "checked"\ntype = "target"\nfield = "source"\nof = "mine"\n'
        '[scorers.correct_for]\nright = "test"\n'
    )
    config = _project(tmp_path, run_cli)
    config.write_text(config.read_text() + reads)
    code, _, err = run_cli("score", config)
    assert (code, err) == (0, "")
    lines = score_lines(tmp_path / "out")
    assert Counter(line["scorer"] for line in lines) == {"mine": 12, "checked": 12}
    mine = {line["answer_key"]: line["label"] for line in lines if line["scorer"] == "mine"}
    for line in lines:
        if line["scorer"] == "checked":
            right = mine[line["answer_key"]] == "right"
            assert line["label"] == ("correct" if right else "wrong")


def test_a_function_that_raises_leaves_no_target_behind_the_rule_labels_it_reads(tmp_path, run_cli):
    truth = (
        '\n[[scorers]]\nname = "truth"\ntype = "target"\nfield = "source"\nof = "existence"\n'
        '[scorers.correct_for]\nclaims = "test"\n'
    )
    config = _project(tmp_path, run_cli)
    config.write_text(config.read_text() + EXISTENCE + truth)
    assert run_cli("score", config)[0] == 0
    # the rules now label every answer otherwise, and the function raises halfway
    text = config.read_text().replace('keywords = ["it exists"]', 'keywords = ["it exists", "No"]')
    config.write_text(text)
    (tmp_path / "graders.py").write_text(
        GRADER.replace(
            '    claims = "exists"',
            '    if prompt["id"] == "p003":\n        raise ValueError("no")\n    claims = "exists"',
        )
    )
    code, _, err = run_cli("score", config)
    assert code == 2 and "raised ValueError: no" in err
    latest = {line["key"]: line for line in score_lines(tmp_path / "out")}
    existence = {
        k.split("|existence")[0]: v["label"] for k, v in latest.items() if k.endswith("|existence")
    }
    truths = {k.split("|truth")[0]: v["label"] for k, v in latest.items() if k.endswith("|truth")}
    assert set(truths) == set(existence) and len(truths) == 12
    for key, label in truths.items():  # every one made from the label it reads now
        assert label == (
            "correct"
            if existence[key] == "claims"
            else existence[key]
            if existence[key] != "denies"
            else "incorrect"
        )


def test_only_pythons_installed_packages_and_the_harness_count_as_taken_module_names():
    from harness.analysis.functions import _pythons

    assert _pythons("json") and _pythons("sys") and _pythons("msgspec") and _pythons("harness")
    assert not _pythons("benchmarks")  # the project's own folder, beside the harness: a user's
    assert not _pythons("no_such_module_anywhere")
