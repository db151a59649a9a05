"""The current label of every answer, per scorer: the scores file read compactly for joining.

`read_scores` keeps every latest line whole; a join over a million answers needs only each
answer's label, value and the digest of the answer it was given to. A score counts for an answer
only when
- it is the latest line for its `answer key | scorer` and says "ok",
- it was given to that answer as it is now (`answer` equals `answer_digest` of the record), and
- it was made under the scorer's current definition: that of the scorer's last line in the
  file (a rubric edited and not yet rescored everywhere leaves scores of both definitions; only
  the newer count, the others are counted as `earlier_definition`).

Memory: one dict entry per answer and scorer, holding a 4-tuple and the answer's digest.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis.answers import Advance
from harness.analysis.scores import score_lines

# (label, value, answer digest, definition) of one answer's latest score from one scorer.
Given = tuple[str | None, float | None, str, str]
_FAILED = ""  # the definition slot of a score that could not be given (no definition is empty)


@dataclass
class ScorerLabels:
    """One scorer's latest score per answer key, and its current definition."""

    name: str
    definition: str = ""
    given: dict[str, Given] = field(default_factory=dict)
    failed: int = 0  # latest lines that say "error": no label could be given
    earlier_definition: int = 0  # latest lines made under another definition than the current
    has_values: bool = False  # some score carries a numeric value

    def label_of(self, answer_key: str, answer: str) -> Given | None:
        """The current score of this answer, or None (none given, or given to another answer)."""
        score = self.given.get(answer_key)
        if score is None or score[2] != answer:
            return None
        return score

    def labels(self) -> list[str]:
        """Every label this scorer gives, sorted."""
        return sorted({given[0] for given in self.given.values() if given[0] is not None})

    def _settle(self) -> None:
        """Drop failures and scores of earlier definitions, counting them."""
        for answer_key, given in list(self.given.items()):
            if given[3] == self.definition:
                self.has_values = self.has_values or given[1] is not None
                continue
            del self.given[answer_key]
            if given[3] == _FAILED:
                self.failed += 1
            else:
                self.earlier_definition += 1


@dataclass
class Labels:
    """Every scorer's labels, and how many lines could not be read."""

    scorers: dict[str, ScorerLabels] = field(default_factory=dict)
    skipped: int = 0
    named: set[str] = field(default_factory=set)  # every scorer the file names, kept or not


def read_labels(path: Path, only: Collection[str] = (), advance: Advance | None = None) -> Labels:
    """The scores file at `path` (none: no labels), reduced to current labels; `only` keeps the
    named scorers. Damaged lines are skipped and counted."""
    labels = Labels()
    strings: dict[object, object] = {}  # one copy of each label and definition
    for obj in score_lines(path, advance):
        if obj is None:
            labels.skipped += 1
            continue
        scorer = obj["scorer"]
        labels.named.add(scorer)
        if only and scorer not in only:
            continue
        table = labels.scorers.get(scorer) or labels.scorers.setdefault(
            scorer, ScorerLabels(scorer)
        )
        table.definition = strings.setdefault(obj["definition"], obj["definition"])
        table.given[obj["answer_key"]] = _given(obj, table.definition, strings)
    for table in labels.scorers.values():
        table._settle()
    return labels


def _given(obj: dict[str, Any], definition: str, strings: dict[object, object]) -> Given:
    if obj["status"] != "ok":
        return (None, None, "", _FAILED)
    label = obj.get("label")
    label = strings.setdefault(label, label) if isinstance(label, str) else None
    value = obj.get("value")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return (label, float(value) if number else None, obj["answer"], definition)
