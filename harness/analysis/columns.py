"""A ledger's latest answers as columns of small numbers, for statistics over a million of them.

One streamed pass (after `latest_offsets`) turns each key's latest record into codes: its
variant, category, item (prompt id and sample: the unit two variants are paired on), whether it
is a synthetic probe, whether it is an answer, its uncertainty measures (from token logprobs),
and per scorer the code of its current label (-1: none). Strings are kept once per distinct
value; memory is a few dozen bytes per answer.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis.answers import Advance, latest_offsets, records_at
from harness.analysis.labels import Labels
from harness.analysis.scores import answer_digest
from harness.analysis.uncertainty import MEASURES, MalformedLogprobs, measure
from harness.errors import InputError

_BATCH = 4096  # records whose logprobs are measured together


class _Codes(dict[Any, int]):
    """Distinct values numbered in order of first sight."""

    def code(self, value: Any) -> int:
        found = self.get(value)
        if found is None:
            found = self[value] = len(self)
        return found

    def names(self) -> list[Any]:
        return list(self)


@dataclass
class AnswerColumns:
    """The latest record of every key, one entry per record in each array."""

    variants: list[str]
    categories: list[str]
    labels: dict[str, list[str]]  # per scorer, its labels: the codes index them
    variant: np.ndarray  # int32 codes into `variants`
    category: np.ndarray  # int32 codes into `categories`
    item: np.ndarray  # int64 codes of (prompt id, sample)
    probe: np.ndarray  # bool: a synthetic probe
    ok: np.ndarray  # bool: the record is an answer
    unsure: dict[str, np.ndarray]  # per measure (see uncertainty.MEASURES), NaN where unknown
    label: dict[str, np.ndarray]  # per scorer, int32 label codes, -1 where none is current
    unscored: dict[str, int] = field(default_factory=dict)  # answers without a current score


def answer_columns(ledger: Path, labels: Labels, advance: Advance | None = None) -> AnswerColumns:
    """Read the latest record of every key of `ledger`, joined with `labels`."""
    builder = _Builder(labels)
    offsets = set(latest_offsets(ledger, advance).values())
    for record in records_at(ledger, offsets, advance=advance):
        builder.add(record)
        if len(builder.pending) >= _BATCH:
            builder.measure(ledger)
    builder.measure(ledger)
    return builder.columns()


class _Builder:
    def __init__(self, labels: Labels) -> None:
        self.scorers = labels.scorers
        self.variants, self.categories, self.items = _Codes(), _Codes(), _Codes()
        self.label_codes = {name: _Codes() for name in self.scorers}
        for name, scorer in self.scorers.items():
            for label in scorer.labels():
                self.label_codes[name].code(label)
        self.variant, self.category = array("i"), array("i")
        self.item = array("q")
        self.probe, self.ok = array("b"), array("b")
        self.label = {name: array("i") for name in self.scorers}
        self.unscored = dict.fromkeys(self.scorers, 0)
        self.unsure: dict[str, list[np.ndarray]] = {name: [] for name in MEASURES}
        self.pending: list[Any] = []  # the token logprobs of records not yet measured
        self.pending_keys: list[str] = []

    def add(self, record: dict[str, Any]) -> None:
        self.variant.append(self.variants.code(record["variant"]))
        self.category.append(self.categories.code(str(record.get("prompt_category"))))
        self.item.append(self.items.code((record["prompt_id"], record["sample"])))
        self.probe.append(record.get("is_synthetic_probe") is True)
        ok = record["status"] == "ok"
        self.ok.append(ok)
        self.pending.append(record.get("token_logprobs") if ok else None)
        self.pending_keys.append(record["key"])
        digest = answer_digest(record) if ok and self.scorers else ""
        for name, scorer in self.scorers.items():
            given = scorer.label_of(record["key"], digest) if ok else None
            if given is None or given[0] is None:
                self.label[name].append(-1)
                self.unscored[name] += ok
            else:
                self.label[name].append(self.label_codes[name][given[0]])

    def measure(self, ledger: Path) -> None:
        try:
            measured = measure(self.pending)
        except MalformedLogprobs as exc:
            key = self.pending_keys[exc.index]
            raise InputError(f"{ledger}: record {key!r}: token_logprobs: {exc}") from None
        for name in MEASURES:
            self.unsure[name].append(measured[name])
        self.pending.clear()
        self.pending_keys.clear()

    def columns(self) -> AnswerColumns:
        return AnswerColumns(
            variants=self.variants.names(),
            categories=self.categories.names(),
            labels={name: codes.names() for name, codes in self.label_codes.items()},
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
