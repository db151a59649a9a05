"""The report's figures of the answers themselves (see `figures`): latency and output tokens
per variant, results over time, and the ROC curves of the uncertainty measures."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness.analysis.stats import PROBE, Stats
from harness.analysis.uncertainty import MEASURES, UNSURE_SIGN
from harness.analysis.view_columns import AnswerColumns
from harness.report.figure_text import shown_names
from harness.report.made import WIDTH, Made
from harness.report.read import Rows, Timeline

_MOST_ERROR_TYPES = 7  # the timeline's error types by name; the rest as one
_MOST_ROC = 9  # panels of the ROC figure (3 by 3)


def distributions_figure(
    columns: AnswerColumns, rows: Rows, variants: Collection[str]
) -> Made | str:
    ok, variant = columns.ok, columns.variant
    if not ok.any():
        return "distributions: no answers"
    live = rows.live
    latency = rows.latency
    tokens = rows.output_tokens.astype(float)
    names = sorted(variants)
    height = min(9.0, 0.8 + 0.25 * len(names))
    figure = Figure(figsize=(WIDTH, height), layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True)
    ticks = list(shown_names(names).values())
    for ax, values, keep, title in (
        (left, latency, ok & live & np.isfinite(latency), "latency of live answers (s)"),
        (right, tokens, ok & (tokens >= 0), "output tokens per answer"),
    ):
        data = [values[keep & (variant == columns.variants.index(name))] for name in names]
        shown_at = [n for n, d in enumerate(data) if len(d)]
        if shown_at:
            ax.boxplot(
                [data[n] for n in shown_at],
                positions=shown_at,
                orientation="horizontal",
                showfliers=False,
                widths=0.6,
            )
        ax.set_title(title, loc="left")
        ax.set_yticks(range(len(names)), ticks)
        ax.set_ylim(-0.6, len(names) - 0.4)
    return Made(
        figure,
        "Latency of live answers and output tokens per answer, per variant (latest records; "
        "boxes: quartiles; whiskers: 1.5 IQR; outliers not drawn).",
    )


def timeline_figure(timeline: Timeline) -> Made | str:
    unreadable = timeline.unreadable
    left_out = f"timeline: {unreadable:,} result line(s) left out: no readable timestamp"
    if not len(timeline.seconds):
        return left_out if unreadable else "timeline: no result lines"
    ended = timeline.seconds
    start = float(ended.min())
    span = max(float(ended.max()) - start, 1.0)
    unit, scale = ("min", 60.0) if span > 300 else ("s", 1.0)
    edges = np.linspace(0, span / scale, 41)
    at = (ended - start) / scale
    ok = timeline.ok
    retries = timeline.retries
    figure = Figure(figsize=(WIDTH, 3.6), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    width = edges[1] - edges[0]
    answers, _ = np.histogram(at[ok], edges)
    failures, _ = np.histogram(at[~ok], edges)
    retried, _ = np.histogram(at, edges, weights=retries)
    top.bar(edges[:-1], answers, width, align="edge", label="answers", color="tab:blue")
    top.bar(
        edges[:-1],
        failures,
        width,
        bottom=answers,
        align="edge",
        label="failed jobs",
        color="tab:red",
    )
    top.plot(edges[:-1] + width / 2, retried, color="tab:orange", label="retries", lw=1.2)
    top.set_ylabel("per bin")
    top.set_title("results recorded over time (every line, superseded ones too)", loc="left")
    top.legend(loc="upper right")
    base = np.zeros(len(edges) - 1)
    if timeline.error_type:
        errors_at = (timeline.error_at - start) / scale
        for name, chosen in _error_kinds(timeline.error_type):
            counts, _ = np.histogram(errors_at[chosen], edges)
            bottom.bar(edges[:-1], counts, width, bottom=base, align="edge", label=name)
            base += counts
        bottom.legend(loc="upper right")
    else:
        bottom.text(0.5, 0.5, "no failed attempts", transform=bottom.transAxes, ha="center")
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_ylabel("failed attempts")
    bottom.set_xlabel(f"{unit} since the first result")
    caption = (
        "Results recorded over time (40 bins), with the retries they took, and every failed "
        "attempt by error type (retried ones placed at their job's record)."
    )
    return Made(figure, caption, (left_out,) if unreadable else ())


def _error_kinds(error_type: list[str]) -> list[tuple[str, np.ndarray]]:
    """The timeline's error types, each as drawn and which failed attempts it has: the
    `_MOST_ERROR_TYPES` most frequent by name, then the others as one."""
    counts = Counter(error_type)
    ranked = sorted(counts, key=lambda kind: (-counts[kind], kind))
    kept = sorted(ranked[:_MOST_ERROR_TYPES])
    kinds = np.array(error_type)
    names = shown_names(kept, 24)
    found = [(names[kind], kinds == kind) for kind in kept]
    if len(ranked) > len(kept):
        others = ~np.isin(kinds, kept)
        found.append((f"{len(ranked) - len(kept)} other types", others))
    return found


def roc_figure(
    stats: Stats,
    columns: AnswerColumns,
    scorer: str | None,
    label: str | None,
    variants: Collection[str],
) -> Made | str:
    measures, variant = columns.unsure, columns.variant
    known = np.zeros(len(variant), dtype=bool)
    for name in MEASURES:
        known |= np.isfinite(measures[name])
    with_logprobs = sorted(
        name
        for code, name in enumerate(columns.variants)
        if name in variants and (known & (variant == code)).any()
    )
    if not with_logprobs:
        return "roc: no variant has token logprobs"
    notes: tuple[str, ...] = ()
    if len(with_logprobs) > _MOST_ROC:
        notes = (
            f"roc: the first {_MOST_ROC} of the {len(with_logprobs)} variants with token "
            "logprobs by name drawn (the Statistics tab has every AUROC)",
        )
        with_logprobs = with_logprobs[:_MOST_ROC]
    target, among, positive = _target(columns, scorer, label)
    auroc = {(s.variant, s.measure): s for s in stats.separations if s.target == target}
    across = min(3, len(with_logprobs))
    lines = -(-len(with_logprobs) // across)
    figure = Figure(figsize=(WIDTH, 0.4 + 3.2 * lines), layout="constrained")
    axes = figure.subplots(lines, across, squeeze=False).ravel()
    titles = shown_names(with_logprobs)
    for ax, name in zip(axes, with_logprobs, strict=False):
        mine = among & (variant == columns.variants.index(name))
        for measure in MEASURES:
            unsure = UNSURE_SIGN[measure] * measures[measure][mine]
            curve = roc_points(unsure, positive[mine])
            if curve is None:
                continue
            found = auroc.get((name, measure))
            area = "" if found is None else f" (AUROC {found.auroc:.2f})"
            ax.plot(*_thinned(*curve), lw=1.2, label=f"{measure}{area}")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.6, ls="--")
        ax.set_title(titles[name], loc="left")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_aspect("equal")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.22), fontsize=6)
        else:
            ax.text(0.5, 0.3, "no positive and negative\nanswers", ha="center", fontsize=7)
    for ax in axes[len(with_logprobs) :]:
        ax.set_visible(False)
    caption = (
        f"ROC curves of the token-logprob uncertainty measures for predicting {target}, per "
        "variant with logprobs (larger uncertainty: predicted positive); AUROC from "
        "`harness stats`."
    )
    return Made(figure, caption, notes)


def _target(
    columns: AnswerColumns, scorer: str | None, label: str | None
) -> tuple[str, np.ndarray, np.ndarray]:
    """The ROC's target: the chosen scorer's label when one is asked for, else the probe flag;
    with the answers it is known for and whether each is positive."""
    if scorer is not None and label is not None and label in columns.labels.get(scorer, []):
        codes = columns.label[scorer]
        return f"{scorer}={label}", codes >= 0, codes == columns.labels[scorer].index(label)
    return PROBE, columns.ok, columns.probe


def _thinned(x: np.ndarray, y: np.ndarray, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A curve of many points drawn with at most about `points` of them (its ends kept): the
    SVG of 25,000 steps is 100 KB and looks the same."""
    if len(x) <= points:
        return x, y
    keep = np.unique(np.r_[np.linspace(0, len(x) - 1, points).astype(int), len(x) - 1])
    return x[keep], y[keep]


def roc_points(unsure: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The ROC curve (false positive rates, true positive rates) of `unsure` (larger: predicted
    positive) over the answers where it is known, one point per distinct threshold (ties make
    one step, so the area under it is the AUROC with ties counting half); None without a
    positive and a negative."""
    known = np.isfinite(unsure)
    values, truth = unsure[known], positive[known]
    positives = int(truth.sum())
    negatives = len(truth) - positives
    if not positives or not negatives:
        return None
    order = np.argsort(-values, kind="stable")
    values, truth = values[order], truth[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(values)), len(values) - 1]
    hits = np.cumsum(truth)[last_of_each]
    false = last_of_each + 1 - hits
    return np.r_[0.0, false / negatives], np.r_[0.0, hits / positives]
