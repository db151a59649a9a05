r"""Target scorers: an answer, or another scorer's label, against a field of its prompt.

A prompt's target (`target`, `ground_truth`, any field the config names) is a value or a list of
values; an answer is `correct` when it meets any of them, else `incorrect` (value 1.0 or 0.0).
How it meets one (`match`), as users of Inspect and lm-evaluation-harness know it:

- `exact`: the answer is the target, both without surrounding spaces and punctuation, inner
  spaces collapsed, case ignored unless `case_sensitive`;
- `includes`: the answer holds the target (case ignored unless `case_sensitive`);
- `regex`: `pattern` (RE2, `{target}` standing for the target, escaped) matches in the answer;
- `numeric`: the answer's last number (`1,234.5`, `-3e-2`, `−7`, `1 234` with a thin or no-break
  space) is within `tolerance` of the target;
- `choice`: the letter the answer chooses (`ANSWER: B`, the last such; else an answer that is
  only a letter, as `B`, `(B)` or `B.`) is the target's, case ignored.

With `of`, another scorer's current label is compared instead: `correct_for` gives the target
values each label is right for (`claims_exists` where `ground_truth` is `exists`); a label right
for other values is `incorrect`, and a label it does not name is given as it is (`uncertain`,
counted apart, value null).

A score's `input` is the digest of what it was given besides the answer (the target's values,
and with `of` the other's label and definition): editing one prompt's target rescores only the
answers to that prompt.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from harness.analysis.scores import Verdict
from harness.config.scorers import CORRECT, INCORRECT, TargetScorer, target_texts
from harness.patterns import Pattern, PatternError, compile_user_pattern

# Bumped whenever the same answers and targets would be labelled otherwise.
MATCHING_VERSION = 2  # 2: numbers with a Unicode minus, or thousands set apart by thin spaces
_EDGES = " \t\r\n.,;:!?\"'`()[]{}"
_SPACES = re.compile(r"\s+")
# Thousands may be set apart by commas, no-break or thin spaces (not by plain spaces: "pick 1 234"
# is two numbers); a minus may be Unicode's (U+2212).
_GROUP = ",\u00a0\u202f\u2009"
_NUMBER = re.compile(
    rf"[-+\u2212]?(?:\d{{1,3}}(?:[{_GROUP}]\d{{3}})+|\d+)(?:\.\d+)?(?:[eE][-+\u2212]?\d+)?"
    r"|[-+\u2212]?\.\d+"
)
_ANSWER_LETTER = re.compile(r"ANSWER\s*:\s*\**\s*\(?([A-Za-z])\)?(?![A-Za-z])", re.IGNORECASE)
_LONE_LETTER = re.compile(r"\s*\**\(?([A-Za-z])[).:]?\**\s*")
_DETAIL_CHARS = 200


class TargetError(ValueError):
    """A target this scorer cannot read (a numeric scorer's target that is no number)."""


class TargetMatcher:
    """A target scorer, ready: `definition` (what its hash is taken of), `targets(prompt
    fields)` (the values of its field) and `verdict(answer text, values, label of `of`)`."""

    def __init__(self, scorer: TargetScorer) -> None:
        self.scorer = scorer
        self.definition = {
            "type": "target",
            "version": MATCHING_VERSION,
            "field": scorer.field,
            "match": scorer.match,
            "pattern": scorer.pattern,
            "tolerance": scorer.tolerance,
            "case_sensitive": scorer.case_sensitive,
            "of": scorer.of,
            "correct_for": [[label, list(values)] for label, values in scorer.correct_for],
        }
        self._right = {
            label: set(map(self._folded, values)) for label, values in scorer.correct_for
        }
        self._patterns: dict[str, Pattern] = {}

    def targets(self, fields: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The target's values in a prompt's `fields` (None: the prompt has no such field);
        TargetError when the scorer cannot read one."""
        if self.scorer.field not in fields:
            return None
        given = fields[self.scorer.field]
        texts = target_texts(given)
        if texts is None:
            raise TargetError(f"{self.scorer.field} is {_shown(given)}: not a value or a list")
        if not all(text.strip() for text in texts):
            raise TargetError(f"{self.scorer.field} is {_shown(given)}: an empty target")
        if self.scorer.match == "regex" and not self.scorer.of:
            for text in texts:
                try:
                    self._pattern(text)
                except PatternError as exc:
                    raise TargetError(f"pattern with {text!r}: {exc}") from None
        if self.scorer.match == "numeric":
            for text in texts:
                if _number(text) is None:
                    raise TargetError(f"{self.scorer.field} {text!r} is no number")
        if self.scorer.match == "choice" and not all(re.fullmatch("[A-Za-z]", t) for t in texts):
            raise TargetError(f"{self.scorer.field} is {_shown(given)}: not a letter")
        return texts

    def input_digest(self, targets: Sequence[str], of: tuple[str, str] | None = None) -> str:
        """16 hex digits of what the scorer is given besides the answer: the target's values,
        and with `of` the other's label and definition."""
        body = orjson.dumps([list(targets), list(of) if of else None])
        return hashlib.sha256(body).hexdigest()[:16]

    def verdict(self, text: str, targets: Sequence[str], label: str | None = None) -> Verdict:
        """The label of an answer `text` (with `of`: of the other scorer's `label`)."""
        if self.scorer.of:
            return self._of_label(label or "", targets)
        met, read = self._met(text, targets)
        shown = ", ".join(map(repr, targets))
        detail = f"{read} against {shown}"[:_DETAIL_CHARS]
        return Verdict(CORRECT if met else INCORRECT, 1.0 if met else 0.0, detail)

    def _of_label(self, label: str, targets: Sequence[str]) -> Verdict:
        right = self._right.get(label)
        if right is None:
            return Verdict(label, None, f"{self.scorer.of}: {label} (no target value)")
        met = any(self._folded(t) in right for t in targets)
        detail = f"{self.scorer.of}: {label} where {self.scorer.field} is {', '.join(targets)}"
        detail = detail[:_DETAIL_CHARS]
        return Verdict(CORRECT if met else INCORRECT, 1.0 if met else 0.0, detail)

    def _met(self, text: str, targets: Sequence[str]) -> tuple[bool, str]:
        """Whether the answer meets a target, and what was read of it."""
        match = self.scorer.match
        if match == "numeric":
            found = _NUMBER.findall(text)
            number = _number(found[-1]) if found else None
            if number is None:
                return False, f"number {found[-1]} unreadable" if found else "no number"
            wanted = [_number(t) for t in targets]  # numbers all: `targets` checked them
            met = any(abs(number - t) <= self.scorer.tolerance for t in wanted if t is not None)
            return met, f"number {found[-1]}"
        if match == "choice":
            letter = _chosen_letter(text)
            if letter is None:
                return False, "no letter chosen"
            return any(letter == t.upper() for t in targets), f"letter {letter}"
        if match == "regex":
            for target in targets:
                hit = self._pattern(target).search(text)
                if hit is not None:
                    return True, f"matched {(hit.group(0) or '')[:_DETAIL_CHARS]!r}"
            return False, "no match"
        if match == "includes":
            seen = self._folded(text)
            return any(self._folded(t) in seen for t in targets), "the answer"
        seen = self._normal(text)
        return any(seen == self._normal(t) for t in targets), f"{seen[:_DETAIL_CHARS]!r}"

    def _pattern(self, target: str) -> Pattern:
        """The scorer's pattern with `target` in it, compiled once."""
        pattern = self._patterns.get(target)
        if pattern is None:
            text = self.scorer.pattern.replace("{target}", re.escape(target))
            pattern = compile_user_pattern(text, ignore_case=not self.scorer.case_sensitive)
            self._patterns[target] = pattern
        return pattern

    def _folded(self, text: str) -> str:
        return text if self.scorer.case_sensitive else text.casefold()

    def _normal(self, text: str) -> str:
        return self._folded(_SPACES.sub(" ", text.strip(_EDGES)))


def _number(text: str) -> float | None:
    """A number as `_NUMBER` reads it (thousands set apart by commas or thin or no-break spaces,
    a Unicode minus); None when it is no finite one."""
    try:
        number = float(re.sub(f"[{_GROUP}]", "", text).replace("\u2212", "-"))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _chosen_letter(text: str) -> str | None:
    """The letter an answer chooses: after its last `ANSWER:`, else the whole answer's."""
    found = _ANSWER_LETTER.findall(text)
    if found:
        return str(found[-1]).upper()
    alone = _LONE_LETTER.fullmatch(text)
    return alone.group(1).upper() if alone else None


def _shown(value: Any) -> str:
    return orjson.dumps(value).decode()[:80]
