"""`harness stats` on a terminal: rates with their intervals, comparisons, uncertainty."""

from __future__ import annotations

from itertools import groupby

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.analysis.stats import Rate, Stats
from harness.terminal import say, shown

EVERY_CATEGORY = "(all)"


def show_stats(stats: Stats, console: Console) -> None:
    """Print one table of rates per scorer, then the comparisons, the AUROCs and the notes."""
    split = ", ".join(stats.by) or "category"
    for scorer, rates in groupby(stats.rates, key=lambda r: r.scorer):
        console.print(_rates_table(scorer, list(rates), split))
    if stats.comparisons:
        console.print(_comparisons_table(stats))
    if stats.separations:
        console.print(_separations_table(stats))
    for note in stats.notes:
        say(console, f"note: {note}")


def _rates_table(scorer: str, rates: list[Rate], split: str) -> Table:
    labels = sorted({r.label for r in rates})
    table = Table(title=shown(f"{scorer}: rate per label, 95% Wilson interval"))
    for name in ("variant", split, "n"):
        table.add_column(name, justify="right" if name == "n" else "left")
    for label in labels:
        table.add_column(shown(label), justify="right")
    cells = {(r.variant, r.category, r.label): r for r in rates}
    rows = dict.fromkeys((r.variant, r.category, r.n) for r in rates)
    for variant, category, n in rows:
        line: list[Text | str] = [
            shown(variant),
            shown(EVERY_CATEGORY if category is None else category),
            f"{n:,}",
        ]
        for label in labels:
            rate = cells.get((variant, category, label))
            line.append("" if rate is None else _interval(rate.rate, rate.low, rate.high))
        table.add_row(*line, end_section=category is None)
    return table


def _comparisons_table(stats: Stats) -> Table:
    table = Table(title=f"paired comparisons: exact McNemar, Benjamini-Hochberg {stats.family}")
    split = ", ".join(stats.by)
    for name in ("scorer", "label", *([split] if split else []), "variant a", "variant b"):
        table.add_column(name)
    for name in ("pairs", "rate a", "rate b"):
        table.add_column(name, justify="right")
    for name in ("a only", "b only", "p", "p (BH)", "Cohen's h"):
        table.add_column(name, justify="right")
    for c in stats.comparisons:
        within = [shown(c.split or EVERY_CATEGORY)] if split else []
        table.add_row(
            shown(c.scorer),
            shown(c.label),
            *within,
            shown(c.variant_a),
            shown(c.variant_b),
            f"{c.pairs:,}",
            f"{c.rate_a:.1%}",
            f"{c.rate_b:.1%}",
            f"{c.a_only:,}",
            f"{c.b_only:,}",
            _p(c.p_value),
            _p(c.p_adjusted),
            f"{c.cohens_h:+.3f}",
        )
    return table


def _separations_table(stats: Stats) -> Table:
    title = "uncertainty from token logprobs: AUROC for the target"
    if stats.resamples:
        title += f", 95% bootstrap interval ({stats.resamples:,} resamples, seed {stats.seed})"
    table = Table(title=title)
    for name in ("variant", "measure", "target", "positives", "negatives", "AUROC"):
        table.add_column(name, justify="right" if name in ("positives", "negatives") else "left")
    for s in stats.separations:
        auroc = f"{s.auroc:.3f}"
        if s.low is not None and s.high is not None:
            auroc += f" [{s.low:.3f}, {s.high:.3f}]"
        counts = f"{s.positives:,}", f"{s.negatives:,}"
        table.add_row(shown(s.variant), s.measure, shown(s.target), *counts, auroc)
    return table


def _interval(rate: float, low: float, high: float) -> str:
    return f"{rate:.1%} [{low:.1%}, {high:.1%}]"


def _p(value: float) -> str:
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"
