"""The export's columns, learned from the records: which fields the ledger's `tokens`,
`sampling_params`, `error` and `metadata` objects hold, and the type each column gets.

A field's type follows its values: bool, int64, float64 (numbers of both kinds), string,
list<string>; values of any other kind, or of mixed kinds, are written as their JSON text. The
records exported are observed as they are read; records of a shape already seen cost a tuple
and a set lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa

from harness.analysis.labels import Labels
from harness.analysis.uncertainty import MEASURES
from harness.errors import InputError
from harness.ledger.sets import Ledgers

# How a column is made: taken from the records converted by Arrow ("plain"), written as JSON
# text by Python ("text"), parsed from ISO-8601 text ("timestamp"), or made by the export from
# the token logprobs, the uncertainty measures or the scores.
Form = Literal["plain", "text", "timestamp", "token_logprobs", "uncertainty", "score", "value"]


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    form: Form = "plain"
    source: tuple[str, str | None] = ("", None)  # the record's field, and that object's key


HEAD = (
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
# How the job was sent ("live" or "batch"), the provider's id of its batch, and the LoRA adapter
# that answered.
TAIL = (("mode", pa.string()), ("batch_id", pa.string()), ("adapter", pa.string()))
# The record's objects whose fields become columns, with their columns' prefix.
GROUPS = {
    "tokens": "tokens",
    "sampling_params": "sampling",
    "error": "error",
    "metadata": "metadata",
}
ERROR = pa.struct(
    [
        ("type", pa.string()),
        ("message", pa.string()),
        ("retryable", pa.bool_()),
        ("status", pa.int64()),
        ("retry_after", pa.float64()),
    ]
)
POSITION = pa.struct(
    [
        ("token", pa.string()),
        ("logprob", pa.float64()),
        ("token_id", pa.int64()),
        ("top_tokens", pa.list_(pa.string())),
        ("top_logprobs", pa.list_(pa.float64())),
        ("top_ids", pa.list_(pa.int64())),
    ]
)
TIMESTAMP = pa.timestamp("ms", tz="UTC")
_FORM = b"form"  # a field's metadata key: how its column was made


class _Kinds:
    """The kinds of value seen for one field: bool, int, float, str, list of str, other."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def add(self, value: Any) -> bool:
        """Note a value; whether its kind is new for the field."""
        if value is None:
            return False
        kind = _kind(value)
        if kind in self.seen:
            return False
        self.seen.add(kind)
        return True

    def type(self) -> pa.DataType | None:
        """The Arrow type of the field, or None for JSON text."""
        seen = self.seen - {"empty_list"}
        if "empty_list" in self.seen and seen <= {"list_str"}:
            return pa.list_(pa.string())
        if "empty_list" in self.seen:
            return None
        if not seen or seen == {"str"}:
            return pa.string()
        if seen == {"bool"}:
            return pa.bool_()
        if seen == {"int"}:
            return pa.int64()
        if seen <= {"int", "float"}:
            return pa.float64()
        if seen == {"list_str"}:
            return pa.list_(pa.string())
        return None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(1 << 63) <= value < (1 << 63) else "other"  # an int64 column, or text
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list) and not value:
        return "empty_list"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "list_str"
    return "other"


