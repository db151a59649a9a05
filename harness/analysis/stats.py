"""Statistics over a ledger and its scores: rates with Wilson intervals, paired comparisons of
variants (exact McNemar, Cohen's h, Benjamini-Hochberg), and how well token-logprob uncertainty
predicts a synthetic probe or a label (AUROC with a bootstrap interval).

- Rates: per scorer x variant x category (and all categories, `category` None) x label: n answers
  with a current label, how many have the label, the rate and its 95% Wilson score interval
  (`proportions.wilson`). The ledger alone gives the pseudo-scorer
  `(status)`: the share of keys whose latest record is an `error` (left out when scorers or a
  label are asked for).
- Comparisons: for every pair of variants, over the items (prompt id and sample) both have a
  current label for: the 2x2 table of "has the label" and its exact McNemar p
  (`proportions.mcnemar_exact`: the binomial test on the discordant pairs), Cohen's h of the two
  rates on those items (`proportions.cohens_h`), and the Benjamini-Hochberg adjusted p
  (`proportions.benjamini_hochberg`) within each family (`FAMILIES`: each
  scorer and label, or every comparison of the report as one). Labels compared: the one asked
  for, else each of the scorer's labels (of two labels only the first: the other's test is the
  same); a scorer with one label has nothing to compare.
- The hallucination view (`Stats.hallucination`): for a scorer whose `claims` and `denies`
  labels `score` recorded for its current definition (`harness.analysis.probe_labels`), per
  variant the rate of `claims` over its answers to synthetic probes and of `denies` over those
  to real items, and the comparisons of every pair of variants on those items.
- Uncertainty: per variant with logprobs and measure (see `harness.analysis.uncertainty`), the
  AUROC for the synthetic-probe flag over its answers, and for the label asked for over the
  answers each scorer gave a current label.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import orjson

from harness.analysis.probe_labels import SCORERS_NAME, read_probe_labels
from harness.analysis.proportions import benjamini_hochberg, cohens_h, mcnemar_exact, wilson
from harness.analysis.uncertainty import MEASURES, UNSURE_SIGN, aurocs
from harness.analysis.view import cores, open_view
from harness.analysis.view_columns import FIELDS, AnswerColumns, split_fields, view_columns
from harness.bulk import collector_paused
from harness.config.scorers import UNPARSEABLE
from harness.errors import InputError
from harness.ledger.sets import Advance, Ledgers
from harness.ledger.targets import OwnFile, head


class ScorerCounts(Protocol):
    """What the statistics read of one scorer's scores."""

    @property
    def failed(self) -> int: ...
    @property
    def earlier_definition(self) -> int: ...
    @property
    def definition(self) -> str | None: ...
    def labels(self) -> list[str]: ...


class LabelCounts(Protocol):
    """What the statistics read of a scores file: its scorers (those kept), every scorer it names,
    and its lines left out."""

    @property
    def scorers(self) -> Mapping[str, ScorerCounts]: ...
    @property
    def named(self) -> set[str]: ...
    @property
    def skipped(self) -> int: ...


STATUS = "(status)"  # the pseudo-scorer the ledger alone gives: each answer `ok` or `error`
PROBE = "is_synthetic_probe"  # the AUROC target that needs no scores
# The families of the Benjamini-Hochberg adjustment: each scorer and label apart (a human
# rater's labels never move a model comparison), or every comparison of the report as one.
FAMILIES = (
    "within each scorer and label (those within splits, and the hallucination view's, apart)",
    "over every comparison as one family",
)
# The hallucination view: which items each probe label is counted over, and what its rate is.
HALLUCINATION, FALSE_DENIAL = "hallucination", "false denial"
PROBE_ITEMS = {HALLUCINATION: "synthetic probes", FALSE_DENIAL: "real items"}


@dataclass(frozen=True)
class Rate:
    scorer: str
    variant: str
    category: str | None  # None: every category
    label: str
    n: int
    count: int
    rate: float
    low: float
    high: float


