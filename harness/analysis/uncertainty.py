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
(`scipy.stats.mannwhitneyu`'s, to the bit). Its 95% interval is a percentile bootstrap
(`scipy.stats.bootstrap`) that resamples positives and negatives apart (class sizes fixed) from a
fixed seed; measures known for the same answers are read off the same resamples.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import special

from harness.analysis.positions import MalformedLogprobs, Positions, flatten

MEASURES = ("first_token_margin", "mean_topk_entropy", "sequence_logprob")
# Each measure's sign that makes larger mean less certain.
UNSURE_SIGN = {"first_token_margin": -1.0, "mean_topk_entropy": 1.0, "sequence_logprob": -1.0}

# Numbers one bootstrap batch holds (resamples x answers): few enough to stay in the CPU caches
# (1,000 resamples of 250,000 answers, three measures, two such on 2 threads: 4.8 s, against
# 6.2 s at 1,000,000 and 9.0 s at 4,000,000).
_BATCH_CELLS = 250_000


def measure(
    batch: Sequence[Sequence[dict[str, Any]] | None], positions: Positions | None = None
) -> dict[str, np.ndarray]:
    """The three measures of each answer's `token_logprobs` (None: no logprobs), computed over
    the whole batch at once (from `positions`, its flattened form, when given);
    MalformedLogprobs names an answer of the wrong shape."""
    positions = flatten(batch, texts=False) if positions is None else positions
    try:
        chosen = np.asarray(positions.logprob, dtype=float)  # None: NaN
        alternatives = np.asarray(positions.top_logprobs, dtype=float)
    except (TypeError, ValueError):
        return measure_one_by_one(batch)
    counts = np.asarray(positions.counts, dtype=np.intp)
    return measure_flat(counts, chosen, np.asarray(positions.widths, dtype=np.intp), alternatives)


def measure_flat(
    counts: np.ndarray, chosen: np.ndarray, widths: np.ndarray, alternatives: np.ndarray
) -> dict[str, np.ndarray]:
    """The three measures of answers given flat: per answer its positions' count, per position
    the chosen token's logprob (NaN: none) and its alternatives' count, per alternative its
    logprob (NaN: none)."""
    count = len(counts)
    owner = np.repeat(np.arange(count), counts)
    sequence = np.bincount(owner, chosen, minlength=count).astype(float)  # NaN: one missing
    sequence[counts == 0] = np.nan
    table = _alternatives_table(widths, alternatives)
    return {
        "first_token_margin": _first_margin(table, counts),
        "mean_topk_entropy": _mean_entropy(table, owner, count),
        "sequence_logprob": sequence,
    }


def measure_arrow(answers: pa.Array | pa.ChunkedArray) -> dict[str, np.ndarray]:
    """The three measures of each answer's token logprobs as Arrow holds them (per answer a list
    of positions, null: none): each position's `logprob`, and its alternatives' logprobs as
    `top_logprobs` (the view's form) or as the second of each `top` pair (the ledger's form: a
    pair that has none, NaN); a null logprob is NaN."""
    if isinstance(answers, pa.ChunkedArray):
        answers = answers.combine_chunks()
    positions = pc.list_flatten(answers)
    names = {positions.type.field(i).name for i in range(positions.type.num_fields)}
    if "top_logprobs" in names:
        tops = pc.struct_field(positions, "top_logprobs")
        alternatives = _numbers(pc.fill_null(pc.list_flatten(tops), math.nan), float)
    else:
        tops = pc.struct_field(positions, "top")
        alternatives = _seconds(pc.list_flatten(tops))
    return measure_flat(
        _numbers(pc.fill_null(pc.list_value_length(answers), 0), np.intp),
        _numbers(pc.fill_null(pc.struct_field(positions, "logprob"), math.nan), float),
        _numbers(pc.fill_null(pc.list_value_length(tops), 0), np.intp),
        alternatives,
    )


def _numbers(array: pa.Array, dtype: type) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype)


