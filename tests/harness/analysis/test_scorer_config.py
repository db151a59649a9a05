"""`[[scorers]]` in the config: typed, checked at load time, errors naming file and key; and
`harness score` refusing bad input with one line, exit 2, nothing written."""

from __future__ import annotations

import pytest

from harness.config.run_config import load_config
from harness.config.scorers import JudgeScorer, RefusalScorer, RuleScorer
from harness.patterns import PatternError, compile_user_pattern
from tests.conftest import SIMPLE_MODEL, write_config
from tests.harness.analysis.score_project import EXISTENCE, project

JUDGE = """
[[scorers]]
name = "judge"
type = "judge"
model = "sim"
labels = ["yes", "no"]
template = "Q: {prompt}\\nA: {response}\\nSource: {source}\\nVERDICT: yes or no?"
"""


def test_each_scorer_type_loads_into_its_own_object(tmp_path):
    config = load_config(write_config(tmp_path, SIMPLE_MODEL + EXISTENCE + JUDGE), {})
    rules, judge = config.scorers
    assert isinstance(rules, RuleScorer) and rules.default == "other"
    assert [r.label for r in rules.rules] == ["claims", "denies"]
    assert rules.labels == ("claims", "denies", "other")
    assert isinstance(judge, JudgeScorer) and judge.where == "models[0]"
    assert judge.model.name == "sim" and judge.model.temperatures == (0.0,)
    assert judge.placeholders == ("prompt", "response", "source")


def test_an_inline_judge_model_takes_the_defaults_and_the_scorers_name(tmp_path):
    inline = JUDGE.replace('model = "sim"', "temperature = 0.3") + (
        '[scorers.model]\nprovider = "simulated"\nmodel = "grader-1"\n'
    )
    body = "[defaults]\nmax_tokens = 77\n" + SIMPLE_MODEL + inline
    (judge,) = load_config(write_config(tmp_path, body), {}).scorers
    assert judge.where == "scorers[0].model" and judge.model.name == "judge"
    assert judge.model.model_id == "grader-1" and judge.model.max_tokens == 77
    assert judge.model.temperatures == (0.3,)


def test_a_refusal_scorer_needs_nothing_but_a_name(tmp_path):
    body = SIMPLE_MODEL + '[[scorers]]\nname = "refusal"\ntype = "refusal"\n'
    (scorer,) = load_config(write_config(tmp_path, body), {}).scorers
    assert isinstance(scorer, RefusalScorer) and scorer.labels == ("refusal", "no_refusal")


