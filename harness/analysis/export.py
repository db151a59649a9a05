"""`harness export`: every job's latest record joined with its current scores, one row per job,
as Parquet, CSV or JSONL (the legacy pilot's JSON is `harness.analysis.pilot`).

Columns, in this order (`a.b` is field b of the record's object a):

    key, status, variant, provider, model, prompt_id, sample, prompt_category,
    is_synthetic_probe, prompt_hash, run_id, schema, full_response, finish_reason, finish_detail,
    tokens.<count>..., cost_usd, sampling.<parameter>..., timestamp, elapsed_seconds,
    retry_count, error.<field>..., attempt_errors, metadata.<prompt field>..., token_logprobs,
    uncertainty.first_token_margin, uncertainty.mean_topk_entropy, uncertainty.sequence_logprob,
    score.<scorer>... (the current label), score.<scorer>.value (for scorers that give numbers)

The fields under tokens, sampling, error and metadata are those the ledger's records have. Each
such column's type follows its values: bool, int64, float64 (numbers of both kinds), string,
list<string>, else the values' JSON text. Parquet keeps `timestamp` as a UTC timestamp and
`attempt_errors` and `token_logprobs` as lists of structs (a position is `{token, logprob,
token_id, top_tokens, top_logprobs, top_ids}`); CSV has them (and lists) as JSON text; JSONL writes
each row as one object, nested values as the ledger has them. Uncertainty is that of
`harness.analysis.uncertainty` (NaN/null without logprobs); a score counts as in
`harness.analysis.labels`.

Memory stays flat: rows are built and written 16,384 at a time (a Parquet row group each), and
the file is written whole (`harness.analysis.whole`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from harness.analysis.answers import Advance, bulk, latest_positions, records_at
from harness.analysis.labels import Labels, read_labels
from harness.analysis.positions import MalformedLogprobs, Positions, flatten
from harness.analysis.scores import answer_digest
from harness.analysis.uncertainty import MEASURES, measure
from harness.analysis.whole import written_whole
from harness.errors import InputError

Format = Literal["parquet", "csv", "jsonl"]
BATCH = 16_384

_HEAD = (
    ("key", pa.string()),
    ("status", pa.string()),
    ("variant", pa.string()),
    ("provider", pa.string()),
    ("model", pa.string()),
    ("prompt_id", pa.string()),
    ("sample", pa.int64()),
    ("prompt_category", pa.string()),
    ("is_synthetic_probe", pa.bool_()),
    ("prompt_hash", pa.string()),
    ("run_id", pa.string()),
    ("schema", pa.int64()),
    ("full_response", pa.string()),
    ("finish_reason", pa.string()),
    ("finish_detail", pa.string()),
)
_MIDDLE = (("elapsed_seconds", pa.float64()), ("retry_count", pa.int64()))
# The record's objects whose fields become columns, and their columns' prefix.
_GROUPS = {
    "tokens": "tokens",
    "sampling_params": "sampling",
    "error": "error",
    "metadata": "metadata",
}
_SOURCES = {prefix: name for name, prefix in _GROUPS.items()}
_ERROR = pa.struct(
    [
        ("type", pa.string()),
        ("message", pa.string()),
        ("retryable", pa.bool_()),
        ("status", pa.int64()),
        ("retry_after", pa.float64()),
    ]
)
_POSITION = pa.struct(
    [
        ("token", pa.string()),
        ("logprob", pa.float64()),
        ("token_id", pa.int64()),
        ("top_tokens", pa.list_(pa.string())),
        ("top_logprobs", pa.list_(pa.float64())),
        ("top_ids", pa.list_(pa.int64())),
    ]
)
_TIMESTAMP = pa.timestamp("ms", tz="UTC")

# How a column's values are written: as they are; as their JSON text in Parquet and CSV (values
# of mixed types); as Parquet's nested type and as JSON text in CSV (lists, structs); or parsed
# from ISO-8601 text (the timestamp).
Form = Literal["plain", "text", "nested", "timestamp"]


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType  # its type in Parquet
    form: Form = "plain"
    source: tuple[str, str | None] | None = None  # the record's field (and its object's key)


@dataclass
class Batch:
    """Rows of the export: each column's values, and the rows' token logprobs flattened."""

    values: dict[str, list[Any]]
    positions: Positions


def _token_logprobs_array(positions: Positions) -> pa.Array:
    """Token logprobs as Parquet holds them, built from the flattened lists in one go."""
    widths = np.asarray(positions.widths, dtype=np.int32)
    tops = np.concatenate([[0], np.cumsum(widths)]).astype(np.int32)
    top_ids = pa.array(positions.top_ids, pa.list_(pa.int64()))
    position = pa.StructArray.from_arrays(
        [
            pa.array(positions.token, pa.string()),
            pa.array(positions.logprob, pa.float64()),
            pa.array(positions.token_id, pa.int64()),
            pa.ListArray.from_arrays(tops, pa.array(positions.top_tokens, pa.string())),
            pa.ListArray.from_arrays(tops, pa.array(positions.top_logprobs, pa.float64())),
            top_ids,
        ],
        fields=list(_POSITION),
    )
    counts = np.asarray(positions.counts, dtype=np.int32)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    missing = pa.array(np.logical_not(positions.present))
    return pa.ListArray.from_arrays(pa.array(starts), position, mask=missing)


class _Kinds:
    """The kinds of value seen for one field: bool, int, float, str, list of str, other."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def add(self, value: Any) -> None:
        if value is not None:
            self.seen.add(_kind(value))

    def column(self, name: str) -> Column:
        seen = self.seen
        if not seen or seen == {"str"}:
            return Column(name, pa.string())
        if seen == {"bool"}:
            return Column(name, pa.bool_())
        if seen == {"int"}:
            return Column(name, pa.int64())
        if seen <= {"int", "float"}:
            return Column(name, pa.float64())
        if seen == {"list_str"}:
            return Column(name, pa.list_(pa.string()), "nested")
        return Column(name, pa.string(), "text")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "list_str"
    return "other"


