"""Target scorers: an answer, or another scorer's label, against a field of its prompt."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from harness.analysis.targets import TargetMatcher
from harness.config.scorers import TargetScorer
from tests.conftest import SIMPLE_MODEL
from tests.harness.analysis.score_project import EXISTENCE, score_lines


@pytest.mark.parametrize(
    ("scorer", "answer", "target", "label"),
    [
        (TargetScorer("t"), " Paris. ", "paris", "correct"),
        (TargetScorer("t"), "Paris is the capital", "paris", "incorrect"),
        (TargetScorer("t"), "New   York!", ["Paris", "new york"], "correct"),
        (TargetScorer("t", match="includes"), "The capital is Paris.", "paris", "correct"),
        (
            TargetScorer("t", match="includes", case_sensitive=True),
            "The capital is Paris.",
            "paris",
            "incorrect",
        ),
        (
            TargetScorer("t", match="regex", pattern=r"(^|\s){target}(\s|$)"),
            "use C++ daily",
            "C++",
            "correct",
        ),
        (TargetScorer("t", match="regex", pattern="^{target}$"), "axb", "a.b", "incorrect"),
        (TargetScorer("t", match="numeric"), "The total is 1,234.5 dollars", 1234.5, "correct"),
        (TargetScorer("t", match="numeric"), "about 3, or 4", 3, "incorrect"),
        (TargetScorer("t", match="numeric", tolerance=0.5), "roughly 3.4", "3", "correct"),
        (TargetScorer("t", match="numeric"), "no idea", 3, "incorrect"),
        (TargetScorer("t", match="numeric"), "it falls to \u22127 degrees", -7, "correct"),
        (
            TargetScorer("t", match="numeric"),
            "about 1\u202f234\u00a0567 people",
            1234567,
            "correct",
        ),
        (TargetScorer("t", match="numeric"), "pick 1 234", 234, "correct"),
        (TargetScorer("t", match="choice"), "Because... ANSWER: (b)", "B", "correct"),
        (TargetScorer("t", match="choice"), "ANSWER: A\nno, ANSWER: C", "C", "correct"),
        (TargetScorer("t", match="choice"), " B. ", "B", "correct"),
        (TargetScorer("t", match="choice"), "I think B or C", "B", "incorrect"),
    ],
)
def test_an_answer_meets_its_target_as_the_match_says(scorer, answer, target, label):
    matcher = TargetMatcher(scorer)
    values = matcher.targets({"target": target})
    assert values is not None
    verdict = matcher.verdict(answer, values)
    assert (verdict.label, verdict.value) == (label, 1.0 if label == "correct" else 0.0)


def test_another_scorers_label_is_right_for_the_values_it_maps_to_and_apart_otherwise():
    scorer = TargetScorer(
        "truth",
        field="ground_truth",
        of="existence",
        correct_for=(("claims", ("exists",)), ("denies", ("fake", "withdrawn"))),
    )
    matcher = TargetMatcher(scorer)
    found = {
        (label, truth): matcher.verdict("", (truth,), label)
        for label in ("claims", "denies", "other")
        for truth in ("exists", "fake")
    }
    assert {key: (v.label, v.value) for key, v in found.items()} == {
        ("claims", "exists"): ("correct", 1.0),
        ("claims", "fake"): ("incorrect", 0.0),
        ("denies", "exists"): ("incorrect", 0.0),
        ("denies", "fake"): ("correct", 1.0),
        ("other", "exists"): ("other", None),
        ("other", "fake"): ("other", None),
    }


TRUTH = """
[[scorers]]
name = "truth"
type = "target"
field = "ground_truth"
of = "existence"
[scorers.correct_for]
claims = "exists"
denies = "fake"
"""


def _project(tmp_path: Path, run_cli, scorers: str, truths: dict[str, str]) -> Path:
    """Six prompts with a `ground_truth` (`truths` by id, else "exists", "fake" for probes),
    answered by the simulated model at two temperatures."""
    items = [
        {
            "id": f"p{i:03d}",
            "prompt": f"Does thing number {i} exist?",
            "category": "ab"[i % 2],
            "is_synthetic_probe": i % 3 == 0,
            "ground_truth": truths.get(f"p{i:03d}", "fake" if i % 3 == 0 else "exists"),
        }
        for i in range(6)
    ]
    (tmp_path / "prompts.json").write_text(json.dumps({"prompts": items}))
    config = tmp_path / "run.toml"
    head = f'prompts = "prompts.json"\noutput = "{tmp_path / "out"}"\nseed = 7\n'
    config.write_text(head + SIMPLE_MODEL + scorers)
    code, _, err = run_cli("run", config)
    assert code == 0, err
    return config


def _latest(output: Path, scorer: str) -> dict[str, dict]:
    return {line["answer_key"]: line for line in score_lines(output) if line["scorer"] == scorer}


def test_a_label_mapping_scores_every_answer_and_a_target_edited_rescores_only_its_answers(
    tmp_path, run_cli
):
    config = _project(tmp_path, run_cli, EXISTENCE + TRUTH, {})
    code, out, err = run_cli("score", config, "--scorers", "truth")  # existence comes along
    assert (code, err) == (0, "")
    output = tmp_path / "out"
    existence, truth = _latest(output, "existence"), _latest(output, "truth")
    assert len(truth) == 12 and set(truth) == set(existence)
    right = {"claims": "exists", "denies": "fake"}
    for key, line in truth.items():
        label, probe = existence[key]["label"], key.split("|")[1] in ("p000", "p003")
        expected = "fake" if probe else "exists"
        if label in right:
            assert line["label"] == ("correct" if right[label] == expected else "incorrect")
            assert line["value"] == (1.0 if line["label"] == "correct" else 0.0)
        else:
            assert (line["label"], line["value"]) == (label, None)
    assert "truth: labels per variant and category" in out

    assert run_cli("score", config)[0] == 0  # nothing changed: nothing appended
    before = len(score_lines(output))
    assert before == 24

    _project_edit = json.loads((tmp_path / "prompts.json").read_text())
    _project_edit["prompts"][1]["ground_truth"] = "fake"
    (tmp_path / "prompts.json").write_text(json.dumps(_project_edit))
    assert run_cli("score", config)[0] == 0
    added = score_lines(output)[before:]
    assert Counter(line["scorer"] for line in added) == {"truth": 2}
    assert {line["answer_key"].split("|")[1] for line in added} == {"p001"}

    code, out, err = run_cli("stats", output, "--scorer", "truth")
    assert (code, err) == (0, "")
    assert "truth" in out and "correct" in out


def test_an_inspect_style_target_is_met_by_the_answers_that_include_it(tmp_path, run_cli):
    rows = [
        {"id": f"q{i}", "input": f"Is item {i} real?", "target": ["exists", "cannot find"][i % 2]}
        for i in range(4)
    ]
    (tmp_path / "set.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = tmp_path / "run.toml"
    body = '[[scorers]]\nname = "hit"\ntype = "target"\nmatch = "includes"\n'
    config.write_text(
        f'prompts = "set.jsonl"\noutput = "{tmp_path / "out"}"\nseed = 7\n' + SIMPLE_MODEL + body
    )
    assert run_cli("run", config)[0] == 0
    code, _, err = run_cli("score", config)
    assert (code, err) == (0, "")
    answers = {
        line["key"]: line["full_response"]
        for line in map(json.loads, (tmp_path / "out" / "ledger.jsonl").read_text().splitlines())
        if "key" in line
    }
    hits = _latest(tmp_path / "out", "hit")
    assert set(hits) == set(answers)
    for key, line in hits.items():
        target = rows[int(key.split("|")[1][1:])]["target"]
        met = target.casefold() in answers[key].casefold()
        assert (line["label"], line["value"]) == (("correct", 1.0) if met else ("incorrect", 0.0))
    # through stats, the export and the report, the same labels
    output = tmp_path / "out"
    assert run_cli("stats", output, "--json", tmp_path / "s.json", "--resamples", "0")[0] == 0
    rates = json.loads((tmp_path / "s.json").read_text())["rates"]
    overall = {r["variant"]: r for r in rates if r["scorer"] == "hit" and r["label"] == "correct"}
    assert run_cli("export", output, "--format", "jsonl", "--to", tmp_path / "a.jsonl")[0] == 0
    exported = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    for variant, rate in overall.items():
        mine = [row for row in exported if row["variant"] == variant]
        correct = sum(row["score.hit"] == "correct" for row in mine)
        assert (rate["count"], rate["n"]) == (correct, len(mine))
        assert {row["score.hit.value"] for row in mine} <= {0.0, 1.0}
    assert run_cli("report", output, "--resamples", "0")[0] == 0
    page = (output / "report.html").read_text()
    assert '"scorer":"hit"' in page and '"label":"correct"' in page


@pytest.mark.parametrize(
    ("scorer", "expected"),
    [
        ('match = "regex"\npattern = "exists"', "scorers[1].pattern: needs {target}"),
        ("tolerance = 0.1", 'scorers[1].tolerance: only for match = "numeric"'),
        ('match = "fuzzy"', "scorers[1].match: expected one of 'exact', 'includes'"),
        ('of = "nobody"\ncorrect_for = {a = "x"}', 'scorers[1].of: no scorer named "nobody"'),
        ('of = "t"\ncorrect_for = {a = "x"}', "scorers[1].of: names this scorer"),
        ('correct_for = {a = "x"}', "scorers[1].of: correct_for maps another scorer's labels"),
        ('of = "existence"', "scorers[1].correct_for: with of, say which label is right when"),
        (
            'of = "existence"\ncorrect_for = {claims = {}}',
            "scorers[1].correct_for.claims: expected a value or a list of values",
        ),
        ('field = "answer_key"', "scorers[1].field: answer_key is not a field of prompt 'p000'"),
        ('match = "numeric"\nfield = "ground_truth"', "scorers[1].field: prompt 'p000' in "),
    ],
)
def test_a_bad_target_scorer_or_a_target_it_cannot_read_is_one_line_and_exit_2(
    tmp_path, run_cli, scorer, expected
):
    config = _project(tmp_path, run_cli, EXISTENCE, {})
    config.write_text(
        config.read_text() + f'\n[[scorers]]\nname = "t"\ntype = "target"\n{scorer}\n'
    )
    code, _, err = run_cli("score", config)
    assert code == 2
    assert err.startswith(f"error: {config}: {expected}"), err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "scores.jsonl").exists()


def test_scoring_the_scorer_a_target_scorer_reads_scores_the_target_scorer_too(tmp_path, run_cli):
    config = _project(tmp_path, run_cli, EXISTENCE + TRUTH, {})
    assert run_cli("score", config)[0] == 0
    before = len(score_lines(tmp_path / "out"))
    config.write_text(config.read_text().replace('keywords = ["it exists"]', 'keywords = ["yes"]'))
    code, _, err = run_cli("score", config, "--scorers", "existence")
    assert (code, err) == (0, "")
    added = Counter(line["scorer"] for line in score_lines(tmp_path / "out")[before:])
    assert added == {"existence": 12, "truth": 12}


@pytest.mark.parametrize(
    ("truth", "scorer", "expected"),
    [
        ("", 'field = "ground_truth"\nmatch = "includes"', 'is "": an empty target'),
        ("1", 'field = "ground_truth"\nmatch = "regex"\npattern = "a{2,{target}}"', "pattern with"),
    ],
)
def test_a_target_no_answer_can_meet_sensibly_is_refused_before_scoring(
    tmp_path, run_cli, truth, scorer, expected
):
    config = _project(tmp_path, run_cli, EXISTENCE, {"p001": truth})
    config.write_text(
        config.read_text() + f'\n[[scorers]]\nname = "t"\ntype = "target"\n{scorer}\n'
    )
    code, _, err = run_cli("score", config)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "scorers[1].field: prompt 'p001'" in err and expected in err
    assert not (tmp_path / "out" / "scores.jsonl").exists()
