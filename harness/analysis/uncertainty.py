"""Per-answer uncertainty from token logprobs, and how well it predicts a yes/no target (AUROC).

Measures, NaN where an answer has no logprobs or lacks what the measure needs:

- `first_token_margin`: P(top-1) - P(top-2) at the first generated position (low: unsure);
- `mean_topk_entropy`: the entropy (nats) of each position's top-k alternatives, renormalised to
  sum to 1 (`scipy.stats.entropy`), averaged over the positions (high: unsure);
- `sequence_logprob`: the sum of the chosen tokens' logprobs (low: unsure; NaN when one is
  missing).

AUROC is the chance that a positive answer (a synthetic probe, or one given a chosen label) is
less certain than a negative one, ties counting half: the Mann-Whitney U of the measure, turned so
that larger means less certain, over (positives, negatives), divided by n1 n2
(`scipy.stats.mannwhitneyu`). Its 95% interval is a percentile bootstrap (`scipy.stats.bootstrap`)
that resamples positives and negatives apart (class sizes fixed) from a fixed seed.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from harness.analysis.positions import MalformedLogprobs, flatten

MEASURES = ("first_token_margin", "mean_topk_entropy", "sequence_logprob")
# Each measure's sign that makes larger mean less certain.
UNSURE_SIGN = {"first_token_margin": -1.0, "mean_topk_entropy": 1.0, "sequence_logprob": -1.0}

# Numbers held at once by one bootstrap batch (resamples x (answers + distinct values)).
_BATCH_CELLS = 4_000_000


def measure(batch: Sequence[Sequence[dict[str, Any]] | None]) -> dict[str, np.ndarray]:
    """The three measures of each answer's `token_logprobs` (None: no logprobs), computed over
    the whole batch at once; MalformedLogprobs names an answer of the wrong shape."""
    positions = flatten(batch)
    count = len(batch)
    try:
        chosen = np.asarray(positions.logprob, dtype=float)  # None: NaN
        alternatives = np.asarray(positions.top_logprobs, dtype=float)
    except (TypeError, ValueError):
        return measure_one_by_one(batch)
    counts = np.asarray(positions.counts, dtype=np.intp)
    owner = np.repeat(np.arange(count), counts)
    sequence = np.bincount(owner, chosen, minlength=count).astype(float)  # NaN: one missing
    sequence[counts == 0] = np.nan
    table = _alternatives_table(np.asarray(positions.widths, dtype=np.intp), alternatives)
    return {
        "first_token_margin": _first_margin(table, counts),
        "mean_topk_entropy": _mean_entropy(table, owner, count),
        "sequence_logprob": sequence,
    }


def measure_one_by_one(batch: Sequence[Sequence[dict[str, Any]] | None]) -> dict[str, np.ndarray]:
    """`measure`, answer by answer, to name the one whose logprobs are not numbers."""
    for index, answer in enumerate(batch):
        values = flatten([answer])
        try:
            np.asarray(values.logprob, dtype=float)
            np.asarray(values.top_logprobs, dtype=float)
        except (TypeError, ValueError) as exc:
            raise MalformedLogprobs(index, f"a logprob is not a number: {exc}") from None
    raise MalformedLogprobs(0, "unreadable")  # every answer reads alone: cannot happen


def _alternatives_table(widths: np.ndarray, alternatives: np.ndarray) -> np.ndarray:
    """One row per position, its alternatives' logprobs in the first columns, -inf after them
    (and where a logprob was not given)."""
    table = np.full((len(widths), max(1, int(widths.max(initial=0)))), -np.inf)
    rows = np.repeat(np.arange(len(widths)), widths)
    columns = np.arange(len(alternatives)) - np.repeat(np.cumsum(widths) - widths, widths)
    table[rows, columns] = np.where(np.isnan(alternatives), -np.inf, alternatives)
    return table


def _first_margin(table: np.ndarray, counts: np.ndarray) -> np.ndarray:
    margin = np.full(len(counts), np.nan)
    has = counts > 0
    if table.shape[1] < 2 or not has.any():
        return margin
    first = (np.cumsum(counts) - counts)[has]
    best = np.sort(table[first], axis=1)[:, -2:]
    known = np.isfinite(best[:, 0])  # a second alternative was given
    margin[np.flatnonzero(has)[known]] = np.exp(best[known, 1]) - np.exp(best[known, 0])
    return margin


def _mean_entropy(table: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        entropy = stats.entropy(np.exp(table), axis=1)  # a row of no alternatives: NaN
    known = np.isfinite(entropy)
    total = np.bincount(owner[known], entropy[known], minlength=count)
    positions = np.bincount(owner[known], minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(positions > 0, total / positions, np.nan)


@dataclass(frozen=True)
class Auroc:
    """How well a measure's uncertainty separates positives from negatives."""

    positives: int
    negatives: int
    auroc: float
    low: float | None  # the 95% bootstrap interval; None when it cannot be drawn
    high: float | None


