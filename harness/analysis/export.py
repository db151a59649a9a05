"""`harness export`: every job's latest record joined with its current scores, one row per job,
as Parquet, CSV or JSONL (the legacy pilot's JSON is `harness.analysis.pilot`).

Columns, in this order (`a.b` is field b of the record's object a):

    key, status, variant, provider, model, prompt_id, sample, prompt_category,
    is_synthetic_probe, prompt_hash, run_id, schema, full_response, finish_reason, finish_detail,
    tokens.<count>..., cost_usd, sampling.<parameter>..., timestamp, elapsed_seconds,
    retry_count, error.<field>..., attempt_errors, mode, batch_id, adapter,
    metadata.<prompt field>..., token_logprobs,
    uncertainty.first_token_margin, uncertainty.mean_topk_entropy, uncertainty.sequence_logprob,
    score.<scorer>... (the current label), score.<scorer>.value (for scorers that give numbers)

Types: see `harness.analysis.export_layout`. `timestamp` is a UTC timestamp; `attempt_errors` is
a list of `{type, message, retryable, status, retry_after}`; `token_logprobs` a list of positions
`{token, logprob, token_id, top_tokens, top_logprobs, top_ids}` (the ledger's `top` pairs as two
lists). Parquet holds them so; CSV holds lists and structs as their JSON text; JSONL writes each
row as one JSON object, its `token_logprobs` as the ledger holds them (`{token, logprob, top:
[[token, logprob], ...], token_id, top_ids}`, the record's own value). Unknown uncertainty (no
logprobs) is null. A score counts as in `harness.analysis.labels`.

The first pass finds each key's latest record from line heads alone; the second converts them
256 at a time (few enough to stay in the CPU's caches: 30% faster than 4,096) by Arrow in one
call (the records' dicts read in C++, not field by field in Python) and writes them in row groups
of 65,536 rows, so memory stays flat; the file is written whole (`harness.whole`).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from harness.analysis.answers import Source, Stretch, held, records_at
from harness.analysis.export_layout import (
    POSITION,
    TIMESTAMP,
    Column,
    Layout,
    export_schema,
    json_text,
    plain_schema,
)
from harness.analysis.labels import Labels
from harness.analysis.parallel import in_workers, report_read, shared
from harness.analysis.positions import MalformedLogprobs, Positions, flatten
from harness.analysis.reading import Latest, read_latest
from harness.analysis.scores import answer_digest
from harness.analysis.uncertainty import measure
from harness.bulk import collector_paused
from harness.errors import InputError
from harness.ledger.sets import Advance, Ledgers
from harness.ledger.targets import OwnFile, head_lines
from harness.whole import discard, remove_stale, temporary_path, written_whole

Format = Literal["parquet", "csv", "jsonl"]
BATCH = 256  # records converted at once: few enough that their parsed dicts stay in the caches
ROW_GROUP = 65_536  # rows per Parquet row group
# Parts per worker process: this process writes the first while the workers convert the others.
_PARTS_PER_WORKER = 4
# Parts compressed with lz4, on disk beside the target until it is written: measured on bench
# (p), 125,000 answers take 121 MB uncompressed (82% of their ledger lines), 51 MB with lz4, for
# 0.35 s more to write and 0.23 s more to read.
_PART_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
_PARTS = "export-parts"  # the name of the parts' folders (see `harness.whole.temporary_path`)

# What `format` the pilot-json export's metadata says (`harness.analysis.pilot`).
PILOT_FORMAT = "harness pilot-json 1"
# The columns every export of the three tables has: its first ones, and one of its last.
_EXPORT_HEAD, _EXPORT_TAIL = ["key", "status", "variant"], "uncertainty.first_token_margin"
# A JSONL export's row as it opens: its first columns, as orjson writes them.
_STRING = rb'"(?:[^"\\]|\\.)*"'
_JSONL_HEAD = re.compile(rb'\A\{"key":' + _STRING + rb',"status":' + _STRING + rb',"variant":"')

_FINEST = pa.timestamp("ns", tz="UTC")
# What a field a line was written without means: a line from before `mode` was live.
_UNWRITTEN_MEANS = {"mode": "live"}
_UNFIT = (pa.ArrowException, TypeError, ValueError, AttributeError, OverflowError)


@dataclass(frozen=True)
class Exported:
    """What an export wrote: its rows, and the scores file's unreadable lines (skipped)."""

    rows: int
    skipped_scores: int
    skipped_lines: int = 0  # the ledger's: torn, damaged, of no known shape


