"""The current label of every answer, per scorer: the scores file read compactly for joining.

`read_scores` keeps every latest line whole; a join over a million answers needs only each
answer's label, value and the digest of the answer it was given to. A score counts for an answer
only when
- it is the latest line for its `answer key | scorer` and says "ok",
- it was given to that answer as it is now (`answer` equals `answer_digest` of the record), and
- it was made under the scorer's current definition: that of the scorer's last line in the
  file (a rubric edited and not yet rescored everywhere leaves scores of both definitions; only
  the newer count, the others are counted as `earlier_definition`).

Memory: per answer and scorer, a dict entry from its key to a row of flat arrays (the label's
code, the value, the digest's 64 bits): about 190 bytes with the key, against 300 as tuples of
Python objects. Reading a row touches no shared object, so worker processes forked to read the
ledger (`harness.analysis.parallel`) copy only the few pages of row numbers they look up, not
the labels (measured: 30 MB instead of 190 MB per worker at 1,000,000 answers).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis.scores import score_lines
from harness.ledger.sets import Advance

Given = tuple[str | None, float | None]  # an answer's current label and value
_FAILED = -1  # the label code of a score that could not be given


@dataclass
class ScorerLabels:
    """One scorer's latest score per answer key, and its current definition."""

    name: str
    definition: str = ""
    rows: dict[str, int] = field(default_factory=dict)  # answer key -> its row in the arrays
    label: array[int] = field(default_factory=lambda: array("i"))  # code into `names`
    value: array[float] = field(default_factory=lambda: array("d"))  # NaN: none
    digest: array[int] = field(default_factory=lambda: array("Q"))  # the answer digest's bits
    made_under: array[int] = field(default_factory=lambda: array("i"))  # into `definitions`
    names: dict[str | None, int] = field(default_factory=dict)  # label -> code
    definitions: dict[str, int] = field(default_factory=dict)
    failed: int = 0  # latest lines that say "error": no label could be given
    earlier_definition: int = 0  # latest lines made under another definition than the current
    has_values: bool = False  # some score carries a numeric value
    _label_names: dict[int, str | None] = field(default_factory=dict, repr=False)

    def label_of(self, answer_key: str, answer: str) -> Given | None:
        """The current label and value of this answer (its digest `answer`; "" for none), or
        None (none given, or given to another answer)."""
        row = self.rows.get(answer_key)
        if row is None or not answer or self.digest[row] != int(answer, 16):
            return None
        value = self.value[row]
        return self._label_names[self.label[row]], None if math.isnan(value) else value

    def labels(self) -> list[str]:
        """Every label this scorer gives, sorted."""
        return sorted(name for name in self.names if name is not None)

    def _give(self, answer_key: str, line: dict[str, Any]) -> None:
        """Note a score line as the latest for its answer (InvalidDigest: not 16 hex digits)."""
        definition = self.definitions.setdefault(line["definition"], len(self.definitions))
        label, value, digest = _FAILED, math.nan, 0
        if line["status"] == "ok":
            digest = _digest_bits(line["answer"])
            given = line.get("label")
            given = given if isinstance(given, str) else None
            label = self.names.setdefault(given, len(self.names))
            number = line.get("value")
            if isinstance(number, int | float) and not isinstance(number, bool):
                value = float(number)
        row = self.rows.get(answer_key)
        if row is None:
            self.rows[answer_key] = len(self.label)
            self.label.append(label)
            self.value.append(value)
            self.digest.append(digest)
            self.made_under.append(definition)
        else:
            self.label[row], self.value[row] = label, value
            self.digest[row], self.made_under[row] = digest, definition

    def _settle(self) -> None:
        """Drop failures and scores of earlier definitions, counting them, and the labels only
        those had."""
        current = self.definitions.get(self.definition, -1)
        kept: set[int] = set()
        for answer_key, row in list(self.rows.items()):
            if self.label[row] == _FAILED:
                self.failed += 1
            elif self.made_under[row] != current:
                self.earlier_definition += 1
            else:
                kept.add(self.label[row])
                self.has_values = self.has_values or not math.isnan(self.value[row])
                continue
            del self.rows[answer_key]
        self.names = {name: code for name, code in self.names.items() if code in kept}
        self._label_names = {code: name for name, code in self.names.items()}
        self.made_under = array("i")  # needed no more
        self.definitions = {}


class InvalidDigest(ValueError):
    """A score's `answer` is not the 16 hex digits of an answer digest."""


def _digest_bits(text: str) -> int:
    if len(text) != 16:
        raise InvalidDigest(text)
    try:
        return int(text, 16)
    except ValueError:
        raise InvalidDigest(text) from None


@dataclass
class Labels:
    """Every scorer's labels, and how many lines could not be read."""

    scorers: dict[str, ScorerLabels] = field(default_factory=dict)
    skipped: int = 0
    named: set[str] = field(default_factory=set)  # every scorer the file names, kept or not


def read_labels(path: Path, only: Collection[str] = (), advance: Advance | None = None) -> Labels:
    """The scores file at `path` (none: no labels), reduced to current labels; `only` keeps the
    named scorers. Damaged lines (and those whose answer digest is not one) are skipped and
    counted."""
    labels = Labels()
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
        try:
            table._give(obj["answer_key"], obj)
        except InvalidDigest:  # the latest line is unreadable: no score is current
            table.rows.pop(obj["answer_key"], None)
            labels.skipped += 1
            continue
        table.definition = obj["definition"]
    for table in labels.scorers.values():
        table._settle()
    return labels