def _seconds(pairs: pa.ListArray) -> np.ndarray:
    """The second number of each pair, NaN where there is none: one per pair, whatever its
    length, so that every answer keeps its own alternatives."""
    offsets = pairs.offsets.to_numpy()
    values = _numbers(pc.fill_null(pairs.values, math.nan), float)
    second = offsets[:-1] + 1
    has = (offsets[1:] > second) & pairs.is_valid().to_numpy(zero_copy_only=False)
    return np.where(has, values[np.where(has, second, 0)] if len(values) else math.nan, math.nan)


def measure_one_by_one(batch: Sequence[Sequence[dict[str, Any]] | None]) -> dict[str, np.ndarray]:
    """`measure`, answer by answer, to name the one whose logprobs are not numbers."""
    for index, answer in enumerate(batch):
        values = flatten([answer], texts=False)
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
    # `scipy.stats.entropy(np.exp(table), axis=1)`, computed as it does (scipy.stats alone takes
    # half a second to import, which an export or a small ledger's stats would wait for)
    chances = np.exp(table)
    with np.errstate(invalid="ignore", divide="ignore"):
        chances = chances / np.sum(chances, axis=1, keepdims=True)
    entropy = np.sum(special.entr(chances), axis=1)  # a row of no alternatives: NaN
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


def aurocs(
    unsure: dict[str, np.ndarray], positive: np.ndarray, *, resamples: int, seed: int
) -> dict[str, Auroc]:
    """The AUROC of each measure in `unsure` (larger: less certain) for `positive`, over the
    answers where the measure is known; none for a measure without a positive and a negative.
    Measures known for the same answers share their bootstrap resamples (one draw of answers
    gives each of them an AUROC). `resamples` 0 draws no interval."""
    groups: dict[bytes, list[str]] = {}
    for name, values in unsure.items():
        groups.setdefault(np.isfinite(values).tobytes(), []).append(name)
    found = {}
    for names in groups.values():
        known = np.isfinite(unsure[names[0]])
        yes = np.stack([unsure[name][known & positive] for name in names])
        no = np.stack([unsure[name][known & ~positive] for name in names])
        if not (yes.shape[1] and no.shape[1]):
            continue
        areas = ResampledAurocs(yes, no)
        # every answer drawn once: `mannwhitneyu`'s U / (n1 n2) to the bit (2U over 2 n1 n2, both
        # exact), without importing scipy.stats for it
        points = areas(np.arange(yes.shape[1])[None], np.arange(no.shape[1])[None])[:, 0]
        intervals = _intervals(areas, yes, no, resamples, seed)
        for name, point, (low, high) in zip(names, points, intervals, strict=True):
            found[name] = Auroc(yes.shape[1], no.shape[1], float(point), low, high)
    return {name: found[name] for name in unsure if name in found}


def auroc(unsure: np.ndarray, positive: np.ndarray, *, resamples: int, seed: int) -> Auroc | None:
    """The AUROC of one measure (see `aurocs`), or None."""
    return aurocs({"measure": unsure}, positive, resamples=resamples, seed=seed).get("measure")