def auroc(unsure: np.ndarray, positive: np.ndarray, *, resamples: int, seed: int) -> Auroc | None:
    """The AUROC of `unsure` (larger: less certain) for `positive`, over the answers where it is
    known; None without a positive or a negative. `resamples` 0 draws no interval."""
    known = np.isfinite(unsure)
    yes, no = unsure[known & positive], unsure[known & ~positive]
    if not len(yes) or not len(no):
        return None
    point = stats.mannwhitneyu(yes, no).statistic / (len(yes) * len(no))
    low = high = None
    if resamples and len(yes) > 1 and len(no) > 1:
        low, high = _bootstrap_interval(yes, no, resamples, seed)
    return Auroc(len(yes), len(no), float(point), low, high)


def _bootstrap_interval(
    yes: np.ndarray, no: np.ndarray, resamples: int, seed: int
) -> tuple[float | None, float | None]:
    distinct, codes = np.unique(np.concatenate([yes, no]), return_inverse=True)
    statistic = functools.partial(auroc_of_codes, levels=len(distinct))
    batch = max(1, min(resamples, _BATCH_CELLS // (len(codes) + len(distinct))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate sample gives NaN, reported as no interval
        interval = stats.bootstrap(
            (codes[: len(yes)], codes[len(yes) :]),
            statistic,
            n_resamples=resamples,
            batch=batch,
            vectorized=True,
            paired=False,
            method="percentile",
            rng=np.random.default_rng(seed),
        ).confidence_interval
    low, high = float(interval.low), float(interval.high)
    return (low, high) if math.isfinite(low) and math.isfinite(high) else (None, None)


def auroc_of_codes(yes: np.ndarray, no: np.ndarray, *, levels: int, axis: int = -1) -> np.ndarray:
    """U / (n1 n2) of samples coded as ranks 0..levels-1, for every resample of a batch at once:
    the count of positives on each code times the negatives below it, plus half those on it.
    Equal to `mannwhitneyu(...).statistic / (n1 n2)` on the values (a test pins this), without a
    sort per resample: about 1.5 ms against 40 ms per resample of 250,000 answers here, so that a
    1,000-resample interval takes seconds, not a minute."""
    yes, no = np.moveaxis(yes, axis, -1), np.moveaxis(no, axis, -1)
    shape = yes.shape[:-1]
    yes_counts = _counts(yes.reshape(-1, yes.shape[-1]), levels)
    no_counts = _counts(no.reshape(-1, no.shape[-1]), levels)
    below = np.cumsum(no_counts, axis=1) - 0.5 * no_counts
    wins = np.einsum("ij,ij->i", yes_counts, below)
    return (wins / (yes.shape[-1] * no.shape[-1])).reshape(shape)


def _counts(codes: np.ndarray, levels: int) -> np.ndarray:
    """How often each code occurs in each row."""
    rows = len(codes)
    shifted = codes + (np.arange(rows) * levels)[:, None]
    return np.bincount(shifted.ravel(), minlength=rows * levels).reshape(rows, levels)