@dataclass(frozen=True)
class Comparison:
    scorer: str
    label: str
    variant_a: str
    variant_b: str
    pairs: int  # items both variants have a current label for
    rate_a: float
    rate_b: float
    a_only: int  # pairs where only a has the label
    b_only: int
    p_value: float  # exact McNemar
    cohens_h: float  # of rate_a against rate_b
    p_adjusted: float = math.nan  # Benjamini-Hochberg within its family (`Stats.family`)
    split: str | None = None  # the items of one split (`Stats.by`); None: every item
    measure: str | None = None  # of the hallucination view: HALLUCINATION or FALSE_DENIAL


@dataclass(frozen=True)
class ProbeRate:
    """A variant's hallucination rate (the scorer's `claims` label over its answers to synthetic
    probes) or false-denial rate (its `denies` label over its answers to real items)."""

    scorer: str
    measure: str  # HALLUCINATION or FALSE_DENIAL
    label: str
    variant: str
    n: int  # the answers to those items with a current label from the scorer
    count: int
    rate: float
    low: float
    high: float


@dataclass(frozen=True)
class Separation:
    variant: str
    measure: str
    target: str  # PROBE, or `scorer=label`
    positives: int
    negatives: int
    auroc: float
    low: float | None
    high: float | None


@dataclass
class Stats:
    ledger: str
    scores: str | None
    answers: int
    rates: list[Rate] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    uncompared: dict[str, str] = field(default_factory=dict)  # scorer -> why it has none
    separations: list[Separation] = field(default_factory=list)
    resamples: int = 0
    seed: int = 0
    notes: list[str] = field(default_factory=list)
    family: str = FAMILIES[0]  # what the Benjamini-Hochberg adjustment takes as one family
    by: list[str] = field(default_factory=list)  # the fields a rate's `category` splits by
    # The hallucination view (a scorer with `claims` or `denies`, and synthetic probes): its
    # comparisons are within PROBE_ITEMS (their `split`), Benjamini-Hochberg families of their own.
    hallucination: list[ProbeRate] = field(default_factory=list)
    hallucination_comparisons: list[Comparison] = field(default_factory=list)

    def as_json(self) -> bytes:
        """The whole report as JSON (NaN as null)."""
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2) + b"\n"


# The head of `Stats.as_json`: its first fields, in order.
_JSON_HEAD = re.compile(rb'\A\{\s*"ledger":\s*"(?:[^"\\]|\\.)*",\s*"scores":\s*(?:null|")')
STATS_JSON = OwnFile("an earlier stats --json file", lambda at: bool(_JSON_HEAD.match(head(at))))


def compute_stats(
    ledger: Path | Ledgers,
    scores: Path,
    *,
    scorers: Sequence[str] = (),
    label: str | None = None,
    resamples: int = 1000,
    seed: int = 0,
    advance: Advance | None = None,
    threads: int | None = None,
    one_family: bool = False,
    by: Sequence[str] = (),
) -> Stats:
    """The report for `ledger` and the scores file `scores` (which may not exist), narrowed to
    `scorers` and `label` when given (InputError when they name nothing there); `threads`:
    DuckDB's (None: one per core); `one_family`: every comparison one Benjamini-Hochberg family
    (else one per scorer and label); `by`: the fields rates and comparisons are split by (see
    `harness.analysis.view_columns.split_fields`; default: rates per prompt category)."""
    fields = (*FIELDS, *split_fields(by))
    with (
        collector_paused(),
        open_view(
            ledger, scores, scorers=scorers, threads=threads, advance=advance, fields=fields
        ) as view,
    ):
        check_selection(scores, view.labels, scorers, label)
        columns = view_columns(view, by)
    return stats_of(
        ledger,
        scores,
        view.labels,
        columns,
        label,
        resamples,
        seed,
        scorers=scorers,
        skipped_lines=view.skipped,
        threads=threads,
        one_family=one_family,
        by=by,
    )