def _intervals(
    areas: ResampledAurocs, yes: np.ndarray, no: np.ndarray, resamples: int, seed: int
) -> list[tuple[float | None, float | None]]:
    """The percentile bootstrap interval of each row's AUROC (rows: measures of the same answers,
    positives in `yes`, negatives in `no`), resampling positives and negatives apart, as
    indices, from `seed`."""
    nothing: tuple[float | None, float | None] = (None, None)
    if not resamples or yes.shape[1] < 2 or no.shape[1] < 2:
        return [nothing] * len(yes)
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate sample gives NaN: no interval
        interval = stats.bootstrap(
            (np.arange(yes.shape[1]), np.arange(no.shape[1])),
            areas,
            n_resamples=resamples,
            batch=max(1, _BATCH_CELLS // (yes.shape[1] + no.shape[1])),
            vectorized=True,
            paired=False,
            method="percentile",
            rng=np.random.default_rng(seed),
        ).confidence_interval
    return [
        (float(low), float(high)) if math.isfinite(low) and math.isfinite(high) else nothing
        for low, high in zip(np.atleast_1d(interval.low), np.atleast_1d(interval.high), strict=True)
    ]


class ResampledAurocs:
    """The AUROC of each row (a measure) of resamples given as indices into the positives and
    negatives: U / (n1 n2), where each positive drawn counts the negatives drawn below it, plus
    half those equal. Equal to `mannwhitneyu` on the resampled values (a test pins this) without
    a sort per resample: every positive is placed among the sorted negatives once, so a batch
    of resamples is how often each negative was drawn (shared by the measures), then per measure
    one cumulative sum and four gathers (1,000 resamples of 250,000 answers, three measures: about
    4 s here, against 40 s per measure through `mannwhitneyu`)."""

    def __init__(self, yes: np.ndarray, no: np.ndarray) -> None:
        self.order = np.argsort(no, axis=1, kind="stable")  # each measure's negatives, sorted
        ranked = np.take_along_axis(no, self.order, axis=1)
        pairs = list(zip(ranked, yes, strict=True))
        self.left = np.stack([np.searchsorted(r, y, side="left") for r, y in pairs])
        self.right = np.stack([np.searchsorted(r, y, side="right") for r, y in pairs])

    def __call__(self, yes: np.ndarray, no: np.ndarray, axis: int = -1) -> np.ndarray:
        yes, no = np.moveaxis(yes, axis, -1), np.moveaxis(no, axis, -1)
        shape = yes.shape[:-1]
        picked = yes.reshape(-1, yes.shape[-1])  # each resample's positives, as indices
        drawn = _counts(no.reshape(-1, no.shape[-1]))  # how often each negative was drawn
        rows, width = drawn.shape
        # Counts as integers (summing floats takes ten times as long), 32-bit where twice the
        # batch's draws fit (a fifth faster than 64-bit: half the memory to move).
        small = np.int32 if 2 * rows * width <= np.iinfo(np.int32).max else np.int64
        # Per measure, its negatives' draws in its order, every resample end to end after a 0
        # (`ordered`), summed in one dimension into another array (numpy holds the GIL through a
        # sum along the rows of a 2-D array, or in place): `running[r * width + k]` is the draws
        # of the resamples before r (`before[r]`) plus resample r's negatives drawn under the
        # k-th smallest, k = 0..width.
        drawn = drawn.astype(small)
        ordered = np.zeros(rows * width + 1, dtype=small)
        running = np.empty_like(ordered)
        sums = np.lib.stride_tricks.as_strided(
            running,
            (rows, width + 1),
            (width * running.itemsize, running.itemsize),
            writeable=False,
        )
        before = sums[:, :1]
        spots = (picked + np.arange(rows)[:, None] * picked.shape[1]).ravel()
        found = np.empty((len(self.order), rows), dtype=np.int64)
        ranks = zip(self.order, self.left, self.right, strict=True)
        for row, (order, left, right) in enumerate(ranks):
            # the indices are all in range: "clip" spares numpy a buffered copy
            np.take(drawn, order, axis=1, out=ordered[1:].reshape(rows, width), mode="clip")
            np.cumsum(ordered, out=running)
            under = np.take(sums, left, axis=1) + np.take(sums, right, axis=1)
            if rows > 1:
                under -= 2 * before
            found[row] = np.take(under, spots).reshape(rows, -1).sum(axis=1, dtype=np.int64)
        areas: np.ndarray = found / (2 * yes.shape[-1] * no.shape[-1])
        return areas.reshape((len(self.order), *shape))


def _counts(indices: np.ndarray) -> np.ndarray:
    """How often each index 0..n-1 is drawn in each row of a (rows, n) array of indices."""
    rows, size = indices.shape
    shifted = indices + (np.arange(rows) * size)[:, None]
    return np.bincount(shifted.ravel(), minlength=rows * size).reshape(rows, size)