@dataclass
class Layout:
    """The fields of the records' objects, learned one record at a time (`observe`); `grown`
    counts the changes (a new field, or a new kind of value for one)."""

    ledger: Path | Ledgers
    fields: dict[str, dict[str, _Kinds]] = field(default_factory=lambda: {g: {} for g in GROUPS})
    grown: int = 0
    # Each shape seen (object, keys, value types), with the keys whose values are lists or
    # objects: the only values of a known shape whose kind can still be new.
    _shapes: dict[tuple[Any, ...], tuple[str, ...]] = field(default_factory=dict)

    def observe(self, record: dict[str, Any]) -> None:
        for name, kinds in self.fields.items():
            values = record.get(name)
            if values is None:
                continue
            if type(values) is not dict:
                where = f"{self.ledger}: record {record['key']!r}: {name}"
                raise InputError(f"{where}: expected an object, got {values!r:.60}")
            shape = (name, *values, *map(type, values.values()))
            containers = self._shapes.get(shape)
            if containers is None:  # a new shape: every value counts
                self._shapes[shape] = tuple(
                    key for key, value in values.items() if type(value) in (list, dict)
                )
                for key, value in values.items():
                    if key not in kinds:
                        kinds[key] = _Kinds()
                        self.grown += 1
                    self.grown += kinds[key].add(value)
                continue
            for key in containers:
                value = values[key]
                if value:
                    self.grown += kinds[key].add(value)

    def include(self, other: Layout) -> None:
        """Learn what `other` learned (of records read after this one's), as if this layout had
        observed them too."""
        for group, kinds in other.fields.items():
            mine = self.fields[group]
            for key, seen in kinds.items():
                if key not in mine:
                    mine[key] = _Kinds()
                    self.grown += 1
                self.grown += len(seen.seen - mine[key].seen)
                mine[key].seen |= seen.seen
        self._shapes.update(other._shapes)

    def record_type(self) -> pa.StructType:
        """The struct Arrow converts each record to: every column taken as it is."""
        fields = [pa.field(name, kind) for name, kind in HEAD]
        fields.append(pa.field("tokens", self._struct("tokens")))
        fields.append(pa.field("cost_usd", pa.float64()))
        fields.append(pa.field("sampling_params", self._struct("sampling_params")))
        fields.append(pa.field("timestamp", pa.string()))
        fields.append(pa.field("elapsed_seconds", pa.float64()))
        fields.append(pa.field("retry_count", pa.int64()))
        fields.append(pa.field("error", self._struct("error")))
        fields.append(pa.field("attempt_errors", pa.list_(ERROR)))
        fields.append(pa.field("metadata", self._struct("metadata")))
        fields += [pa.field(name, kind) for name, kind in TAIL]
        return pa.struct(fields)

    def columns(self, labels: Labels) -> list[Column]:
        """Every column of the export, in order."""
        columns = [Column(name, kind, source=(name, None)) for name, kind in HEAD]
        columns += self._group("tokens")
        columns.append(Column("cost_usd", pa.float64(), source=("cost_usd", None)))
        columns += self._group("sampling_params")
        columns.append(Column("timestamp", TIMESTAMP, "timestamp", ("timestamp", None)))
        for name, kind in (("elapsed_seconds", pa.float64()), ("retry_count", pa.int64())):
            columns.append(Column(name, kind, source=(name, None)))
        columns += self._group("error")
        columns.append(Column("attempt_errors", pa.list_(ERROR), source=("attempt_errors", None)))
        columns += [Column(name, kind, source=(name, None)) for name, kind in TAIL]
        columns += self._group("metadata")
        columns.append(Column("token_logprobs", pa.list_(POSITION), "token_logprobs"))
        columns += [
            Column(f"uncertainty.{name}", pa.float64(), "uncertainty", (name, None))
            for name in MEASURES
        ]
        for name, scorer in labels.scorers.items():
            columns.append(Column(f"score.{name}", pa.string(), "score", (name, None)))
            if scorer.has_values:
                columns.append(Column(f"score.{name}.value", pa.float64(), "value", (name, None)))
        return columns

    def _struct(self, group: str) -> pa.StructType:
        return pa.struct(
            [
                pa.field(key, kind)
                for key, kinds in self.fields[group].items()
                if (kind := kinds.type()) is not None
            ]
        )

    def _group(self, group: str) -> list[Column]:
        prefix = GROUPS[group]
        columns = []
        for key, kinds in self.fields[group].items():
            kind = kinds.type()
            name = f"{prefix}.{key}"
            if kind is None:
                columns.append(Column(name, pa.string(), "text", (group, key)))
            else:
                columns.append(Column(name, kind, source=(group, key)))
        return columns


def export_schema(columns: list[Column]) -> pa.Schema:
    """The schema of `columns`; a column of JSON text says so in its field's metadata (`form`),
    which the files written leave out (see `plain_schema`)."""
    return pa.schema(
        [
            pa.field(c.name, c.type, metadata={_FORM: b"text"} if c.form == "text" else None)
            for c in columns
        ]
    )


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` without the fields' metadata."""
    return pa.schema([pa.field(f.name, f.type) for f in schema])


def json_text(value: Any) -> str | None:
    """A value as JSON text (None stays None)."""
    return None if value is None else orjson.dumps(value).decode()