def stats_of(
    ledger: Path | Ledgers,
    scores: Path,
    labels: LabelCounts,
    columns: AnswerColumns,
    label: str | None,
    resamples: int,
    seed: int,
    *,
    scorers: Sequence[str] = (),
    skipped_lines: int = 0,
    threads: int | None = None,
    one_family: bool = False,
    by: Sequence[str] = (),
) -> Stats:
    """The report of answers already read (`compute_stats` reads them), whose `labels` were
    checked against `scorers` and `label`; `skipped_lines`: the ledger's lines left unread
    (torn, damaged, of no known shape), for a note; `threads`: how many variants' AUROCs are
    drawn at once (None: one per core); `one_family`, `by` (what `columns` were split by): as
    `compute_stats`."""
    stats = Stats(
        str(ledger),
        str(scores) if scores.exists() else None,
        len(columns.variant),
        resamples=resamples,
        seed=seed,
        family=FAMILIES[one_family],
        by=list(by),
    )
    stats.rates = _status_rates(columns) if label is None and not scorers else []
    for name in labels.scorers:
        stats.rates += _rates(columns, name, label)
        compared = _comparisons(columns, name, label, split=bool(by))
        stats.comparisons += compared
        if not compared:
            stats.uncompared[name] = _why_uncompared(columns, name, label)
    probe_labels = _probe_labels(labels, columns, scores, label, stats.notes)
    for name, (claims, denies) in probe_labels.items():
        rates, compared = _probe_view(columns, name, claims, denies, stats.notes)
        stats.hallucination += rates
        stats.hallucination_comparisons += compared
    if one_family:  # every comparison of the report, the hallucination view's too
        every = _adjusted(stats.comparisons + stats.hallucination_comparisons, one_family)
        stats.comparisons = every[: len(stats.comparisons)]
        stats.hallucination_comparisons = every[len(stats.comparisons) :]
    else:  # the view's are families of their own: the same tests as a --by split's may be
        stats.comparisons = _adjusted(stats.comparisons, one_family)
        stats.hallucination_comparisons = _adjusted(stats.hallucination_comparisons, one_family)
    stats.separations = _separations(columns, label, resamples, seed, threads or cores())
    stats.notes += _notes(labels, columns, scores)
    stats.notes += [
        f"{name}: no paired comparisons: {why}" for name, why in stats.uncompared.items()
    ]
    if skipped_lines:
        unread = f"{skipped_lines:,} unreadable line(s) (torn, damaged, or not records)"
        stats.notes.insert(0, f"{ledger}: skipped {unread}")
    return stats


def check_selection(
    scores: Path, labels: LabelCounts, scorers: Sequence[str], label: str | None
) -> None:
    """InputError when `scorers` or `label` name nothing in the scores file's current labels."""
    known = ", ".join(sorted(labels.named)) or "none"
    missing = [name for name in scorers if name not in labels.scorers]
    if missing:
        names = ", ".join(missing)
        raise InputError(f"{scores}: no current scores from {names} (scorers: {known})")
    if label is not None and not any(label in s.labels() for s in labels.scorers.values()):
        given = sorted({x for s in labels.scorers.values() for x in s.labels()})
        raise InputError(
            f"{scores}: no current score has the label {label!r} "
            f"(labels: {', '.join(given) or 'none'})"
        )


def _status_rates(columns: AnswerColumns) -> list[Rate]:
    status = np.where(columns.ok, 0, 1).astype(np.int32)
    return _tabulate(columns, STATUS, status, ["ok", "error"], "error")


def _rates(columns: AnswerColumns, scorer: str, label: str | None) -> list[Rate]:
    return _tabulate(columns, scorer, columns.label[scorer], columns.labels[scorer], label)


def _tabulate(
    columns: AnswerColumns,
    scorer: str,
    codes: np.ndarray,
    names: list[str],
    only: str | None,
) -> list[Rate]:
    """Rates of every label (or `only`) per variant x category and per variant."""
    if not names or (only is not None and only not in names):
        return []
    given = codes >= 0
    variants, categories = len(columns.variants), len(columns.categories)
    cell = (columns.variant * (categories + 1) + columns.category)[given]
    every = (columns.variant * (categories + 1) + categories)[given]  # the variant's "all" cell
    width = variants * (categories + 1)
    chosen = codes[given]
    totals = np.bincount(cell, minlength=width) + np.bincount(every, minlength=width)
    rows: list[Rate] = []
    for code, name in enumerate(names):
        if only is not None and name != only:
            continue
        hit = chosen == code
        counts = np.bincount(cell[hit], minlength=width) + np.bincount(every[hit], minlength=width)
        present = np.flatnonzero(totals)
        for at, (lo, hi) in zip(present, _wilson(counts[present], totals[present]), strict=True):
            variant, category = divmod(int(at), categories + 1)
            n, count = int(totals[at]), int(counts[at])
            rows.append(
                Rate(
                    scorer,
                    columns.variants[variant],
                    columns.categories[category] if category < categories else None,
                    name,
                    n,
                    count,
                    count / n,
                    lo,
                    hi,
                )
            )
    rows.sort(key=lambda r: (r.variant, r.category is None, _in_order(r.category), r.label))
    return rows


