"""The report's figures, drawn with matplotlib (its `Figure` objects directly, no pyplot state):
inline SVG for the page (text kept as text: a few KB a figure), and SVG + PNG (300 dpi) files
for a paper. SVGs are reproducible: a fixed `svg.hashsalt` for element ids and no date.

- hallucination: per variant, its hallucination and false-denial rates (`Stats.hallucination`,
  see `figures_probes`);
- rates: per label of the chosen scorer, the rate per category (and over all) per variant, with
  the 95% Wilson interval as error bars (`Stats.rates`);
- comparisons: Cohen's h for every pair of variants, BH-adjusted significance marked
  (`Stats.comparisons`): a heat map per split (`--by`), or per measure of the hallucination view;
- distributions: latency of live answers and output tokens per variant;
- timeline: answers and failures finished over time, retries, failed attempts by error type;
- roc: per variant with token logprobs, the ROC curve of each uncertainty measure for the probe
  flag (or the chosen label), each with the AUROC of `Stats.separations`.

Every figure stays readable and bounded in size however many variants, categories and labels
a run has, and however long their names: names are drawn scrubbed and shortened
(`figure_text`), at most `MOST_VARIANTS` variants, the rates of the categories with the most
answers, the heatmap's numbers only for a few variants, capped sizes; each figure's notes say
what it left out (the Statistics tab has everything). Text is scrubbed before it is drawn, so
neither the SVG nor the PNG holds a secret; the SVG is scrubbed again as a whole.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from harness.analysis.stats import PROBE_ITEMS, Comparison, Rate, Stats
from harness.analysis.view_columns import AnswerColumns
from harness.report.figure_files import FIGURES, MAKER
from harness.report.figure_text import shown, shown_names
from harness.report.figures_answers import distributions_figure, roc_figure, timeline_figure
from harness.report.figures_probes import hallucination_figure
from harness.report.made import WIDTH, Made
from harness.report.read import Rows, Timeline
from harness.scrub import SECRETS

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

_STYLE: dict[RcKeyType, Any] = {
    "svg.hashsalt": "harness-report",  # element ids from content, not from a random salt
    "svg.fonttype": "none",  # text as text: small, searchable, editable
    "text.parse_math": False,  # a `$` in a variant's name is no formula
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 7,
    "legend.frameon": False,
}
# A glyph the font lacks is drawn as a box; matplotlib's warning about it is no news to the user.
_GLYPH_MISSING = r"Glyph .* missing from font"
_DPI = 300  # PNG files, for print
_ALL = "(all)"
_SIGNIFICANT = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
MOST_VARIANTS = 30  # the figures draw the first so many variants by name
_MOST_BARS = 120  # bars in a panel of the rates figure: its categories fit the variants
_MOST_CATEGORIES = 12
_MOST_LABELS = 6  # panels of the rates figure: the labels given most
_ANNOTATED = 8  # the heatmap writes Cohen's h in its cells up to so many variants (stars above)
_MOST_SPLITS = 6  # heat maps of the comparisons figure, one per split


@dataclass(frozen=True)
class Drawn:
    """One figure: its file name stem, caption, and inline SVG."""

    name: str
    caption: str
    svg: str


def draw_all(
    stats: Stats,
    columns: AnswerColumns,
    rows: Rows,
    timeline: Timeline,
    *,
    scorer: str | None,
    label: str | None,
    figures_dir: Path | None = None,
) -> tuple[list[Drawn], list[str]]:
    """Every figure that the data allows, and notes: what each left out, and why one that is
    not drawn is not; with `figures_dir`, each is also written there as SVG and PNG."""
    names = sorted(columns.variants)
    variants = names[:MOST_VARIANTS]
    notes = []
    if len(names) > len(variants):
        notes.append(
            f"figures: the first {len(variants)} of the {len(names)} variants by name drawn "
            "(--variant picks others; the Statistics tab has them all)"
        )
    makers: list[Callable[[], Made | str | None]] = [
        lambda: hallucination_figure(stats, scorer, variants),
        lambda: rates_figure(stats, scorer, label, variants),
        lambda: comparisons_figure(stats, scorer, label, variants),
        lambda: distributions_figure(columns, rows, variants),
        lambda: timeline_figure(timeline),
        lambda: roc_figure(stats, columns, scorer, label, variants),
    ]
    drawn = []
    with matplotlib.rc_context(_STYLE), warnings.catch_warnings():
        warnings.filterwarnings("ignore", _GLYPH_MISSING, UserWarning)
        for name, make in zip(FIGURES, makers, strict=True):
            made = make()
            if made is None:
                continue
            if isinstance(made, str):
                notes.append(made)
                continue
            notes.extend(made.notes)
            svg = SECRETS.scrub(_svg(made.figure))
            drawn.append(Drawn(name, SECRETS.scrub(made.caption), svg[svg.index("<svg") :]))
            if figures_dir is not None:
                (figures_dir / f"{name}.svg").write_text(svg, encoding="utf-8")
                made.figure.savefig(
                    figures_dir / f"{name}.png", dpi=_DPI, metadata={"Software": MAKER}
                )
    return drawn, notes


def _svg(figure: Figure) -> str:
    """The figure as an SVG document."""
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None, "Creator": MAKER})
    return out.getvalue()


def rates_figure(
    stats: Stats, scorer: str | None, label: str | None, variants: Collection[str]
) -> Made | str:
    status = scorer or "(status)"
    rates = [r for r in stats.rates if r.scorer == status and r.variant in variants]
    if not rates:
        return f"rates: no rates for {status}"
    notes: list[str] = []
    labels = ["error"] if scorer is None else [label] if label else _most_given(rates, notes)
    drawn = sorted({r.variant for r in rates})
    categories = _most_answered(rates, labels[0], len(drawn), notes)
    legend_rows = -(-len(drawn) // 3)
    height = 0.8 + 1.9 * len(labels) + 0.14 * legend_rows
    figure = Figure(figsize=(WIDTH, height), layout="constrained")
    axes = figure.subplots(len(labels), 1, squeeze=False, sharex=True)[:, 0]
    cells = {(r.label, r.variant, r.category): r for r in rates}
    places = np.arange(len(categories) + 1)
    width = 0.8 / len(drawn)
    legend = shown_names(drawn)
    for ax, name in zip(axes, labels, strict=True):
        for n, variant in enumerate(drawn):
            found = [cells.get((name, variant, c)) for c in [*categories, None]]
            value = np.array([np.nan if r is None else r.rate for r in found])
            # a rate of 0 or 1 may lie a rounding error outside its own interval: no bar below 0
            low = np.array([0.0 if r is None else max(0.0, r.rate - r.low) for r in found])
            high = np.array([0.0 if r is None else max(0.0, r.high - r.rate) for r in found])
            ax.bar(
                places + (n - (len(drawn) - 1) / 2) * width,
                value,
                width,
                yerr=[low, high],
                capsize=min(1.5, 30 / len(drawn)),
                label=legend[variant],
                error_kw={"elinewidth": 0.6, "capthick": 0.6},
            )
        ax.set_ylim(0, 1)
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(f"rate of {shown(name, 20)}")
        ax.set_title(f"{shown(scorer or 'answers that failed')}: {shown(name)}", loc="left")
    ticks = [*shown_names(categories, 24).values(), _ALL]
    axes[-1].set_xticks(places, ticks, rotation=30, ha="right", rotation_mode="anchor")
    split = ", ".join(stats.by) or "category"
    axes[-1].set_xlabel(shown(split))
    figure.legend(
        handles=axes[0].get_legend_handles_labels()[0],
        loc="outside lower center",
        ncols=min(3, len(drawn)),
    )
    what = f"scorer {scorer}" if scorer else "the share of jobs whose latest record failed"
    caption = f"Rate per {split} and variant ({what}), with 95% Wilson intervals."
    return Made(figure, caption, tuple(notes))


def _most_given(rates: list[Rate], notes: list[str]) -> list[str]:
    """The labels the rates figure draws, by name: the `_MOST_LABELS` given most often."""
    given: Counter[str] = Counter()
    for r in rates:
        given[r.label] += r.count if r.category is None else 0
    ranked = sorted(given, key=lambda name: (-given[name], name))
    if len(ranked) > _MOST_LABELS:
        notes.append(
            f"rates: the {_MOST_LABELS} labels given most of {rates[0].scorer}'s {len(ranked)} "
            "drawn (--label picks one; the Statistics tab has them all)"
        )
    return sorted(ranked[:_MOST_LABELS])


def _most_answered(rates: list[Rate], label: str, variants: int, notes: list[str]) -> list[str]:
    """The categories the rates figure draws, by name: those with the most answers, as many
    as leave room for every variant's bar (at most `_MOST_BARS` a panel)."""
    answers: Counter[str] = Counter()
    for r in rates:
        if r.label == label and r.category is not None:
            answers[r.category] += r.n
    ranked = sorted(answers, key=lambda category: (-answers[category], category))
    room = min(_MOST_CATEGORIES, max(0, _MOST_BARS // variants - 1))
    if len(ranked) > room:
        notes.append(
            f"rates: {len(ranked) - room:,} of {len(ranked):,} categories left out of the "
            f"figure, which draws the {room} with the most answers and {_ALL} (the Statistics "
            "tab has every one)"
        )
    return sorted(ranked[:room])


def comparisons_figure(
    stats: Stats, scorer: str | None, label: str | None, variants: Collection[str]
) -> Made | str:
    """Cohen's h of every pair of variants as a heat map: one per split (`--by`), or one per
    measure of the scorer's hallucination view, else one over every item."""
    if scorer is None:
        return "comparisons: no paired comparisons: no scores to compare"
    panels, notes = _panels(stats, scorer, label, variants)
    if not panels:
        why = stats.uncompared.get(scorer, "none between the variants drawn")
        return f"comparisons: no paired comparisons of {scorer}: {why}"
    names = sorted({v for _, cs in panels for c in cs for v in (c.variant_a, c.variant_b)})
    at = {v: n for n, v in enumerate(names)}
    maps = []
    for _, compared in panels:
        h = np.full((len(names), len(names)), np.nan)
        marks: dict[tuple[int, int], str] = {}
        for c in compared:
            a, b = at[c.variant_a], at[c.variant_b]
            h[a, b], h[b, a] = c.cohens_h, -c.cohens_h
            stars = next((s for limit, s in _SIGNIFICANT if c.p_adjusted <= limit), "")
            marks[(a, b)] = marks[(b, a)] = stars
        maps.append((h, marks))
    side = min(6.0, 2.0 + 0.45 * len(names))
    figure = Figure(figsize=(min(WIDTH, side + 2.5), len(panels) * side), layout="constrained")
    axes = figure.subplots(len(panels), 1, squeeze=False).ravel()
    every = np.concatenate([h.ravel() for h, _ in maps])
    reach = max(0.2, float(np.nanmax(np.abs(every))) if np.isfinite(every).any() else 0.2)
    annotated = len(names) <= _ANNOTATED
    ticks = list(shown_names(names).values())
    size = min(7.0, 250 / len(names))  # points: a row of a 3.5-inch square holds its name
    turned = 30 if annotated else 90  # slanted names of many columns would overlap
    for ax, (title, _), (h, marks) in zip(axes, panels, maps, strict=True):
        image = ax.imshow(h, cmap="RdBu_r", vmin=-reach, vmax=reach)
        for (a, b), stars in marks.items():
            text = f"{h[a, b]:+.2f}{stars}" if annotated else stars
            if text:
                ax.text(b, a, text, ha="center", va="center", fontsize=7 if annotated else 5)
        ax.set_xticks(range(len(names)), ticks, rotation=turned, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(len(names)), ticks)
        ax.tick_params(labelsize=size)
        ax.grid(False)
        ax.set_title(f"{shown(scorer)}: {title}, row vs column", loc="left")
    figure.colorbar(image, ax=list(axes), label="Cohen's h", shrink=0.6, aspect=25)
    numbers = "" if annotated else " (the values are in the Statistics tab)"
    what = "; ".join(title for title, _ in panels)
    caption = (
        f"Cohen's h ({scorer}: {what}), row variant against column variant, on the items both "
        f"answered{numbers}; * ** *** mark Benjamini-Hochberg adjusted exact McNemar p <= 0.05, "
        f"0.01, 0.001 ({stats.family})."
    )
    return Made(figure, caption, tuple(notes))


def _panels(
    stats: Stats, scorer: str, label: str | None, variants: Collection[str]
) -> tuple[list[tuple[str, list[Comparison]]], list[str]]:
    """The heat maps to draw, each its title and comparisons (of the variants drawn): one per
    split with `--by` (those with the most pairs), else one per measure of the hallucination
    view (the one of `label` when asked for), else one of `label` (or the first) over every
    item; and notes of what is left out."""

    def drawn(c: Comparison) -> bool:
        return c.scorer == scorer and c.variant_a in variants and c.variant_b in variants

    compared = [c for c in stats.comparisons if drawn(c)]
    chosen = label or (compared[0].label if compared else None)
    if stats.by and chosen is not None:
        splits: dict[str, list[Comparison]] = {}
        for c in compared:
            if c.label == chosen and c.split is not None:
                splits.setdefault(c.split, []).append(c)
        ranked = sorted(splits, key=lambda s: (-sum(c.pairs for c in splits[s]), s))
        notes = []
        if len(ranked) > _MOST_SPLITS:
            notes.append(
                f"comparisons: the {_MOST_SPLITS} splits with the most pairs of "
                f"{len(ranked)} drawn (the Statistics tab has every one)"
            )
        field = f"{stats.by[0]} = " if len(stats.by) == 1 else ""
        return [(f"{chosen}, {field}{s}", splits[s]) for s in sorted(ranked[:_MOST_SPLITS])], notes
    view = [c for c in stats.hallucination_comparisons if drawn(c) and label in (None, c.label)]
    if view:
        by_measure: dict[str, list[Comparison]] = {}
        for c in view:
            by_measure.setdefault(str(c.measure), []).append(c)
        return [
            (f"{measure}\n({shown(cs[0].label, 24)} on {PROBE_ITEMS[measure]})", cs)
            for measure, cs in by_measure.items()
        ], []
    overall = [c for c in compared if c.label == chosen and c.split is None]
    return ([(str(chosen), overall)] if overall else []), []