class _LayoutGrew(Exception):
    """A record has a field, or a kind of value, that the export's columns do not."""


def write_export(
    ledger: Path | Ledgers,
    scores: Path,
    form: Format,
    target: Path,
    advance: Advance | None = None,
    workers: int | None = None,
) -> Exported:
    """Write the export of `ledger` joined with the scores file `scores` (which may not exist)
    to `target`, whole; `workers`: processes to convert the records (None: one per core when
    the ledger is big enough; see `harness.analysis.reading`).

    The columns are learned from the records as they are read, and fixed by the first batch; a
    later record with a field (or a kind of value) the first batch did not have makes the export
    read every record first, then start again with all the columns (one more pass)."""
    with (
        collector_paused(),
        held(ledger) as file,
    ):  # every pass reads this one source
        read = _Read(ledger, file, read_latest(file, scores, (), advance, workers), advance)
        if not read.latest.positions:
            raise InputError(f"{ledger}: no result records in it")
        with written_whole(target) as temporary:
            if read.latest.workers == 1:
                rows = _export_here(read, form, temporary)
            else:
                rows = _export_in_workers(read, form, temporary)
        # the latest lines that were not records when parsed whole (see `records_at`) too
        unread = read.latest.skipped + len(read.latest.positions) - rows
        return Exported(rows, read.latest.labels.skipped, unread)


def is_export(path: Path) -> bool:
    """Whether the file at `path` is an export: Parquet, CSV or JSONL with the export's columns,
    or pilot-json by its metadata's `format`."""
    head = next(head_lines(path), b"")
    if head.startswith(b"PAR1"):
        names = pq.read_schema(path).names
    elif head.startswith(b'{"metadata": {"format":'):
        return head.startswith(b'{"metadata": ' + orjson.dumps({"format": PILOT_FORMAT})[:-1])
    elif head.startswith(b"{") and not head.endswith(b"\n"):  # a row longer than is read
        return _JSONL_HEAD.match(head) is not None
    elif head.startswith(b"{"):
        names = list(orjson.loads(head))
    else:
        names = next(csv.reader([head.decode()]), [])
    return names[:3] == _EXPORT_HEAD and _EXPORT_TAIL in names


EXPORT = OwnFile("an earlier export", is_export)


@dataclass(frozen=True)
class _Read:
    """The ledger an export reads (`ledger` names it; `file` is it, held open), where its
    latest records are, with their labels, and what to tell of the bytes read."""

    ledger: Path | Ledgers
    file: Source
    latest: Latest
    advance: Advance | None


def _export_here(read: _Read, form: Format, temporary: Path) -> int:
    ledger, file, advance = read.ledger, read.file, read.advance
    layout, labels, positions = Layout(ledger), read.latest.labels, read.latest.positions
    try:
        records = records_at(file, positions, advance=advance)
        return _write(form, temporary, _Converter(ledger, layout, labels, form).batches(records))
    except _LayoutGrew:
        for record in records_at(file, positions, advance=advance):
            layout.observe(record)
    records = records_at(file, positions, advance=advance)
    return _write(form, temporary, _Converter(ledger, layout, labels, form).batches(records))


def _export_in_workers(read: _Read, form: Format, temporary: Path) -> int:
    """Each worker converts stretches of the records into Arrow files of their own (parts,
    beside `temporary`, compressed with lz4), their columns growing as the records need; this
    process writes the parts into `temporary` in order, each as soon as it is done, while their
    columns are those of the first. When they are not (a record with a field the first part
    lacks), every part whose columns are not those of all the records is converted again with
    them (as one process converts every record again), and all are written anew."""
    ledger, latest = read.ledger, read.latest
    stretches = latest.stretches(_PARTS_PER_WORKER)
    with (
        _parts_folder(temporary.parent) as folder,
        in_workers(latest.workers, (ledger, read.file, latest.labels), read.advance) as pool,
    ):  # the workers end before their folder goes
        parts = [
            pool.submit(_convert_part, *s, folder, str(n), form) for n, s in enumerate(stretches)
        ]
        try:
            return _write(form, temporary, _as_first(parts))
        except _LayoutGrew:
            done = [wait() for wait in parts]
        layout = Layout(ledger)
        for part in done:
            layout.include(part.layout)
        schema = export_schema(_columns(layout, latest.labels, form))
        for n, (part, stretch) in enumerate(zip(done, stretches, strict=True)):
            if any(not s.equals(schema, check_metadata=True) for s in part.schemas):
                again = (folder, f"{n}-again", form, layout)
                parts[n] = pool.submit(_convert_part, *stretch, *again)
        return _write(form, temporary, _as_first(parts))