@pytest.mark.parametrize(
    ("scorers", "expected"),
    [
        ('[[scorers]]\nname = "x"\ntype = "vibes"\n', "scorers[0].type: expected one of"),
        ('[[scorers]]\ntype = "refusal"\n', "scorers[0].name: missing required key"),
        ('[[scorers]]\nname = "a|b"\ntype = "refusal"\n', "scorers[0].name: use 1-64 letters"),
        ('[[scorers]]\nname = "../x"\ntype = "refusal"\n', "scorers[0].name: use 1-64 letters"),
        (
            '[[scorers]]\nname = "r"\ntype = "refusal"\n' * 2,
            'scorers[1].name: duplicate scorer name "r"',
        ),
        (
            '[[scorers]]\nname = "r"\ntype = "refusal"\nextra_patterns = ["(unclosed"]\n',
            "scorers[0].extra_patterns[0]: invalid regular expression: missing ): (unclosed",
        ),
        (
            '[[scorers]]\nname = "r"\ntype = "refusal"\nextra_patterns = ["ok", "(a)\\\\1"]\n',
            "scorers[0].extra_patterns[1]: invalid regular expression: invalid escape sequence: "
            "\\1: RE2 has no backreferences (patterns run on RE2, in linear time)",
        ),
        (
            '[[scorers]]\nname = "r"\ntype = "rules"\n[[scorers.rules]]\nlabel = "a"\n'
            'regex = ["no(?!t)"]\n',
            "scorers[0].rules[0].regex[0]: invalid regular expression: invalid perl operator: "
            "(?!: RE2 has no lookahead",
        ),
        (
            '[[scorers]]\nname = "r"\ntype = "refusal"\ndefault = "refusal"\n',
            "scorers[0].default: must differ from label",
        ),
        ('[[scorers]]\nname = "r"\ntype = "rules"\nrules = []\n', "scorers[0].rules: must not"),
        (
            '[[scorers]]\nname = "r"\ntype = "rules"\n[[scorers.rules]]\nlabel = "a"\n',
            "scorers[0].rules[0]: give regex or keywords",
        ),
        (
            '[[scorers]]\nname = "r"\ntype = "rules"\n[[scorers.rules]]\nlabel = "a"\n'
            'regex = ["a("]\n',
            "scorers[0].rules[0].regex[0]: invalid regular expression",
        ),
        (
            '[[scorers]]\nname = "r"\ntype = "rules"\n[[scorers.rules]]\nlabel = " a"\n'
            'keywords = ["x"]\n',
            "scorers[0].rules[0].label: a label is a non-empty string",
        ),
        (
            '[[scorers]]\nname = "r"\ntype = "rules"\n[[scorers.rules]]\nlabel = "a"\n'
            'keywords = ["x"]\nwords = ["y"]\n',
            "scorers[0].rules[0].words: unknown key",
        ),
        (
            JUDGE.replace('"sim"', '"nobody"'),
            'scorers[0].model: no [[models]] entry named "nobody"',
        ),
        (JUDGE.replace("{source}", "{source.x}"), "scorers[0].template: {source.x}: use a plain"),
        (JUDGE.replace("{source}", "{source!r}"), "scorers[0].template: {source!r}: use a plain"),
        (JUDGE.replace("{source}", "{}"), "scorers[0].template: {}: use a plain field name"),
        (JUDGE.replace("{source}", "{source"), "scorers[0].template: unmatched '{'"),
        (JUDGE.replace('["yes", "no"]', '["yes", "YES"]'), "scorers[0].labels: a label is listed"),
        (JUDGE + 'verdict_pattern = "VERDICT"\n', "scorers[0].verdict_pattern: needs exactly one"),
        (
            JUDGE.replace('["yes", "no"]', '["yes", "Unparseable"]'),
            "scorers[0].labels[1]: UNPARSEABLE is the harness's own",
        ),
        (
            JUDGE.replace('["yes", "no"]', '["yes", "not sure"]'),
            "scorers[0].labels[1]: the default verdict_pattern reads letters, digits",
        ),
        (
            JUDGE + 'verdict_pattern = "(?<=VERDICT: )(\\\\w+)"\n',
            "scorers[0].verdict_pattern: invalid regular expression: invalid perl operator: (?<=: "
            "RE2 has no lookbehind",
        ),
        (JUDGE + "temperature = 3\n", "scorers[0].temperature: must be <= 2,"),
        (
            JUDGE.replace('model = "sim"', "").replace(
                "[[scorers]]", '[[scorers]]\nmodel = {provider = "simulated", temperatures = "hot"}'
            ),
            "scorers[0].model.temperatures: expected a list",
        ),
    ],
)
def test_a_bad_scorer_is_a_config_error_naming_the_key_and_score_exits_2(
    tmp_path, run_cli, scorers, expected
):
    config = write_config(tmp_path, SIMPLE_MODEL + scorers)
    code, _, err = run_cli("score", config)
    assert code == 2
    assert err.startswith(f"error: {config}: {expected}"), err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_rubric_field_a_prompt_lacks_is_refused_before_anything_is_sent(tmp_path, run_cli):
    config = project(tmp_path, run_cli, JUDGE.replace("{source}", "{target}"))
    code, _, err = run_cli("score", config)
    assert code == 2
    assert "scorers[0].template: {target} is not a field of prompt 'p000'" in err
    assert (
        "(its fields: prompt, response, prompt_id, category, is_synthetic_probe, labels, source)"
        in err
    )
    assert not (tmp_path / "out" / "scores.jsonl").exists()
    assert not (tmp_path / "out" / "judge").exists()


def test_score_without_scorers_answers_or_a_known_name_exits_2(tmp_path, run_cli):
    bare = write_config(tmp_path, SIMPLE_MODEL)
    assert run_cli("run", bare)[0] == 0
    code, _, err = run_cli("score", bare)
    assert code == 2 and "no [[scorers]] table" in err
    with_scorers = write_config(tmp_path, SIMPLE_MODEL + EXISTENCE)
    code, _, err = run_cli("score", with_scorers, "--scorers", "existence,nope")
    assert code == 2 and "--scorers: no scorer named nope" in err and "(scorers: existence)" in err
    code, _, err = run_cli("score", with_scorers, "--output", tmp_path / "elsewhere")
    assert code == 2 and "no answers to score" in err
    assert not (tmp_path / "elsewhere").exists()
    assert not (tmp_path / "out" / "scores.jsonl").exists()


@pytest.mark.parametrize(
    ("pattern", "backreference"),
    [("(a)\\1", True), ("(a)(b)\\2", True), ("\\x{110000}", False), ("\\x{10ffff1}", False)],
)
def test_only_a_real_backreference_is_called_one(pattern, backreference):
    with pytest.raises(PatternError) as refused:
        compile_user_pattern(pattern)
    assert ("RE2 has no backreferences" in str(refused.value)) is backreference