def _in_order(category: str | None) -> tuple[bool, float, str]:
    """A category's place: numbers (a split by temperature, a numeric field) by their value,
    before the rest by their text."""
    try:
        value = float(category or "")
    except ValueError:
        value = math.nan
    finite = math.isfinite(value)
    return (not finite, value if finite else 0.0, category or "")


def _probe_labels(
    labels: LabelCounts,
    columns: AnswerColumns,
    scores: Path,
    label: str | None,
    notes: list[str],
) -> dict[str, tuple[str | None, str | None]]:
    """Per scorer kept, the labels that claim and deny existence, as `score` recorded them for
    its current definition (none without synthetic probes; with `label`, that one alone); a note
    for what is missing."""
    if not columns.probe.any():
        return {}
    path = scores.parent / SCORERS_NAME
    recorded, skipped = read_probe_labels(path)
    if skipped:
        notes.append(f"{path}: skipped {skipped:,} unreadable line(s)")
    found = {}
    for name, scorer in labels.scorers.items():
        line = recorded.get(name)
        if line is None or not (line.claims or line.denies):
            continue
        if line.definition != scorer.definition:
            notes.append(
                f"{name}: its claims and denies labels were given for an earlier definition of "
                "the scorer: score again for the hallucination view"
            )
            continue
        claims, denies = (x if label in (None, x) else None for x in (line.claims, line.denies))
        if claims or denies:
            found[name] = (claims, denies)
    left_out = sorted(
        name for name, line in recorded.items() if name not in labels.scorers and line.claims
    )
    if not found and label is None and left_out:  # `--scorer` kept others
        notes.append(
            f"the hallucination view is in the labels of {', '.join(left_out)}, "
            "which --scorer left out"
        )
    elif not found and label is None and labels.scorers:
        probes = int((columns.probe & columns.ok).sum())
        notes.append(
            f"{probes:,} answer(s) are to synthetic probes: name the label that says an item "
            'exists (claims = "...", and denies) on its scorer and score again, for the '
            "hallucination view"
        )
    return found


def _probe_view(
    columns: AnswerColumns,
    scorer: str,
    claims: str | None,
    denies: str | None,
    notes: list[str],
) -> tuple[list[ProbeRate], list[Comparison]]:
    """Per variant, the rate of `claims` over the answers to synthetic probes and of `denies`
    over those to real items (each with a current verdict from `scorer`: an `UNPARSEABLE` one is
    none), and the comparisons of every pair of variants on the items both answered."""
    rates, compared = [], []
    names, codes = columns.labels[scorer], columns.label[scorer]
    labelled = columns.labelled(scorer)
    if UNPARSEABLE in names:
        unread = labelled & (codes == names.index(UNPARSEABLE))
        labelled &= ~unread
        notes.append(
            f"{scorer}: {int(unread.sum()):,} answer(s) without a verdict ({UNPARSEABLE}) left "
            "out of the hallucination view"
        )
    for measure, label, among in (
        (HALLUCINATION, claims, columns.probe),
        (FALSE_DENIAL, denies, ~columns.probe),
    ):
        if not label:
            continue
        if label not in names:
            given = ", ".join(n for n in names if n != UNPARSEABLE) or "none"
            notes.append(
                f"{scorer}: no answer has its {'claims' if measure == HALLUCINATION else 'denies'}"
                f" label {label!r} (the labels it gave: {given}): its {measure} rate is 0"
            )
        kept = labelled & among
        code = names.index(label) if label in names else -2  # a label never given: none has it
        totals = np.bincount(columns.variant[kept], minlength=len(columns.variants))
        counts = np.bincount(columns.variant[kept & (codes == code)], minlength=len(totals))
        present = sorted(np.flatnonzero(totals), key=lambda at: columns.variants[at])
        for at, (low, high) in zip(present, _wilson(counts[present], totals[present]), strict=True):
            n, count = int(totals[at]), int(counts[at])
            variant = columns.variants[at]
            rates.append(ProbeRate(scorer, measure, label, variant, n, count, count / n, low, high))
        found = _compared(columns, scorer, [label], kept, PROBE_ITEMS[measure])
        compared += [replace(c, measure=measure) for c in found]
    return rates, compared