@contextmanager
def _parts_folder(beside: Path) -> Iterator[str]:
    """A new folder for the parts, in `beside` (named after this process: see `harness.whole`),
    removed on the way out; the folders of parts that exports killed here left are removed
    first."""
    remove_stale(beside, _PARTS)
    folder = temporary_path(beside, _PARTS, "parts")
    folder.mkdir()
    try:
        yield str(folder)
    finally:
        discard(folder)


@dataclass
class _Part:
    """What a worker made of a stretch: Arrow files of its batches (a new one each time the
    columns grew), and what it learned of every record."""

    files: list[str]
    schemas: list[pa.Schema]
    layout: Layout


def _convert_part(
    positions: Sequence[int],
    start: int,
    end: int,
    folder: str,
    name: str,
    form: Format,
    layout: Layout | None = None,
) -> _Part:
    """In a worker: the records at `positions` (between bytes `start` and `end` of the ledger)
    converted into Arrow files in `folder` whose names begin with `name`: with the columns of
    `layout` (one that has seen every record), else with columns that grow as they must."""
    ledger, file, labels = shared()
    converter = _Converter(ledger, layout or Layout(ledger), labels, form, refit=layout is None)
    records = records_at(Stretch(file, start, end), positions, advance=report_read)
    files: list[str] = []
    schemas: list[pa.Schema] = []
    writer: pa.ipc.RecordBatchStreamWriter | None = None
    try:
        for batch in converter.batches(records):
            if writer is None or not batch.schema.equals(schemas[-1], check_metadata=True):
                if writer is not None:
                    writer.close()
                files.append(os.path.join(folder, f"{name}-{len(files)}.arrow"))
                schemas.append(batch.schema)
                writer = pa.ipc.new_stream(files[-1], batch.schema, options=_PART_OPTIONS)
            writer.write_batch(batch)
    finally:
        if writer is not None:
            writer.close()
    return _Part(files, schemas, converter.layout)


def _as_first(parts: list[Callable[[], _Part]]) -> Iterator[pa.RecordBatch]:
    """The batches of every part in order, waiting for each; _LayoutGrew at the first file
    whose columns are not those of the first file."""
    schema = None
    for wait in parts:
        for path in wait().files:
            with pa.ipc.open_stream(path) as reader:
                schema = reader.schema if schema is None else schema
                if not reader.schema.equals(schema, check_metadata=True):
                    raise _LayoutGrew
                yield from reader


