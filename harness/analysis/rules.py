"""Rule scorers: labels from regular expressions and keywords over the answer text.

A `rules` scorer tries its rules in order and the first that matches anywhere in the answer gives
its label (the matched text goes to the score's `detail`); no match gives `default`. A keyword is a
literal phrase that must stand between word boundaries ("exists" does not match "nonexistent").
Matching ignores case unless `case_sensitive`, and curly apostrophes count as straight ones. A
`refusal` scorer is the same with one rule: the shipped patterns (`harness.analysis.refusal`) and
its `extra_patterns`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.analysis.refusal import PATTERNS
from harness.scorer_config import RefusalScorer, RuleScorer

# Bumped whenever the same rules would label some text differently (it is in every definition).
MATCHING_VERSION = 1
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})
_DETAIL_CHARS = 200


@dataclass(frozen=True)
class _Compiled:
    label: str
    patterns: tuple[re.Pattern[str], ...]

    def search(self, text: str) -> re.Match[str] | None:
        for pattern in self.patterns:
            found = pattern.search(text)
            if found:
                return found
        return None


class RuleMatcher:
    """A rules or refusal scorer, compiled: `label(text)` gives its label and what matched."""

    def __init__(self, scorer: RuleScorer | RefusalScorer) -> None:
        flags = 0 if scorer.case_sensitive else re.IGNORECASE
        self.definition = _definition(scorer)
        self.default = scorer.default
        if isinstance(scorer, RefusalScorer):
            sources: list[tuple[str, Sequence[str], Sequence[str]]] = [
                (scorer.label, (*PATTERNS, *scorer.extra_patterns), ())
            ]
        else:
            sources = [(rule.label, rule.regex, rule.keywords) for rule in scorer.rules]
        self._rules = tuple(
            _Compiled(label, _compile(regex, keywords, flags)) for label, regex, keywords in sources
        )

    def label(self, text: str) -> tuple[str, str | None]:
        """The label of the first rule that matches, with the matched text; else the default."""
        text = text.translate(_APOSTROPHES)
        for rule in self._rules:
            found = rule.search(text)
            if found is not None:
                return rule.label, found.group(0)[:_DETAIL_CHARS]
        return self.default, None


def _compile(regex: Sequence[str], keywords: Sequence[str], flags: int) -> tuple[re.Pattern, ...]:
    """One pattern for all of a rule's alternatives where they combine; one each where they do
    not (a pattern with global inline flags such as `(?i)` must stand alone)."""
    sources = [*regex, *(rf"(?<!\w){re.escape(k)}(?!\w)" for k in keywords)]
    try:
        return (re.compile("|".join(f"(?:{s})" for s in sources), flags),)
    except re.error:
        return tuple(re.compile(s, flags) for s in sources)


def _definition(scorer: RuleScorer | RefusalScorer) -> dict[str, Any]:
    """Everything that can change a label: what the definition hash is taken of."""
    common = {
        "version": MATCHING_VERSION,
        "default": scorer.default,
        "case_sensitive": scorer.case_sensitive,
    }
    if isinstance(scorer, RefusalScorer):
        patterns = [*PATTERNS, *scorer.extra_patterns]
        return {"type": "refusal", "label": scorer.label, "patterns": patterns, **common}
    rules = [[r.label, list(r.regex), list(r.keywords)] for r in scorer.rules]
    return {"type": "rules", "rules": rules, **common}
