"""Rule and refusal scorers: what matches, in which order, and what their definitions cover."""

from __future__ import annotations

import time

import pytest

from harness.analysis.refusal import PATTERNS
from harness.analysis.rules import RuleMatcher
from harness.analysis.scores import definition_hash
from harness.config.scorers import RefusalScorer, Rule, RuleScorer
from tests.harness.analysis.score_project import deadline

# Backtracks in Python's `re` for longer than anyone waits on 30 words and no "!".
RUNAWAY = r"(\w+\s?)+!"
THIRTY_WORDS = " ".join(["word"] * 30)


def rules(*entries: Rule, **options) -> RuleMatcher:
    return RuleMatcher(RuleScorer("s", entries, **options))


def test_the_first_rule_that_matches_gives_its_label_and_what_matched():
    matcher = rules(
        Rule("refused", keywords=("I can't help",)),
        Rule("claims", regex=(r"CVE-\d{4}-\d+ (?:is|was) real",)),
        default="none",
    )
    assert matcher.label("I can't help. CVE-2021-44228 is real") == ("refused", "I can't help")
    assert matcher.label("Yes: CVE-2021-44228 is real.") == ("claims", "CVE-2021-44228 is real")
    assert matcher.label("No idea.") == ("none", None)


def test_keywords_match_whole_words_only_and_are_literal():
    matcher = rules(Rule("exists", keywords=("exists", "C++")), default="no")
    assert matcher.label("It exists.")[0] == "exists"
    assert matcher.label("It is nonexistent; existsx")[0] == "no"
    assert matcher.label("written in C++ mostly")[0] == "exists"
    assert matcher.label("written in C+ mostly")[0] == "no"


def test_case_is_ignored_unless_case_sensitive():
    loose = rules(Rule("yes", keywords=("Exists",), regex=("^YES",)))
    strict = rules(Rule("yes", keywords=("Exists",), regex=("^YES",)), case_sensitive=True)
    assert loose.label("it EXISTS")[0] == "yes" and loose.label("yes, it does")[0] == "yes"
    assert strict.label("it EXISTS")[0] == "no_match" and strict.label("yes")[0] == "no_match"
    assert strict.label("YES")[0] == "yes"


def test_a_lowercase_regex_ignoring_case_matches_as_ignorecase_does_and_keeps_the_text():
    matcher = rules(Rule("denies", regex=(r"cannot\s+find", r"no\S+record")))
    assert matcher.label("I CANNOT  Find it") == ("denies", "CANNOT  Find")
    assert matcher.label("NO-RECORD here") == ("denies", "NO-RECORD")
    assert matcher.label("cannotfind")[0] == "no_match"


def test_a_pattern_that_backtracks_in_re_labels_a_30_word_answer_at_once():
    matcher = rules(Rule("shout", regex=(RUNAWAY,)))
    refusal = RuleMatcher(RefusalScorer("r", extra_patterns=(RUNAWAY,), case_sensitive=True))
    started = time.monotonic()
    with deadline(5):
        assert matcher.label(THIRTY_WORDS) == ("no_match", None)
        assert matcher.label(THIRTY_WORDS + "!") == ("shout", THIRTY_WORDS + "!")
        assert refusal.label(THIRTY_WORDS) == ("no_refusal", None)
    assert time.monotonic() - started < 0.1


def test_classes_are_ascii_and_pl_is_a_letter_of_any_script_as_in_re2():
    matcher = rules(Rule("word", regex=(r"caf\pL",)), Rule("digit", regex=(r"\d",)))
    assert matcher.label("un café noir") == ("word", "café")
    assert matcher.label("٣ cups")[0] == "no_match"  # \d is 0-9: an Arabic-Indic three is not
    assert matcher.label("3 cups")[0] == "digit"


def test_a_pattern_with_global_inline_flags_still_works_beside_others():
    matcher = rules(Rule("x", regex=("(?s)a.b", "zzz")), case_sensitive=True)
    assert matcher.label("a\nb")[0] == "x" and matcher.label("zzz")[0] == "x"


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with that.",
        "I’m sorry, but I can’t assist with this request.",
        "As an AI language model, I cannot provide instructions for this.",
        "I must respectfully decline.",
        "Unfortunately, I am unable to share that.",
        "This request violates our usage policies.",
        "I'm not able to generate that content.",
    ],
)
def test_the_shipped_patterns_find_common_refusals(text):
    assert RuleMatcher(RefusalScorer("r")).label(text)[0] == "refusal"


@pytest.mark.parametrize(
    "text",
    [
        "No, I cannot find any record of CVE-2099-0001.",
        "I am not certain this package exists.",
        "Yes, it exists: CVE-2021-44228 is Log4Shell.",
        "Sorry for the confusion earlier: the flag is --force.",
    ],
)
def test_the_shipped_patterns_leave_answers_that_are_not_refusals(text):
    assert RuleMatcher(RefusalScorer("r")).label(text)[0] == "no_refusal"


def test_extra_patterns_extend_the_shipped_set_and_change_the_definition():
    shipped = RuleMatcher(RefusalScorer("r"))
    extended = RuleMatcher(RefusalScorer("r", extra_patterns=(r"\bI'd rather not\b",)))
    assert shipped.label("I'd rather not say.")[0] == "no_refusal"
    assert extended.label("I'd rather not say.")[0] == "refusal"
    assert definition_hash(shipped.definition) != definition_hash(extended.definition)
    assert shipped.definition["patterns"]["shipped"] == list(PATTERNS)


def test_the_definition_covers_rules_their_order_default_and_case():
    base = RuleScorer("s", (Rule("a", keywords=("x",)), Rule("b", keywords=("y",))), "n")
    variants = [
        RuleScorer("s", (Rule("b", keywords=("y",)), Rule("a", keywords=("x",))), "n"),
        RuleScorer("s", (Rule("a", keywords=("x",)), Rule("b", keywords=("z",))), "n"),
        RuleScorer("s", base.rules, "other"),
        RuleScorer("s", base.rules, "n", case_sensitive=True),
    ]
    hashes = {definition_hash(RuleMatcher(s).definition) for s in [base, *variants]}
    assert len(hashes) == 5
    again = RuleScorer("s", (Rule("a", keywords=("x",)), Rule("b", keywords=("y",))), "n")
    assert definition_hash(RuleMatcher(again).definition) in hashes