class _Converter:
    """Records to Arrow batches; the first batch fixes the columns (see `write_export`), or,
    with `refit`, each batch whose records grew the layout fixes them anew."""

    def __init__(
        self,
        ledger: Path | Ledgers,
        layout: Layout,
        labels: Labels,
        form: Format,
        *,
        refit: bool = False,
    ) -> None:
        self.ledger, self.layout, self.labels, self.refit = ledger, layout, labels, refit
        self.form = form
        self.fixed_at: int | None = None  # the layout's `grown` when the columns were fixed
        self.columns: list[Column] = []
        self.schema = pa.schema([])
        self.record_type = pa.struct([])

    def batches(self, records: Iterable[dict[str, Any]]) -> Iterator[pa.RecordBatch]:
        batch: list[dict[str, Any]] = []
        for record in records:
            batch.append(record)
            if len(batch) == BATCH:
                yield self.convert(batch)
                batch = []
        if batch or self.fixed_at is None:
            yield self.convert(batch)

    def _fix(self) -> None:
        """Learn nothing more: the columns are those of the layout now."""
        self.fixed_at = self.layout.grown
        self.columns = _columns(self.layout, self.labels, self.form)
        self.schema = export_schema(self.columns)
        self.record_type = self.layout.record_type()

    def convert(self, records: list[dict[str, Any]]) -> pa.RecordBatch:
        for record in records:
            self.layout.observe(record)
        if self.fixed_at is None or (self.refit and self.layout.grown != self.fixed_at):
            self._fix()
        elif self.layout.grown != self.fixed_at:
            raise _LayoutGrew
        taken = self._taken(records)
        logprobs = [record.get("token_logprobs") for record in records]
        try:
            positions = flatten(logprobs)
            measured = measure(logprobs, positions)
        except MalformedLogprobs as exc:
            raise self._misfit(records[exc.index], "token_logprobs", str(exc)) from None
        scores = self._scores(records)
        arrays = []
        for column in self.columns:
            field, key = column.source
            if column.form == "plain" and field in _UNWRITTEN_MEANS:
                arrays.append(pc.fill_null(taken[field], _UNWRITTEN_MEANS[field]))
            elif column.form == "plain":
                arrays.append(taken[field] if key is None else taken[field][key])
            elif column.form == "timestamp":
                arrays.append(self._timestamps(taken["timestamp"]))
            elif column.form == "text":
                objects = map(dict.get, records, repeat(field))
                values = [(found or {}).get(key) for found in objects]
                arrays.append(pa.array([json_text(v) for v in values], pa.string()))
            elif column.form == "token_logprobs" and column.type == pa.string():
                arrays.append(pa.array([json_text(v) for v in logprobs], pa.string()))
            elif column.form == "token_logprobs":
                arrays.append(_token_logprobs(positions))
            elif column.form == "uncertainty":
                measures = measured[field]
                arrays.append(pa.array(measures, pa.float64(), mask=np.isnan(measures)))
            else:  # a score's label or value
                arrays.append(pa.array(scores[field][column.form == "value"], column.type))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _taken(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The records as Arrow converts them, by field, and by key inside each object."""
        try:
            converted = pa.array(records, type=self.record_type)
        except _UNFIT:
            raise self._first_misfit(records) from None
        taken: dict[str, Any] = {}
        for field, array in zip(self.record_type.names, converted.flatten(), strict=True):
            if pa.types.is_struct(array.type):
                taken[field] = dict(zip(array.type.names, array.flatten(), strict=True))
            else:
                taken[field] = array
        return taken

    def _timestamps(self, texts: pa.Array) -> pa.Array:
        """The records' times; null for one that is not an ISO-8601 time with its zone (as the
        report leaves it out of its timeline)."""
        try:
            return _to_milliseconds(texts)
        except _UNFIT:
            return _to_milliseconds(pa.array(map(_time_or_none, texts.to_pylist()), pa.string()))

    def _scores(self, records: list[dict[str, Any]]) -> dict[str, tuple[list[Any], list[Any]]]:
        if not self.labels.scorers:
            return {}
        digests = [answer_digest(r) if r["status"] == "ok" else "" for r in records]
        joined = {}
        for name, scorer in self.labels.scorers.items():
            given = [scorer.label_of(r["key"], d) for r, d in zip(records, digests, strict=True)]
            joined[name] = (
                [g[0] if g else None for g in given],
                [g[1] if g else None for g in given],
            )
        return joined

    def _first_misfit(self, records: list[dict[str, Any]]) -> InputError:
        """The error naming the first record, and its field, that Arrow cannot convert."""
        for record in records:
            for field in self.record_type:
                value = record.get(field.name)
                try:
                    pa.array([value], field.type)
                except _UNFIT as exc:
                    return self._misfit(record, field.name, f"{value!r:.80} ({exc})")
        return InputError(f"{self.ledger}: records that Arrow cannot convert")

    def _misfit(self, record: dict[str, Any], field: str, problem: str) -> InputError:
        return InputError(f"{self.ledger}: record {record.get('key')!r}: {field}: {problem}")


def _columns(layout: Layout, labels: Labels, form: Format) -> list[Column]:
    """The export's columns as `form` holds them: JSONL has `token_logprobs` as the ledger's own
    JSON text (written as it is), the others the positions of `POSITION`."""
    columns = layout.columns(labels)
    if form != "jsonl":
        return columns
    return [replace(c, type=pa.string()) if c.form == "token_logprobs" else c for c in columns]


def _time_or_none(text: str | None) -> str | None:
    try:
        _to_milliseconds(pa.array([text], pa.string()))
    except _UNFIT:
        return None
    return text


def _to_milliseconds(texts: pa.Array) -> pa.Array:
    """ISO-8601 times as the export's timestamps: finer fractions of a second (a hand-made or
    converted ledger's microseconds) cut to the millisecond the harness writes."""
    return texts.cast(_FINEST).cast(TIMESTAMP, safe=False)


