r"""Rule scorers: labels from regular expressions and keywords over the answer text.

A `rules` scorer tries its rules in order and the first that matches anywhere in the answer gives
its label (the matched text goes to the score's `detail`); no match gives `default`. A keyword is a
literal phrase that must stand between word boundaries ("exists" does not match "nonexistent").
Matching ignores case unless `case_sensitive`, and curly apostrophes count as straight ones. A
`refusal` scorer is the same with one rule: the shipped patterns (`harness.analysis.refusal`) and
its `extra_patterns`.

Your regular expressions run on RE2 (`harness.patterns`): linear time in the answer whatever the
pattern, so no pattern can hang `score`; one that RE2 cannot run is refused when the config is
loaded. Ignoring case, they are searched in the answer as written with RE2's case folding.

Speed (a million answers are scored in seconds, see `make bench`): ignoring case, keywords and the
shipped patterns are searched in the lowercased answer with lowercase patterns, each on its own, so
Python's `re` jumps from one occurrence of its first word to the next; the word boundary before a
keyword is checked by hand, since a leading lookbehind or `\b` would make `re` try every position.
Keywords are literal and the shipped patterns ours, so `re` cannot backtrack on them for long.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.analysis.refusal import PATTERNS
from harness.config.scorers import RefusalScorer, RuleScorer
from harness.patterns import Match, Pattern, compile_user_pattern

# Bumped whenever the same rules would label some text differently (it is in every definition).
MATCHING_VERSION = 2  # 2: your regular expressions on RE2
_DETAIL_CHARS = 200


@dataclass(frozen=True)
class _Pattern:
    """One alternative of a rule: searched in the lowercased answer or as it is, and whether a
    match must begin where a word begins."""

    regex: Pattern
    lowered: bool
    word_start: bool

    def search(self, text: str) -> Match | None:
        found = self.regex.search(text)
        while (
            self.word_start
            and found is not None
            and found.start()
            and _word_char(text[found.start() - 1])
        ):
            found = self.regex.search(text, found.start() + 1)
        return found


def _word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


@dataclass(frozen=True)
class _Rule:
    label: str
    patterns: tuple[_Pattern, ...]


class RuleMatcher:
    """A rules or refusal scorer, compiled: `label(text)` gives its label and what matched."""

    def __init__(self, scorer: RuleScorer | RefusalScorer) -> None:
        self.definition = _definition(scorer)
        self.default = scorer.default
        fold = not scorer.case_sensitive
        if isinstance(scorer, RefusalScorer):
            shipped = [_Pattern(re.compile(p), lowered=True, word_start=True) for p in PATTERNS]
            extra = _regexes(scorer.extra_patterns, fold)
            self._rules: tuple[_Rule, ...] = (_Rule(scorer.label, (*shipped, *extra)),)
        else:
            self._rules = tuple(
                _Rule(r.label, (*_keywords(r.keywords, fold), *_regexes(r.regex, fold)))
                for r in scorer.rules
            )

    def label(self, text: str) -> tuple[str, str | None]:
        """The label of the first rule that matches, with the matched text; else the default."""
        return self.label_seen(*seen_as(text))

    def label_seen(self, text: str, lowered: str) -> tuple[str, str | None]:
        """`label` of an answer already made ready by `seen_as` (once for all scorers)."""
        for rule in self._rules:
            for pattern in rule.patterns:
                found = pattern.search(lowered if pattern.lowered else text)
                if found is not None:
                    return rule.label, _detail(found, text, lowered if pattern.lowered else None)
        return self.default, None


def seen_as(text: str) -> tuple[str, str]:
    """An answer as the rules see it (curly apostrophes made straight), and lowercased."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return text, text.lower()


def _keywords(keywords: Sequence[str], fold: bool) -> list[_Pattern]:
    """One pattern per keyword: the phrase, then no word character."""
    return [
        _Pattern(re.compile(re.escape(k.lower() if fold else k) + r"(?!\w)"), fold, True)
        for k in keywords
    ]


def _regexes(patterns: Sequence[str], fold: bool) -> list[_Pattern]:
    """Your regular expressions, on RE2, searched in the answer as written (folding case unless
    `case_sensitive`)."""
    return [
        _Pattern(compile_user_pattern(p, ignore_case=fold), lowered=False, word_start=False)
        for p in patterns
    ]


def _detail(found: Match, text: str, lowered: str | None) -> str:
    """What matched, from the answer as written where lowercasing kept its length (`lowered`:
    the text searched, when it was the lowercased answer)."""
    if lowered and len(lowered) == len(text):
        return text[found.start() : found.end()][:_DETAIL_CHARS]
    return (found.group(0) or "")[:_DETAIL_CHARS]  # group 0, the whole match, is never None


def _definition(scorer: RuleScorer | RefusalScorer) -> dict[str, Any]:
    """Everything that can change a label: what the definition hash is taken of."""
    common = {
        "version": MATCHING_VERSION,
        "default": scorer.default,
        "case_sensitive": scorer.case_sensitive,
    }
    if isinstance(scorer, RefusalScorer):
        patterns = {"shipped": list(PATTERNS), "extra": list(scorer.extra_patterns)}
        return {"type": "refusal", "label": scorer.label, "patterns": patterns, **common}
    rules = [[r.label, list(r.regex), list(r.keywords)] for r in scorer.rules]
    return {"type": "rules", "rules": rules, **common}
