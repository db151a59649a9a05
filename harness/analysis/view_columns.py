"""The view's latest answers as columns of small numbers for statistics over a million of them
(`AnswerColumns`), in ledger order, taken from DuckDB as Arrow arrays: each answer's variant,
category (or the split it falls in: `--by`, see `split_fields`), item (prompt id and sample: the
unit two variants are paired on), whether it is a synthetic probe, whether it is an answer, its
uncertainty measures, and per scorer the code of its current label (-1: none)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.analysis.uncertainty import MEASURES
from harness.analysis.view import RECORD_COLUMNS, View
from harness.errors import InputError


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

    def labelled(self, scorer: str) -> np.ndarray:
        """Which answers have a current label from `scorer`."""
        return self.label[scorer] >= 0


# The record's fields the columns are made of (see `harness.analysis.view.open_view`).
FIELDS = (
    "variant",
    "prompt_category",
    "prompt_id",
    "sample",
    "is_synthetic_probe",
    "unsure",
)
# What an answer can be split by (`--by`) besides its prompt's metadata fields: the record's
# own fields, and the sampling parameters of its variant.
_RECORD_SPLITS = {
    "is_synthetic_probe": "CAST(is_synthetic_probe AS VARCHAR)",
    "category": "prompt_category",
    "variant": "variant",
    "model": "model",
    "provider": "provider",
}
# (not `seed`: a job's own, drawn from the run's seed, its prompt and sample: one split per job)
_SAMPLING = ("temperature", "top_p", "max_tokens")
# The record's other fields, and the seed: none is offered as a split (most are one per answer,
# prompt or job: a key, a prompt id, a timestamp, a seed).
_OWN = {*RECORD_COLUMNS, "seed"}
_PROMPT = "metadata."  # `--by metadata.NAME`: the prompt's field, even one named like those
_NONE = "(none)"  # the split of an answer without the field
_EMPTY = "(empty)"  # the split of an answer whose field is the empty text


def split_fields(by: Sequence[str]) -> tuple[str, ...]:
    """The record's fields `latest` must hold to split answers by `by`."""
    needed = {"model", "provider"} & set(by)
    if set(by) & set(_SAMPLING):
        needed.add("sampling_params")
    if any(_metadata_key(name) is not None for name in by):
        needed.add("metadata")
    return tuple(sorted(needed))


def _split_sql(by: Sequence[str]) -> str:
    """SQL for the split of an answer: the text of its field (see `split_fields`), or of each
    field named (`name=value, ...`)."""
    parts = []
    for name in by:
        quoted = name.replace("'", "''")
        field = _metadata_key(name)
        found = _RECORD_SPLITS.get(name) if field is None else None
        if found is None:  # the key as a quoted JSON path: any character may be in it
            column, key = ("sampling_params", name) if field is None else ("metadata", field)
            key = key.replace("\\", "\\\\").replace('"', '\\"').replace("'", "''")
            found = f"json_extract_string({column}, '$.\"{key}\"')"
        text = f"CASE {found} WHEN '' THEN '{_EMPTY}' ELSE coalesce({found}, '{_NONE}') END"
        parts.append(text if len(by) == 1 else f"'{quoted}=' || {text}")
    return " || ', ' || ".join(parts)


# Per answer (in ledger order): what the columns hold.
_QUERY = """
SELECT variant, {split} AS prompt_category,
       dense_rank() OVER (ORDER BY prompt_id, sample) - 1 AS item,
       is_synthetic_probe, status = 'ok' AS ok,
       {measures}
FROM latest ORDER BY line
"""
_MEASURES = ", ".join(f"coalesce(unsure.{name}, 'NaN'::DOUBLE) AS {name}" for name in MEASURES)


def view_columns(view: View, by: Sequence[str] = ()) -> AnswerColumns:
    """The columns of every latest record of `view`, joined with each scorer's current label;
    with `by`, each answer's category is its split (the value of the one field, or `field=value,
    ...` of several; the view holding `split_fields(by)`): InputError for a field no answer
    has."""
    split = "prompt_category"
    if by:
        _check_split(view, by)
        split = _split_sql(by)
    table = view.arrow(_QUERY.format(split=split, measures=_MEASURES))
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


def _check_split(view: View, by: Sequence[str]) -> None:
    """InputError naming the `--by` fields no answer's metadata has (with those it has)."""
    asked = [(name, key) for name in by if (key := _metadata_key(name)) is not None]
    if not asked:
        return
    found = view.arrow(
        "SELECT DISTINCT unnest(json_keys(metadata)) AS name FROM latest WHERE metadata IS NOT NULL"
    )["name"].to_pylist()
    missing = [name for name, key in asked if key not in found]
    if missing:
        named = {_PROMPT + key if _metadata_key(key) != key else key for key in found}
        known = f"(fields: {', '.join(sorted({*_RECORD_SPLITS, *_SAMPLING, *named}))})"
        own = [name for name in missing if name in _OWN]
        if "prompt_category" in own:
            raise InputError("--by: prompt_category: its split is --by category")
        if own:
            raise InputError(f"--by: {', '.join(own)}: not a field to split answers by {known}")
        raise InputError(f"--by: no answer has {', '.join(missing)} {known}")


def _metadata_key(name: str) -> str | None:
    """The prompt's field a `--by` name splits by (None: the record's own field, or a sampling
    parameter): `metadata.NAME` is always the prompt's NAME."""
    if name.startswith(_PROMPT):
        return name.removeprefix(_PROMPT)
    if name in _RECORD_SPLITS or name in _SAMPLING:
        return None
    return name


def numbers(column: pa.ChunkedArray | pa.Array, dtype: type | np.dtype) -> np.ndarray:
    """An Arrow column as a numpy array of `dtype` (nulls as NaN where `dtype` holds them)."""
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=dtype)