def _wilson(counts: np.ndarray, totals: np.ndarray) -> list[tuple[float, float]]:
    """The 95% Wilson score interval of each count of its total (every total above 0)."""
    if not len(totals):
        return []
    low, high = wilson(counts, totals)
    # the bounds of 0 of n and n of n can miss 0 and 1 by a rounding error
    return [
        (min(float(lo), int(c) / int(n)), max(float(hi), int(c) / int(n)))
        for lo, hi, c, n in zip(
            np.atleast_1d(low), np.atleast_1d(high), counts, totals, strict=True
        )
    ]


def _compared_labels(names: list[str], label: str | None) -> list[str]:
    if len(names) < 2:
        return []
    if label is not None:
        return [label] if label in names else []
    return sorted(names)[:1] if len(names) == 2 else sorted(names)


def _comparisons(
    columns: AnswerColumns, scorer: str, label: str | None, *, split: bool = False
) -> list[Comparison]:
    """Every pair of variants compared on the items both have a label for; with `split`, also
    within each split (the columns' categories)."""
    labels = _compared_labels(columns.labels[scorer], label)
    if not labels:
        return []
    labelled = columns.labelled(scorer)
    rows = _compared(columns, scorer, labels, labelled, None)
    for code, name in enumerate(columns.categories if split else ()):
        rows += _compared(columns, scorer, labels, labelled & (columns.category == code), name)
    return rows


def _compared(
    columns: AnswerColumns, scorer: str, labels: list[str], kept: np.ndarray, split: str | None
) -> list[Comparison]:
    """The comparisons of `labels` between every pair of variants, over the answers `kept`."""
    names, codes = columns.labels[scorer], columns.label[scorer]
    per_variant = {}
    for code, variant in enumerate(columns.variants):
        mine = (columns.variant == code) & kept
        order = np.argsort(columns.item[mine], kind="stable")
        per_variant[variant] = (columns.item[mine][order], codes[mine][order])
    rows = []
    for a, b in itertools.combinations(sorted(per_variant), 2):
        (items_a, codes_a), (items_b, codes_b) = per_variant[a], per_variant[b]
        _, at_a, at_b = np.intersect1d(items_a, items_b, assume_unique=True, return_indices=True)
        if not len(at_a):
            continue
        for name in labels:
            code = names.index(name) if name in names else -2  # never given: none has it
            yes_a, yes_b = codes_a[at_a] == code, codes_b[at_b] == code
            rows.append(replace(_compare(scorer, name, a, b, yes_a, yes_b), split=split))
    return rows


def _why_uncompared(columns: AnswerColumns, scorer: str, label: str | None) -> str:
    """Why `scorer` has no paired comparisons (`_comparisons` found none)."""
    names = columns.labels[scorer]
    if len(columns.variants) < 2:
        shown = f" ({columns.variants[0]})" if columns.variants else ""
        return f"one variant{shown}; a comparison needs two"
    if not names:
        return "it has given no label; a comparison needs two"
    if len(names) < 2:
        return f"it has given one label ({names[0]}); a comparison needs two"
    if label is not None and label not in names:
        return f"it has not given {label!r}"
    labelled = [columns.variants[c] for c in np.unique(columns.variant[columns.label[scorer] >= 0])]
    if len(labelled) < 2:
        return f"its labels are those of {len(labelled)} variant(s) ({', '.join(labelled)}) alone"
    return "no two variants have its labels for the same prompt and sample"


def _compare(
    scorer: str, label: str, a: str, b: str, yes_a: np.ndarray, yes_b: np.ndarray
) -> Comparison:
    a_only = int(np.sum(yes_a & ~yes_b))
    b_only = int(np.sum(~yes_a & yes_b))
    p_value = mcnemar_exact(a_only, b_only)
    rate_a, rate_b = float(yes_a.mean()), float(yes_b.mean())
    h = cohens_h(rate_a, rate_b)
    return Comparison(scorer, label, a, b, len(yes_a), rate_a, rate_b, a_only, b_only, p_value, h)


