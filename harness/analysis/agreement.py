"""Agreement between raters: Cohen's kappa per pair, Fleiss' kappa for three or more, and the
items they disagree on, for adjudication.

Kappa comes from statsmodels (`statsmodels.stats.inter_rater`), with its asymptotic 95% interval
(a normal approximation, which can pass 1 on small samples: shown clipped to [-1, 1]).
It is undefined when chance agreement is certain (both raters gave every item one and the same
label): shown as such, not as 0 or 1. A scorer named at export (`--scorer`) is compared with each
rater on the items it labelled within the label set.

The items to adjudicate go to `NAME.disagreements.csv`; one that holds what a person wrote (an
`adjudicated` cell filled, or a file of another shape) is kept as it is, and the list goes to the
first of `NAME.disagreements.2.csv`, `.3.csv`, ... that does not.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from harness.analysis.annotation import sheet_cell
from harness.input_files import special_kind
from harness.terminal import shown
from harness.whole import written_whole


@dataclass(frozen=True)
class PairAgreement:
    """Two raters over the items both labelled."""

    first: str
    second: str
    n: int
    agreed: int
    kappa: float | None  # None: undefined (chance agreement is certain) or no items
    low: float | None  # the asymptotic 95% interval, clipped to [-1, 1]
    high: float | None


def cohen(
    first: str,
    second: str,
    a: Mapping[str, str],
    b: Mapping[str, str],
    labels: Sequence[str],
) -> PairAgreement:
    """Cohen's kappa of two raters' labels (by item) over the items both labelled."""
    # Imported here: statsmodels takes most of a second to import, and only this needs it.
    import numpy as np
    from statsmodels.stats.inter_rater import cohens_kappa

    items = [item for item in a if item in b]
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    for item in items:
        table[index[a[item]], index[b[item]]] += 1
    agreed = int(np.trace(table))
    n = len(items)
    chance = (table.sum(axis=1) @ table.sum(axis=0)) / n**2 if n else 1.0
    if math.isclose(chance, 1.0):
        return PairAgreement(first, second, n, agreed, None, None, None)
    with np.errstate(invalid="ignore", divide="ignore"):  # its z test, unused, can be 0 / 0
        result = cohens_kappa(table)
    low, high = max(-1.0, float(result.kappa_low)), min(1.0, float(result.kappa_upp))
    return PairAgreement(first, second, n, agreed, float(result.kappa), low, high)


def fleiss(by_rater: Mapping[str, Mapping[str, str]], labels: Sequence[str]) -> float | None:
    """Fleiss' kappa over the items every rater labelled; None when undefined."""
    import numpy as np
    from statsmodels.stats.inter_rater import fleiss_kappa

    raters = list(by_rater.values())
    items = [item for item in raters[0] if all(item in r for r in raters)]
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(items), len(labels)))
    for row, item in enumerate(items):
        for rater in raters:
            table[row, index[rater[item]]] += 1
    shares = table.sum(axis=0) / table.sum() if items else np.ones(1)
    if not items or math.isclose(float(shares @ shares), 1.0):
        return None
    return float(fleiss_kappa(table))


def disagreements(by_rater: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The items that raters labelled differently, sorted."""
    items = sorted({item for labels in by_rater.values() for item in labels})
    return [
        item
        for item in items
        if len({labels[item] for labels in by_rater.values() if item in labels}) > 1
    ]


def write_disagreements(
    path: Path,
    items: Sequence[str],
    by_rater: Mapping[str, Mapping[str, str]],
    texts: Mapping[str, tuple[str, str]],
) -> None:
    """A sheet of the items to adjudicate (blinded like the raters' sheets): each rater's label
    and an empty `adjudicated` column; written whole."""
    raters = list(by_rater)
    with (
        written_whole(path) as temporary,
        temporary.open("w", encoding="utf-8-sig", newline="") as file,
    ):
        writer = csv.writer(file)
        writer.writerow(["item", "prompt", "answer", *raters, "adjudicated"])
        for item in items:
            prompt, answer = texts.get(item, ("", ""))
            labels = [by_rater[r].get(item, "") for r in raters]
            writer.writerow([item, sheet_cell(prompt), sheet_cell(answer), *labels, ""])


def adjudication_target(first: Path) -> tuple[Path, list[Path]]:
    """Where the items to adjudicate go: `first`, or the first of `first`'s numbered siblings
    (`.2.csv`, ...) that holds nothing a person wrote; with the files kept so, in order."""
    kept: list[Path] = []
    path = first
    while _written_by_hand(path):
        kept.append(path)
        path = first.with_name(f"{first.stem}.{len(kept) + 1}{first.suffix}")
    return path, kept


def _written_by_hand(path: Path) -> bool:
    """Whether `path` holds what a person wrote: an `adjudicated` cell filled (or a cell past
    it), or anything but a disagreements sheet (a file of another shape, a folder, a FIFO)."""
    if not path.exists():
        return False
    if not path.is_file() or special_kind(path) is not None:
        return True
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            rows = csv.reader(file)
            header = next(rows, [])
            if header[:3] != ["item", "prompt", "answer"] or header[-1:] != ["adjudicated"]:
                return True
            return any(cell.strip() for row in rows for cell in row[len(header) - 1 :])
    except (OSError, UnicodeDecodeError, csv.Error):
        return True


def agreement_table(pairs: Sequence[PairAgreement], fleiss_kappa: float | None) -> Table:
    """Per pair: items, agreement, kappa with its 95% interval; Fleiss' kappa in the caption."""
    table = Table(title="agreement (Cohen's kappa, 95% CI)")
    for column in ("raters", "items", "agreed", "kappa", "95% CI"):
        table.add_column(column, justify="left" if column == "raters" else "right")
    for pair in pairs:
        share = f"{pair.agreed:,} ({pair.agreed / pair.n:.0%})" if pair.n else "0"
        if pair.kappa is None:
            kappa, interval = "undefined", "-"
        else:
            kappa, interval = f"{pair.kappa:.3f}", f"{pair.low:.3f} to {pair.high:.3f}"
        raters = shown(f"{pair.first} / {pair.second}")
        table.add_row(raters, f"{pair.n:,}", share, kappa, interval)
    if fleiss_kappa is not None:
        table.caption = f"Fleiss' kappa over all raters: {fleiss_kappa:.3f}"
    return table
