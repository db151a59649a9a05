"""The view's latest answers as columns of small numbers for statistics over a million of them
(`AnswerColumns`), in ledger order, taken from DuckDB as Arrow arrays: each answer's variant,
category, item (prompt id and sample: the unit two variants are paired on), whether it is a
synthetic probe, whether it is an answer, its uncertainty measures, and per scorer the code of
its current label (-1: none)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.analysis.uncertainty import MEASURES
from harness.analysis.view import View


@dataclass
class AnswerColumns:
    """The latest record of every key, one entry per record in each array."""

    variants: list[str]
    categories: list[str]
    labels: dict[str, list[str]]  # per scorer, its labels: the codes index them
    variant: np.ndarray  # int32 codes into `variants`
    category: np.ndarray  # int32 codes into `categories`
    item: np.ndarray  # int64: one code per (prompt id, sample), the unit variants are paired on
    probe: np.ndarray  # bool: a synthetic probe
    ok: np.ndarray  # bool: the record is an answer
    unsure: dict[str, np.ndarray]  # per measure (see uncertainty.MEASURES), NaN where unknown
    label: dict[str, np.ndarray]  # per scorer, int32 label codes, -1 where none is current
    unscored: dict[str, int] = field(default_factory=dict)  # answers without a current score


# The record's fields the columns are made of (see `harness.analysis.view.open_view`).
FIELDS = (
    "variant",
    "prompt_category",
    "prompt_id",
    "sample",
    "is_synthetic_probe",
    "unsure",
)
# Per answer (in ledger order): what the columns hold.
_QUERY = f"""
SELECT variant, prompt_category, dense_rank() OVER (ORDER BY prompt_id, sample) - 1 AS item,
       is_synthetic_probe, status = 'ok' AS ok,
       {", ".join(f"coalesce(unsure.{name}, 'NaN'::DOUBLE) AS {name}" for name in MEASURES)}
FROM latest ORDER BY line
"""


def view_columns(view: View) -> AnswerColumns:
    """The columns of every latest record of `view`, joined with each scorer's current label."""
    table = view.arrow(_QUERY)
    variants = pc.dictionary_encode(table["variant"]).combine_chunks()
    categories = pc.dictionary_encode(table["prompt_category"]).combine_chunks()
    ok = numbers(table["ok"], bool)
    labels, label, unscored = {}, {}, {}
    for name, summary in view.scorers.items():
        names = summary.labels()
        given = view.arrow(
            "SELECT s.label FROM latest a LEFT JOIN scores s ON s.answer_key = a.key "
            "AND s.scorer = ? ORDER BY a.line",
            [name],
        )["label"]
        codes = pc.fill_null(pc.index_in(given, value_set=pa.array(names, pa.string())), -1)
        labels[name] = names
        label[name] = np.where(ok, numbers(codes, np.int32), -1).astype(np.int32)
        unscored[name] = int(np.sum(ok & (label[name] < 0)))
    return AnswerColumns(
        variants=variants.dictionary.to_pylist(),
        categories=categories.dictionary.to_pylist(),
        labels=labels,
        variant=numbers(variants.indices, np.int32),
        category=numbers(categories.indices, np.int32),
        item=numbers(table["item"], np.int64),
        probe=numbers(table["is_synthetic_probe"], bool),
        ok=ok,
        unsure={name: numbers(table[name], float) for name in MEASURES},
        label=label,
        unscored=unscored,
    )


def numbers(column: pa.ChunkedArray | pa.Array, dtype: type | np.dtype) -> np.ndarray:
    """An Arrow column as a numpy array of `dtype` (nulls as NaN where `dtype` holds them)."""
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=dtype)
