"""A ledger's latest answers as columns of small numbers, for statistics over a million of them.

One streamed pass (after `latest_offsets`) turns each key's latest record into codes: its
variant, category, item (prompt id and sample: the unit two variants are paired on), whether it
is a synthetic probe, whether it is an answer, its uncertainty measures (from token logprobs),
and per scorer the code of its current label (-1: none). Strings are kept once per distinct
value; memory is a few dozen bytes per answer.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis.answers import Source, records_at
from harness.analysis.labels import Labels
from harness.analysis.positions import MalformedLogprobs
from harness.analysis.scores import answer_digest
from harness.analysis.uncertainty import MEASURES, measure
from harness.errors import InputError
from harness.ledger.sets import Advance, Ledgers

_BATCH = 256  # records turned into codes together: few enough to stay in the CPU caches


class Codes(dict[Any, int]):
    """Distinct values numbered in order of first sight."""

    def code(self, value: Any) -> int:
        found = self.get(value)
        if found is None:
            found = self[value] = len(self)
        return found


@dataclass
class AnswerColumns:
    """The latest record of every key, one entry per record in each array."""

    variants: list[str]
    categories: list[str]
    items: list[tuple[str, int]]  # (prompt id, sample): the unit two variants are paired on
    labels: dict[str, list[str]]  # per scorer, its labels: the codes index them
    variant: np.ndarray  # int32 codes into `variants`
    category: np.ndarray  # int32 codes into `categories`
    item: np.ndarray  # int64 codes into `items`
    probe: np.ndarray  # bool: a synthetic probe
    ok: np.ndarray  # bool: the record is an answer
    unsure: dict[str, np.ndarray]  # per measure (see uncertainty.MEASURES), NaN where unknown
    label: dict[str, np.ndarray]  # per scorer, int32 label codes, -1 where none is current
    unscored: dict[str, int] = field(default_factory=dict)  # answers without a current score


def answer_columns(
    ledger: Path | Ledgers,
    positions: Sequence[int],
    labels: Labels,
    advance: Advance | None = None,
    source: Source | None = None,
) -> AnswerColumns:
    """Read the records of `ledger` (from `source`, its open file, when given) at `positions`
    (see `latest_positions`), joined with `labels`."""
    builder = ColumnsBuilder(ledger, labels)
    batch: list[dict[str, Any]] = []
    for record in records_at(source or ledger, positions, advance=advance):
        batch.append(record)
        if len(batch) == _BATCH:
            builder.add(batch)
            batch = []
    builder.add(batch)
    return builder.columns()


class ColumnsBuilder:
    """Records, a batch at a time, to `AnswerColumns` (for a reader that reads them itself)."""

    def __init__(self, ledger: Path | Ledgers, labels: Labels) -> None:
        self.ledger = ledger
        self.scorers = labels.scorers
        self.variants, self.categories, self.items = Codes(), Codes(), Codes()
        self.label_codes = {name: Codes() for name in self.scorers}
        for name, scorer in self.scorers.items():
            for label in scorer.labels():
                self.label_codes[name].code(label)
        self.variant, self.category, self.item = array("i"), array("i"), array("q")
        self.probe, self.ok = array("b"), array("b")
        self.label = {name: array("i") for name in self.scorers}
        self.unscored = dict.fromkeys(self.scorers, 0)
        self.unsure: dict[str, list[np.ndarray]] = {name: [] for name in MEASURES}

    def add(self, batch: list[dict[str, Any]]) -> None:
        get = dict.get
        self.variant.extend(map(self.variants.code, map(get, batch, repeat("variant"))))
        categories = map(str, map(get, batch, repeat("prompt_category")))
        self.category.extend(map(self.categories.code, categories))
        ids, samples = map(get, batch, repeat("prompt_id")), map(get, batch, repeat("sample"))
        self.item.extend(map(self.items.code, zip(ids, samples, strict=True)))
        probes = map(get, batch, repeat("is_synthetic_probe"))
        self.probe.extend([value is True for value in probes])
        ok = [status == "ok" for status in map(get, batch, repeat("status"))]
        self.ok.extend(ok)
        self._measure(batch, ok)
        if self.scorers:
            self._join(batch, ok)

    def _measure(self, batch: list[dict[str, Any]], ok: list[bool]) -> None:
        logprobs = [
            r.get("token_logprobs") if answered else None
            for r, answered in zip(batch, ok, strict=True)
        ]
        try:
            measured = measure(logprobs)
        except MalformedLogprobs as exc:
            key = batch[exc.index]["key"]
            raise InputError(f"{self.ledger}: record {key!r}: token_logprobs: {exc}") from None
        for name in MEASURES:
            self.unsure[name].append(measured[name])

    def _join(self, batch: list[dict[str, Any]], ok: list[bool]) -> None:
        keys = [record["key"] for record in batch]
        digests = [answer_digest(r) if ans else "" for r, ans in zip(batch, ok, strict=True)]
        for name, scorer in self.scorers.items():
            codes = self.label_codes[name]
            column = self.label[name]
            for key, digest, answered in zip(keys, digests, ok, strict=True):
                given = scorer.label_of(key, digest) if answered else None
                if given is None or given[0] is None:
                    column.append(-1)
                    self.unscored[name] += answered
                else:
                    column.append(codes[given[0]])

    def columns(self) -> AnswerColumns:
        return AnswerColumns(
            variants=list(self.variants),
            categories=list(self.categories),
            items=list(self.items),
            labels={name: list(codes) for name, codes in self.label_codes.items()},
            variant=np.frombuffer(self.variant, dtype=np.int32),
            category=np.frombuffer(self.category, dtype=np.int32),
            item=np.frombuffer(self.item, dtype=np.int64),
            probe=np.frombuffer(self.probe, dtype=np.int8).astype(bool),
            ok=np.frombuffer(self.ok, dtype=np.int8).astype(bool),
            unsure={name: _joined(parts) for name, parts in self.unsure.items()},
            label={name: np.frombuffer(c, dtype=np.int32) for name, c in self.label.items()},
            unscored=self.unscored,
        )


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0)


def joined_columns(parts: Sequence[AnswerColumns]) -> AnswerColumns:
    """The columns of consecutive runs of records (read by several workers) as one, in order:
    each part's codes turned into codes of the whole."""
    variants, categories, items = Codes(), Codes(), Codes()

    def recoded(codes: Codes, values: list[Any], column: np.ndarray) -> np.ndarray:
        table = np.fromiter(map(codes.code, values), dtype=column.dtype, count=len(values))
        return table[column] if len(values) else column

    first = parts[0]
    variant = [recoded(variants, p.variants, p.variant) for p in parts]
    category = [recoded(categories, p.categories, p.category) for p in parts]
    item = [recoded(items, p.items, p.item) for p in parts]
    unscored = {name: sum(p.unscored[name] for p in parts) for name in first.unscored}
    return AnswerColumns(
        variants=list(variants),
        categories=list(categories),
        items=list(items),
        labels=first.labels,  # every part numbers a scorer's labels alike (see ColumnsBuilder)
        variant=np.concatenate(variant),
        category=np.concatenate(category),
        item=np.concatenate(item),
        probe=np.concatenate([p.probe for p in parts]),
        ok=np.concatenate([p.ok for p in parts]),
        unsure={m: np.concatenate([p.unsure[m] for p in parts]) for m in first.unsure},
        label={s: np.concatenate([p.label[s] for p in parts]) for s in first.label},
        unscored=unscored,
    )