def _token_logprobs(positions: Positions) -> pa.Array:
    """Token logprobs as the export holds them, built from the flattened lists in one go."""
    widths = np.asarray(positions.widths, dtype=np.int32)
    tops = pa.array(np.concatenate([[0], np.cumsum(widths)]).astype(np.int32))
    position = pa.StructArray.from_arrays(
        [
            pa.array(positions.token, pa.string()),
            pa.array(positions.logprob, pa.float64()),
            pa.array(positions.token_id, pa.int64()),
            pa.ListArray.from_arrays(tops, pa.array(positions.top_tokens, pa.string())),
            pa.ListArray.from_arrays(tops, pa.array(positions.top_logprobs, pa.float64())),
            pa.array(positions.top_ids, pa.list_(pa.int64())),
        ],
        fields=list(POSITION),
    )
    counts = np.asarray(positions.counts, dtype=np.int32)
    starts = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    return pa.ListArray.from_arrays(
        starts, position, mask=pa.array(np.logical_not(positions.present))
    )


def _write_parquet(target: Path, batches: Iterator[pa.RecordBatch]) -> int:
    rows = written = 0
    pending: list[pa.RecordBatch] = []
    writer: pq.ParquetWriter | None = None
    try:
        for batch in batches:
            writer = writer or pq.ParquetWriter(target, batch.schema, compression="zstd")
            pending.append(batch)
            rows += batch.num_rows
            if rows - written >= ROW_GROUP:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=ROW_GROUP)
                pending, written = [], rows
        if pending and writer is not None:
            writer.write_table(pa.Table.from_batches(pending), row_group_size=ROW_GROUP)
    finally:
        if writer is not None:
            writer.close()
    return rows


def _write_csv(target: Path, batches: Iterator[pa.RecordBatch]) -> int:
    rows = 0
    writer: pa_csv.CSVWriter | None = None
    try:
        for batch in batches:
            flat = _json_text_columns(batch)
            writer = writer or pa_csv.CSVWriter(target, flat.schema)
            writer.write_batch(flat)
            rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def _json_text_columns(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with its lists and structs as their JSON text, for CSV."""
    arrays, fields = list(batch.columns), list(batch.schema)
    for at, column in enumerate(fields):
        if pa.types.is_list(column.type):
            texts = [json_text(value) for value in arrays[at].to_pylist()]
            arrays[at] = pa.array(texts, pa.string())
            fields[at] = pa.field(column.name, pa.string())
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _write_jsonl(target: Path, batches: Iterator[pa.RecordBatch]) -> int:
    """One JSON object per row; `token_logprobs` (the ledger's JSON text) written as it is."""
    rows = 0
    with target.open("wb") as file:
        for batch in batches:
            for row in batch.to_pylist():
                held = row["token_logprobs"]
                row["token_logprobs"] = None if held is None else orjson.Fragment(held)
                file.write(orjson.dumps(row) + b"\n")
            rows += batch.num_rows
    return rows


def _write(form: Format, target: Path, batches: Iterator[pa.RecordBatch]) -> int:
    """Write `batches` to `target` as `form`, their fields' metadata left out; the rows
    written."""
    plain: dict[pa.Schema, pa.Schema] = {}

    def without_metadata(batch: pa.RecordBatch) -> pa.RecordBatch:
        schema = plain.get(batch.schema) or plain.setdefault(
            batch.schema, plain_schema(batch.schema)
        )
        return pa.RecordBatch.from_arrays(batch.columns, schema=schema)

    return _WRITERS[form](target, map(without_metadata, batches))


_WRITERS = {"parquet": _write_parquet, "csv": _write_csv, "jsonl": _write_jsonl}