def _adjusted(comparisons: list[Comparison], one_family: bool) -> list[Comparison]:
    """The comparisons with their Benjamini-Hochberg p-values, within each scorer and label (its
    comparisons within splits apart), or all of them one family; in the same order."""
    families: dict[tuple[str, str, bool] | None, list[int]] = {}
    for at, c in enumerate(comparisons):  # the comparisons within splits: a family of their own
        family = None if one_family else (c.scorer, c.label, c.split is None)
        families.setdefault(family, []).append(at)
    adjusted = list(comparisons)
    for members in families.values():
        found = benjamini_hochberg([comparisons[at].p_value for at in members])
        for at, p in zip(members, found, strict=True):
            adjusted[at] = replace(comparisons[at], p_adjusted=p)
    return adjusted


def _separations(
    columns: AnswerColumns,
    label: str | None,
    resamples: int,
    seed: int,
    threads: int,
) -> list[Separation]:
    """The AUROCs of every variant with logprobs, `threads` variants at a time (their bootstraps
    are numpy's work, done without the GIL)."""
    targets: list[tuple[str, np.ndarray, np.ndarray]] = [(PROBE, columns.ok, columns.probe)]
    if label is not None:
        for scorer, names in columns.labels.items():
            if label in names:
                codes = columns.label[scorer]
                targets.append((f"{scorer}={label}", codes >= 0, codes == names.index(label)))
    tasks = []
    for code, variant in enumerate(columns.variants):
        mine = columns.variant == code
        unsure = {m: UNSURE_SIGN[m] * columns.unsure[m][mine] for m in MEASURES}
        if any(np.isfinite(values).any() for values in unsure.values()):
            picked = [(name, among[mine], positive[mine]) for name, among, positive in targets]
            tasks.append((variant, unsure, picked, resamples, seed))
    with ThreadPoolExecutor(max(1, min(threads, len(tasks)))) as pool:
        found = pool.map(lambda task: _variant_separations(*task), tasks)
        return [row for rows in found for row in rows]


def _variant_separations(
    variant: str,
    unsure: dict[str, np.ndarray],
    targets: list[tuple[str, np.ndarray, np.ndarray]],
    resamples: int,
    seed: int,
) -> list[Separation]:
    rows = []
    for target, among, positive in targets:
        found = aurocs(
            {m: values[among] for m, values in unsure.items()},
            positive[among],
            resamples=resamples,
            seed=seed,
        )
        rows += [Separation(variant, m, target, **asdict(found[m])) for m in MEASURES if m in found]
    return rows


def _notes(labels: LabelCounts, columns: AnswerColumns, scores: Path) -> list[str]:
    notes = []
    if not scores.exists():
        notes.append(
            f"no scores file ({scores}): rates of the ledger's status only; to label the "
            "answers, run score with a config that has a [[scorers]] table (docs/scoring.md)"
        )
    if labels.skipped:
        notes.append(f"{scores}: skipped {labels.skipped} unreadable line(s)")
    for name, scorer in labels.scorers.items():
        if columns.unscored.get(name) and name.startswith("human:"):  # a rater's sample
            notes.append(f"{name}: {columns.unscored[name]:,} answer(s) this rater did not label")
        elif columns.unscored.get(name):
            notes.append(
                f"{name}: {columns.unscored[name]:,} answer(s) have no current score "
                "(not scored yet, or answered again since: score again to label them)"
            )
        if scorer.earlier_definition:
            notes.append(
                f"{name}: {scorer.earlier_definition:,} score(s) were given under an earlier "
                "definition of the scorer and are left out"
            )
        if scorer.failed:
            notes.append(f"{name}: {scorer.failed:,} score(s) failed (no label)")
    without = [
        v
        for code, v in enumerate(columns.variants)
        if not np.isfinite(columns.unsure["mean_topk_entropy"][columns.variant == code]).any()
    ]
    if without:
        names = sorted(without)
        more = f" and {len(names) - 5:,} more" if len(names) > 5 else ""
        notes.append(f"no token logprobs, so no uncertainty: {', '.join(names[:5])}{more}")
    return notes
