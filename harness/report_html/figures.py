"""The report's figures, drawn with matplotlib (its `Figure` objects directly, no pyplot state):
inline SVG for the page (text kept as text: a few KB a figure), and SVG + PNG (300 dpi) files
for a paper. SVGs are reproducible: a fixed `svg.hashsalt` for element ids and no date.

- rates: per label of the chosen scorer, the rate per category (and over all) per variant, with
  the 95% Wilson interval as error bars (`Stats.rates`);
- comparisons: Cohen's h for every pair of variants, BH-adjusted significance marked
  (`Stats.comparisons`);
- distributions: latency of live answers and output tokens per variant;
- timeline: answers and failures finished over time, retries, failed attempts by error type;
- roc: per variant with token logprobs, the ROC curve of each uncertainty measure for the probe
  flag (or the chosen label), each with the AUROC of `Stats.separations`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness.analysis.columns import AnswerColumns
from harness.analysis.stats import PROBE, Stats
from harness.analysis.uncertainty import MEASURES, UNSURE_SIGN
from harness.report_html.read import Rows, Timeline

_STYLE = {
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
_DPI = 300  # PNG files, for print
_WIDTH = 7.0  # inches: a page's text width
_ALL = "(all)"
_SIGNIFICANT = ((0.001, "***"), (0.01, "**"), (0.05, "*"))


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
    """Every figure that the data allows, and a note for each one it does not; with
    `figures_dir`, each is also written there as SVG and PNG."""
    drawn, notes = [], []
    makers = [
        ("rates", lambda: rates_figure(stats, scorer, label)),
        ("comparisons", lambda: comparisons_figure(stats, scorer, label)),
        ("distributions", lambda: distributions_figure(columns, rows)),
        ("timeline", lambda: timeline_figure(timeline)),
        ("roc", lambda: roc_figure(stats, columns, scorer, label)),
    ]
    with matplotlib.rc_context(_STYLE):
        for name, make in makers:
            made = make()
            if isinstance(made, str):
                notes.append(made)
                continue
            figure, caption = made
            drawn.append(Drawn(name, caption, _svg(figure)))
            if figures_dir is not None:
                figure.savefig(figures_dir / f"{name}.svg", metadata={"Date": None})
                figure.savefig(figures_dir / f"{name}.png", dpi=_DPI)
    return drawn, notes


def _svg(figure: Figure) -> str:
    """The figure as an `<svg>` element (no XML prolog), to sit inline in HTML."""
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg") :]


def rates_figure(stats: Stats, scorer: str | None, label: str | None) -> tuple[Figure, str] | str:
    rates = [r for r in stats.rates if r.scorer == (scorer or "(status)")]
    if not rates:
        return f"rates: no rates for {scorer or '(status)'}"
    labels = [label] if label else sorted({r.label for r in rates})
    if scorer is None:
        labels = ["error"]
    variants = sorted({r.variant for r in rates})
    categories = sorted({r.category for r in rates if r.category is not None})
    figure = Figure(figsize=(_WIDTH, 0.5 + 2.0 * len(labels)), layout="constrained")
    axes = figure.subplots(len(labels), 1, squeeze=False, sharex=True)[:, 0]
    cells = {(r.label, r.variant, r.category): r for r in rates}
    places = np.arange(len(categories) + 1)
    width = 0.8 / len(variants)
    for ax, name in zip(axes, labels, strict=True):
        for n, variant in enumerate(variants):
            found = [cells.get((name, variant, c)) for c in [*categories, None]]
            value = np.array([np.nan if r is None else r.rate for r in found])
            # a rate of 0 or 1 may lie a rounding error outside its own interval: no bar below 0
            low = np.array([0.0 if r is None else max(0.0, r.rate - r.low) for r in found])
            high = np.array([0.0 if r is None else max(0.0, r.high - r.rate) for r in found])
            ax.bar(
                places + (n - (len(variants) - 1) / 2) * width,
                value,
                width,
                yerr=[low, high],
                capsize=1.5,
                label=variant,
                error_kw={"elinewidth": 0.6, "capthick": 0.6},
            )
        ax.set_ylim(0, 1)
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(f"rate of {name}")
        ax.set_title(f"{scorer or 'answers that failed'}: {name}", loc="left")
    axes[-1].set_xticks(places, [*categories, _ALL], rotation=20, ha="right")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    what = f"scorer {scorer}" if scorer else "the share of jobs whose latest record failed"
    return figure, f"Rate per category and variant ({what}), with 95% Wilson intervals."


def comparisons_figure(
    stats: Stats, scorer: str | None, label: str | None
) -> tuple[Figure, str] | str:
    compared = [c for c in stats.comparisons if c.scorer == scorer]
    if scorer is None or not compared:
        return "comparisons: no paired comparisons (they need a scorer with two labels or more)"
    chosen = label or compared[0].label
    compared = [c for c in compared if c.label == chosen]
    variants = sorted({c.variant_a for c in compared} | {c.variant_b for c in compared})
    at = {v: n for n, v in enumerate(variants)}
    h = np.full((len(variants), len(variants)), np.nan)
    marks: dict[tuple[int, int], str] = {}
    for c in compared:
        a, b = at[c.variant_a], at[c.variant_b]
        h[a, b], h[b, a] = c.cohens_h, -c.cohens_h
        stars = next((s for limit, s in _SIGNIFICANT if c.p_adjusted <= limit), "")
        marks[(a, b)] = marks[(b, a)] = stars
    size = 1.6 + 0.55 * len(variants)
    figure = Figure(figsize=(min(_WIDTH, size + 2.5), size), layout="constrained")
    ax = figure.subplots()
    reach = max(0.2, float(np.nanmax(np.abs(h))) if np.isfinite(h).any() else 0.2)
    image = ax.imshow(h, cmap="RdBu_r", vmin=-reach, vmax=reach)
    for (a, b), stars in marks.items():
        ax.text(b, a, f"{h[a, b]:+.2f}{stars}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.set_yticks(range(len(variants)), variants)
    ax.grid(False)
    ax.set_title(f"{scorer}: {chosen}, row vs column", loc="left")
    figure.colorbar(image, ax=ax, label="Cohen's h", shrink=0.8)
    caption = (
        f"Cohen's h of the rate of {chosen} ({scorer}), row variant against column variant, on "
        "the items both answered; * ** *** mark Benjamini-Hochberg adjusted exact McNemar "
        "p <= 0.05, 0.01, 0.001 (over every comparison of the report)."
    )
    return figure, caption


def distributions_figure(columns: AnswerColumns, rows: Rows) -> tuple[Figure, str] | str:
    ok, variant = columns.ok, columns.variant
    if not ok.any():
        return "distributions: no answers"
    live = np.frombuffer(rows.live, dtype=np.int8).astype(bool)
    latency = np.frombuffer(rows.latency, dtype=np.float64)
    tokens = np.frombuffer(rows.output_tokens, dtype=np.int32).astype(float)
    names = sorted(columns.variants)
    figure = Figure(figsize=(_WIDTH, 0.8 + 0.3 * len(names)), layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True)
    for ax, values, keep, title in (
        (left, latency, ok & live & np.isfinite(latency), "latency of live answers (s)"),
        (right, tokens, ok & (tokens >= 0), "output tokens per answer"),
    ):
        data = [values[keep & (variant == columns.variants.index(name))] for name in names]
        shown = [n for n, d in enumerate(data) if len(d)]
        if shown:
            ax.boxplot(
                [data[n] for n in shown],
                positions=shown,
                orientation="horizontal",
                showfliers=False,
                widths=0.6,
            )
        ax.set_title(title, loc="left")
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(-0.6, len(names) - 0.4)
    return figure, (
        "Latency of live answers and output tokens per answer, per variant (latest records; "
        "boxes: quartiles; whiskers: 1.5 IQR; outliers not drawn)."
    )


def timeline_figure(timeline: Timeline) -> tuple[Figure, str] | str:
    if not timeline.seconds:
        return "timeline: no result lines"
    ended = _epochs(timeline.seconds)
    start = float(ended.min())
    span = max(float(ended.max()) - start, 1.0)
    unit, scale = ("min", 60.0) if span > 300 else ("s", 1.0)
    edges = np.linspace(0, span / scale, 41)
    at = (ended - start) / scale
    ok = np.frombuffer(timeline.ok, dtype=np.int8).astype(bool)
    retries = np.frombuffer(timeline.retries, dtype=np.int32)
    figure = Figure(figsize=(_WIDTH, 3.6), layout="constrained")
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
    if timeline.error_at:
        errors_at = (_epochs(timeline.error_at) - start) / scale
        kinds = np.array(timeline.error_type)
        for kind in sorted(set(timeline.error_type)):
            counts, _ = np.histogram(errors_at[kinds == kind], edges)
            bottom.bar(edges[:-1], counts, width, bottom=base, align="edge", label=kind)
            base += counts
        bottom.legend(loc="upper right")
    else:
        bottom.text(0.5, 0.5, "no failed attempts", transform=bottom.transAxes, ha="center")
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_ylabel("failed attempts")
    bottom.set_xlabel(f"{unit} since the first result")
    return figure, (
        "Results recorded over time (40 bins), with the retries they took, and every failed "
        "attempt by error type (retried ones placed at their job's record)."
    )


def _epochs(stamps: Sequence[str]) -> np.ndarray:
    """Seconds since the epoch of ISO-8601 UTC timestamps (`2026-11-24T00:27:59.196Z`)."""
    bare = np.array([s.rstrip("Z") for s in stamps], dtype="datetime64[ms]")
    return bare.astype(np.int64) / 1000.0


def roc_figure(
    stats: Stats, columns: AnswerColumns, scorer: str | None, label: str | None
) -> tuple[Figure, str] | str:
    measures, variant = columns.unsure, columns.variant
    known = np.zeros(len(variant), dtype=bool)
    for name in MEASURES:
        known |= np.isfinite(measures[name])
    with_logprobs = sorted(
        name for code, name in enumerate(columns.variants) if (known & (variant == code)).any()
    )
    if not with_logprobs:
        return "roc: no variant has token logprobs"
    target, among, positive = _target(columns, scorer, label)
    auroc = {(s.variant, s.measure): s for s in stats.separations if s.target == target}
    across = min(3, len(with_logprobs))
    lines = -(-len(with_logprobs) // across)
    figure = Figure(figsize=(_WIDTH, 0.4 + 3.2 * lines), layout="constrained")
    axes = figure.subplots(lines, across, squeeze=False).ravel()
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
        ax.set_title(name, loc="left")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_aspect("equal")
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.22), fontsize=6)
    for ax in axes[len(with_logprobs) :]:
        ax.set_visible(False)
    return figure, (
        f"ROC curves of the token-logprob uncertainty measures for predicting {target}, per "
        "variant with logprobs (larger uncertainty: predicted positive); AUROC from "
        "`harness stats`."
    )


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
