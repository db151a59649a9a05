"""The hallucination figure: per variant, the rate at which it claims that invented items exist
(the scorer's `claims` label on synthetic probes) and at which it denies real ones (`denies` on
real items), each with its 95% Wilson interval (`Stats.hallucination`)."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
from matplotlib.figure import Figure

from harness.analysis.stats import FALSE_DENIAL, HALLUCINATION, PROBE_ITEMS, Stats
from harness.report.figure_text import shown, shown_names
from harness.report.made import WIDTH, Made


def hallucination_figure(
    stats: Stats, scorer: str | None, variants: Collection[str]
) -> Made | None:
    """The view of `scorer` when it has one, else of the first scorer that has; None without a
    view (the statistics' notes say why, where it matters)."""
    viewed = list(dict.fromkeys(r.scorer for r in stats.hallucination))
    if not viewed:
        return None
    chosen = scorer if scorer in viewed else viewed[0]
    rates = [r for r in stats.hallucination if r.scorer == chosen and r.variant in variants]
    measures = [m for m in (HALLUCINATION, FALSE_DENIAL) if any(r.measure == m for r in rates)]
    if not measures:  # none of the variants drawn has a rate
        return None
    drawn = sorted({r.variant for r in rates}, reverse=True)  # the first by name on top
    height = 1.2 + 0.22 * len(drawn)
    figure = Figure(figsize=(WIDTH, height), layout="constrained")
    axes = figure.subplots(1, len(measures), squeeze=False, sharey=True)[0]
    places = np.arange(len(drawn))
    for ax, measure in zip(axes, measures, strict=True):
        cells = {r.variant: r for r in rates if r.measure == measure}
        found = [cells.get(v) for v in drawn]
        value = np.array([np.nan if r is None else r.rate for r in found])
        low = np.array([0.0 if r is None else max(0.0, r.rate - r.low) for r in found])
        high = np.array([0.0 if r is None else max(0.0, r.high - r.rate) for r in found])
        colour = "#b3261e" if measure == HALLUCINATION else "#2f5fb3"
        ax.barh(places, value, 0.6, xerr=[low, high], color=colour, capsize=2, alpha=0.85)
        ax.set_xlim(0, 1)
        ax.grid(axis="y", visible=False)
        label = next(r.label for r in rates if r.measure == measure)
        ax.set_title(f"{measure}\n{shown(label, 24)} on {PROBE_ITEMS[measure]}", loc="left")
        ax.set_xlabel("rate")
    axes[0].set_yticks(places, list(shown_names(drawn).values()))
    caption = (
        f"Per variant ({shown(chosen)}): the share of its answers to synthetic probes that claim "
        "the invented item exists (hallucination), and of its answers to real items that deny "
        "they exist (false denial), with 95% Wilson intervals."
    )
    notes: tuple[str, ...] = ()
    if len(viewed) > 1:
        notes = (f"hallucination: the figure shows {chosen}'s view (--scorer picks another)",)
    return Made(figure, caption, notes)