@dataclass
class Layout:
    """The export's columns, learned from the records (`observe` each one)."""

    ledger: Path
    fields: dict[str, dict[str, _Kinds]] = field(
        default_factory=lambda: {name: {} for name in _GROUPS}
    )
    _signatures: set[tuple[Any, ...]] = field(default_factory=set)

    def observe(self, record: dict[str, Any]) -> None:
        for name, kinds in self.fields.items():
            values = record.get(name)
            if values is None:
                continue
            if type(values) is not dict:
                where = f"{self.ledger}: record {record['key']!r}: {name}"
                raise InputError(f"{where}: expected an object, got {values!r:.60}")
            types = tuple(map(type, values.values()))
            signature = (name, *values, *types)
            if signature not in self._signatures:  # a new shape: every value counts
                self._signatures.add(signature)
                for key, value in values.items():
                    kinds.setdefault(key, _Kinds()).add(value)
            elif list in types or dict in types:  # a known shape: only what it holds can differ
                for key, value in values.items():
                    if value and type(value) in (list, dict):
                        kinds[key].add(value)

    def columns(self, labels: Labels) -> list[Column]:
        columns = [Column(name, kind, source=(name, None)) for name, kind in _HEAD]
        columns += self._group("tokens")
        columns.append(Column("cost_usd", pa.float64(), source=("cost_usd", None)))
        columns += self._group("sampling_params")
        columns.append(Column("timestamp", _TIMESTAMP, "timestamp", ("timestamp", None)))
        columns += [Column(name, kind, source=(name, None)) for name, kind in _MIDDLE]
        columns += self._group("error")
        columns.append(
            Column("attempt_errors", pa.list_(_ERROR), "nested", ("attempt_errors", None))
        )
        columns += self._group("metadata")
        columns.append(Column("token_logprobs", pa.list_(_POSITION), "nested"))
        columns += [Column(f"uncertainty.{name}", pa.float64()) for name in MEASURES]
        for name, scorer in labels.scorers.items():
            columns.append(Column(f"score.{name}", pa.string()))
            if scorer.has_values:
                columns.append(Column(f"score.{name}.value", pa.float64()))
        return columns

    def _group(self, name: str) -> list[Column]:
        prefix = _GROUPS[name]
        return [
            replace(kinds.column(f"{prefix}.{key}"), source=(name, key))
            for key, kinds in self.fields[name].items()
        ]


def export_rows(
    ledger: Path, scores: Path, advance: Advance | None = None
) -> tuple[list[Column], Labels, Iterator[Batch]]:
    """The columns, the labels joined (from the scores file `scores`, which may not exist), and
    the rows in batches, in ledger order."""
    layout = Layout(ledger)
    positions = latest_positions(ledger, advance, layout.observe)  # its keys go before labels
    labels = read_labels(scores, advance=advance)
    columns = layout.columns(labels)
    records = records_at(ledger, positions, advance=advance)
    return columns, labels, _batches(ledger, columns, labels, records)


def _batches(
    ledger: Path, columns: list[Column], labels: Labels, records: Iterator[dict[str, Any]]
) -> Iterator[Batch]:
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) == BATCH:
            yield _batch(ledger, columns, labels, batch)
            batch = []
    if batch:
        yield _batch(ledger, columns, labels, batch)


