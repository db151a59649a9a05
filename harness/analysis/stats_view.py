"""`harness stats` on a terminal: the hallucination view first (when there is one), then per
scorer and label a table of rates with variants as columns, the comparisons, the AUROCs and the
notes. The long form of every table is in `--json` and the export."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from itertools import groupby

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.analysis.stats import (
    FALSE_DENIAL,
    HALLUCINATION,
    PROBE_ITEMS,
    STATUS,
    Comparison,
    ProbeRate,
    Rate,
    Stats,
)
from harness.terminal import say, shown

EVERY_CATEGORY = "(all)"
_NEGATIVE = re.compile(r"(no|not|non)[_-]", re.IGNORECASE)  # a label that says something is not


def show_stats(stats: Stats, console: Console) -> None:
    """Print the hallucination view, the rates, the comparisons, the AUROCs and the notes."""
    paired = f"exact McNemar, Benjamini-Hochberg {stats.family}"
    for scorer, probe_rates in groupby(stats.hallucination, key=lambda r: r.scorer):
        console.print(_probe_table(scorer, list(probe_rates)))
        compared = [c for c in stats.hallucination_comparisons if c.scorer == scorer]
        if compared:
            title = f"{scorer}: hallucination view, paired: {paired}"
            console.print(_comparisons_table(title, compared, {"measure": _measure}))
    split = ", ".join(stats.by) or "category"
    for scorer, rates in groupby(stats.rates, key=lambda r: r.scorer):
        claims = {r.label for r in stats.hallucination if r.scorer == scorer}
        tables = _rates_tables(scorer, list(rates), split, claims)
        for table in tables:
            console.print(table)
        if scorer == STATUS and not tables:
            say(console, f"{STATUS}: no job failed (of {stats.answers:,})")
    if stats.comparisons:
        lead = {"scorer": _scorer, "label": _label}
        if stats.by:
            lead[", ".join(stats.by)] = _split
        console.print(_comparisons_table(f"paired comparisons: {paired}", stats.comparisons, lead))
    if stats.separations:
        console.print(_separations_table(stats))
    for note in stats.notes:
        say(console, f"note: {note}")


def _probe_table(scorer: str, rates: list[ProbeRate]) -> Table:
    """One row per variant: its hallucination and false-denial rates."""
    labels = {r.measure: r.label for r in rates}
    table = Table(title=shown(f"{scorer}: hallucination view, 95% Wilson interval"))
    table.add_column("variant")
    for measure in (HALLUCINATION, FALSE_DENIAL):
        if measure in labels:
            heading = f"{measure}: {labels[measure]} on {PROBE_ITEMS[measure]}"
            table.add_column(shown(heading), justify="right")
    cells = {(r.variant, r.measure): r for r in rates}
    for variant in sorted({r.variant for r in rates}):
        row: list[Text | str] = [shown(variant)]
        for measure in (HALLUCINATION, FALSE_DENIAL):
            if measure in labels:
                rate = cells.get((variant, measure))
                row.append("" if rate is None else _counted(rate))
        table.add_row(*row)
    return table


def _rates_tables(scorer: str, rates: list[Rate], split: str, preferred: set[str]) -> list[Table]:
    """Per label, a table of its rates: variants as columns, categories (or splits) as rows,
    every category last. A scorer of two labels shows one (the other is the rest): one of
    `preferred` (its claims or denies), else one that says something (refusal, not
    no_refusal); the ledger's status shows errors only, and only when there are some."""
    labels = sorted({r.label for r in rates})
    if scorer == STATUS:
        labels = ["error"] if any(r.count for r in rates if r.label == "error") else []
    elif len(labels) == 2:
        ranked = sorted(labels, key=lambda x: (x not in preferred, bool(_NEGATIVE.match(x))))
        labels = ranked[:1]
    variants = sorted({r.variant for r in rates})
    categories = sorted({r.category for r in rates if r.category is not None})
    tables = []
    for label in labels:
        table = Table(title=shown(f"{scorer} = {label}: rate, 95% Wilson interval"))
        table.add_column(split)
        for variant in variants:  # a long name wraps: variants must stay apart
            table.add_column(shown(variant), justify="right", overflow="fold")
        cells = {(r.variant, r.category): r for r in rates if r.label == label}
        for category in (*categories, None):
            row: list[Text | str] = [shown(EVERY_CATEGORY if category is None else category)]
            for variant in variants:
                rate = cells.get((variant, category))
                row.append("" if rate is None else _counted(rate))
            table.add_row(*row, end_section=category == categories[-1] if categories else False)
        tables.append(table)
    return tables


def _comparisons_table(
    title: str, comparisons: list[Comparison], lead: Mapping[str, Callable[[Comparison], str]]
) -> Table:
    """One row per comparison: the `lead` columns (heading: what each shows), then the pair."""
    table = Table(title=title)
    for name in (*lead, "variant a", "variant b"):
        table.add_column(name)
    for name in ("pairs", "rate a", "rate b"):
        table.add_column(name, justify="right")
    for name in ("a only", "b only", "p", "p (BH)", "Cohen's h"):
        table.add_column(name, justify="right")
    for c in comparisons:
        table.add_row(
            *(shown(cell(c)) for cell in lead.values()),
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


def _scorer(c: Comparison) -> str:
    return c.scorer


def _label(c: Comparison) -> str:
    return c.label


def _split(c: Comparison) -> str:
    return c.split or EVERY_CATEGORY


def _measure(c: Comparison) -> str:
    return c.measure or ""


def _counted(rate: Rate | ProbeRate) -> str:
    return f"{rate.rate:.1%} [{rate.low:.1%}, {rate.high:.1%}] {rate.count:,}/{rate.n:,}"


def _p(value: float) -> str:
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"
