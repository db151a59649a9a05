"""Label counts per scorer, variant and category: what `harness score` shows when it ends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from harness.config.scorers import UNPARSEABLE
from harness.terminal import shown

# How a score that could not be given (a judge request that failed for good) is counted.
ERROR_LABEL = "(error)"


@dataclass
class Tally:
    """One scorer's labels over the answers, per (variant, category); how many of them this
    command appended, and how many answers it could not score now."""

    scorer: str
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    new: int = 0
    unscored: int = 0

    def add(self, answer: Mapping[str, Any], label: str | None, *, new: bool = False) -> None:
        """Count one answer's label (None: a score that could not be given)."""
        group = (answer["variant"], answer.get("prompt_category") or "", label or ERROR_LABEL)
        self.counts[group] += 1
        self.new += new

    @property
    def scored(self) -> int:
        """Answers with a score from this scorer."""
        return self.counts.total()


def label_table(tally: Tally, labels: Sequence[str]) -> Table:
    """Rows per variant and category: how many answers, and each label's count and share.
    `labels` orders the columns; labels seen but not listed (UNPARSEABLE, errors) follow."""
    seen = {label for _, _, label in tally.counts}
    order = [*labels, UNPARSEABLE, ERROR_LABEL]
    columns = [label for label in order if label in seen or label in labels]
    columns += sorted(seen - set(columns))
    groups: dict[tuple[str, str], Counter[str]] = {}
    for (variant, category, label), count in tally.counts.items():
        groups.setdefault((variant, category), Counter())[label] += count
    table = Table(title=shown(f"{tally.scorer}: labels per variant and category"))
    table.add_column("variant")
    table.add_column("category")
    table.add_column("n", justify="right")
    for label in columns:
        table.add_column(shown(label), justify="right")
    for (variant, category), counts in sorted(groups.items()):
        n = counts.total()
        shares = [f"{counts[label]:,} ({counts[label] / n:.0%})" for label in columns]
        table.add_row(shown(variant), shown(category or "-"), f"{n:,}", *shares)
    return table