def _batch(
    ledger: Path, columns: list[Column], labels: Labels, records: list[dict[str, Any]]
) -> Batch:
    get = dict.get
    values: dict[str, list[Any]] = {}
    objects: dict[str, list[dict[str, Any]]] = {}  # each record's tokens, sampling_params, ...
    for column in columns:
        if column.source is None:
            continue
        field, key = column.source
        if key is None:
            values[column.name] = list(map(get, records, repeat(field)))
            continue
        if field not in objects:
            objects[field] = [found or {} for found in map(get, records, repeat(field))]
        values[column.name] = list(map(get, objects[field], repeat(key)))
    logprobs = list(map(get, records, repeat("token_logprobs")))
    values["token_logprobs"] = logprobs
    try:
        positions = flatten(logprobs)
        measured = measure(logprobs, positions)
    except MalformedLogprobs as exc:
        key = records[exc.index]["key"]
        raise InputError(f"{ledger}: record {key!r}: token_logprobs: {exc}") from None
    for name in MEASURES:  # unknown is null, not NaN
        values[f"uncertainty.{name}"] = [None if v != v else v for v in measured[name].tolist()]
    if labels.scorers:
        _join_scores(values, labels, records)
    return Batch(values, positions)


def _join_scores(
    values: dict[str, list[Any]], labels: Labels, records: list[dict[str, Any]]
) -> None:
    digests = [answer_digest(r) if r["status"] == "ok" else "" for r in records]
    for name, scorer in labels.scorers.items():
        given = [scorer.label_of(r["key"], d) for r, d in zip(records, digests, strict=True)]
        values[f"score.{name}"] = [g[0] if g else None for g in given]
        if scorer.has_values:
            values[f"score.{name}.value"] = [g[1] if g else None for g in given]


@dataclass(frozen=True)
class Exported:
    """What an export wrote: its rows, and the scores file's unreadable lines (skipped)."""

    rows: int
    skipped_scores: int


def write_export(
    ledger: Path, scores: Path, form: Format, target: Path, advance: Advance | None = None
) -> Exported:
    """Write the export of `ledger` joined with the scores file `scores` (which may not exist)
    to `target`, whole."""
    with bulk():
        columns, labels, batches = export_rows(ledger, scores, advance)
        return Exported(_write(form, target, columns, batches, ledger), labels.skipped)


def _write(
    form: Format, target: Path, columns: list[Column], batches: Iterator[Batch], ledger: Path
) -> int:
    with written_whole(target) as temporary:
        if form == "jsonl":
            return _write_jsonl(temporary, columns, batches)
        nested = form == "parquet"
        schema = pa.schema([pa.field(c.name, _written_type(c, nested)) for c in columns])
        if nested:
            writer = pq.ParquetWriter(temporary, schema, compression="zstd")
        else:
            writer = pa_csv.CSVWriter(temporary, schema)
        rows = 0
        with writer:
            for batch in batches:
                arrays = [_array(ledger, c, batch, nested) for c in columns]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                rows += len(batch.values["key"])
        return rows


def _write_jsonl(target: Path, columns: list[Column], batches: Iterator[Batch]) -> int:
    names = [c.name for c in columns]
    rows = 0
    with target.open("wb") as file:
        for batch in batches:
            values = batch.values
            ordered = [values[name] for name in names]
            file.writelines(
                orjson.dumps(dict(zip(names, row, strict=True))) + b"\n"
                for row in zip(*ordered, strict=True)
            )
            rows += len(values["key"])
    return rows


def _written_type(column: Column, nested: bool) -> pa.DataType:
    if column.form == "text" or (column.form == "nested" and not nested):
        return pa.string()
    return column.type


def _array(ledger: Path, column: Column, batch: Batch, nested: bool) -> pa.Array:
    """One column of a batch as an Arrow array; InputError naming the first record whose value
    does not fit."""
    if nested and column.name == "token_logprobs":
        return _token_logprobs_array(batch.positions)
    values = batch.values
    data = values[column.name]
    try:
        return _converted(column, data, nested)
    except _UNFIT as exc:
        problem = exc
    for key, value in zip(values["key"], data, strict=True):
        try:
            _converted(column, [value], nested)
        except _UNFIT as exc:
            problem = exc
            where = f"record {key!r}: {column.name}: {value!r:.80}"
            break
    else:
        where = f"{column.name}: values"
    fit = _written_type(column, nested)
    raise InputError(f"{ledger}: {where} does not fit {fit} ({problem})") from None


_UNFIT = (pa.ArrowException, TypeError, ValueError, AttributeError, OverflowError)


def _converted(column: Column, data: list[Any], nested: bool) -> pa.Array:
    written = _written_type(column, nested)
    if column.form == "timestamp":
        return pa.array(data, pa.string()).cast(written)
    if written == pa.string() and column.form in ("text", "nested"):
        data = [None if v is None else orjson.dumps(v).decode() for v in data]
    return pa.array(data, written)
