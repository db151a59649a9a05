"""`harness export`: every job's latest record joined with its current scores, one row per job,
as Parquet, CSV or JSONL (the legacy pilot's JSON is `harness.analysis.pilot`), made by DuckDB
from the analysis's view of the ledger (`harness.analysis.view`).

Columns, in this order (`a.b` is field b of the record's object a):

    key, status, variant, provider, model, prompt_id, sample, prompt_category,
    is_synthetic_probe, prompt_hash, run_id, schema, full_response, finish_reason, finish_detail,
    tokens.<count>..., cost_usd, sampling.<parameter>..., timestamp, elapsed_seconds,
    retry_count, error.<field>..., attempt_errors, mode, batch_id, adapter,
    metadata.<prompt field>..., token_logprobs,
    uncertainty.first_token_margin, uncertainty.mean_topk_entropy, uncertainty.sequence_logprob,
    score.<scorer>... (the current label), score.<scorer>.value (for scorers that give numbers)

The fields of `tokens`, `sampling_params`, `error` and `metadata` become columns in the order
they first appear in the ledger (DuckDB finds them: each distinct shape of the four objects,
with its first line, then one pass over the values whose kind the shape leaves open). A field's
type follows its values: bool, int64, float64 (numbers of both kinds), string, list<string>;
values of any other kind (an object, a list of anything but strings, a number past 64 bits), or
of mixed kinds, are written as their JSON text. A float64 column refuses a whole number it cannot
hold exactly (beyond 2^53): one line naming the record, exit 2.

Types: `timestamp` is a UTC timestamp (ms; null for a time that is not ISO-8601 with its zone);
`attempt_errors` is a list of `{type, message, retryable, status, retry_after}`;
`token_logprobs` a list of positions `{token, logprob, token_id, top_tokens, top_logprobs,
top_ids}` (the ledger's `top` pairs as two lists). Parquet holds them so; CSV holds lists and
structs as their JSON text; JSONL writes each row as one JSON object, its `token_logprobs` as the
ledger holds them (`{token, logprob, top: [[token, logprob], ...], token_id, top_ids}`). Unknown
uncertainty (no logprobs) is null; the measures are `harness.analysis.uncertainty`'s, computed on
each batch's flat logprobs. A score counts as in `harness.analysis.view`.

DuckDB hands the rows over as Arrow batches of `BATCH` rows in ledger order, a scan of `latest`
(written in that order: checked as it is read, and read again with `ORDER BY line` where it is
not) beside the scores' columns (read apart, sorted), written as they come (Parquet in row groups
of `ROW_GROUP` rows), so memory stays bounded; the file is written whole (`harness.whole`).
"""

from __future__ import annotations

import contextlib
import csv
import queue
import re
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from harness.analysis.uncertainty import MEASURES, measure_arrow
from harness.analysis.view import FIELDS, View, in_order, open_view
from harness.errors import InputError
from harness.ledger.sets import Advance, Ledgers
from harness.ledger.targets import OwnFile, head_lines
from harness.whole import written_whole

Format = Literal["parquet", "csv", "jsonl"]
BATCH = 8_192  # rows DuckDB hands over at once
ROW_GROUP = 32_768  # rows per Parquet row group
AHEAD = 4  # batches made while the ones before are written
_DONE = object()  # no batch comes after

# What `format` the pilot-json export's metadata says (`harness.analysis.pilot`).
PILOT_FORMAT = "harness pilot-json 1"
# The columns every export of the three tables has: its first ones, and one of its last.
_EXPORT_HEAD, _EXPORT_TAIL = ["key", "status", "variant"], "uncertainty.first_token_margin"
# A JSONL export's row as it opens: its first columns, as orjson writes them.
_STRING = rb'"(?:[^"\\]|\\.)*"'
_JSONL_HEAD = re.compile(rb'\A\{"key":' + _STRING + rb',"status":' + _STRING + rb',"variant":"')

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
_FINEST = pa.timestamp("ns", tz="UTC")
_UNFIT = (pa.ArrowException, TypeError, ValueError, AttributeError, OverflowError)

# The record's objects whose fields become columns, with their columns' prefix.
GROUPS = {
    "tokens": "tokens",
    "sampling_params": "sampling",
    "error": "error",
    "metadata": "metadata",
}
_ERROR_SQL = (
    'from_json(attempt_errors, \'[{"type": "VARCHAR", "message": "VARCHAR", '
    '"retryable": "BOOLEAN", "status": "BIGINT", "retry_after": "DOUBLE"}]\')'
)
# How a column is made: taken as DuckDB gives it ("plain"), JSON text normalised as orjson writes
# it ("text"), parsed from ISO-8601 text ("timestamp"), the token logprobs, or a measure.
Form = Literal["plain", "text", "timestamp", "token_logprobs", "uncertainty"]
_LINE = "__line"  # a record's line, as the export's query names it
_LARGEST_EXACT = 1 << 53  # the largest whole number a float64 holds exactly
_DOUBLE_MISFIT = (
    "Integer value {} is outside of the range exactly representable by a IEEE 754 double "
    "precision value"
)


@dataclass(frozen=True)
class Exported:
    """What an export wrote: its rows, and the scores file's unreadable lines (skipped)."""

    rows: int
    skipped_scores: int
    skipped_lines: int = 0  # the ledger's: torn, damaged, of no known shape


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    sql: str  # what DuckDB selects for it from `answers`
    form: Form = "plain"
    scored: bool = False  # a scorer's label or value, read from `answers`


def write_export(
    ledger: Path | Ledgers,
    scores: Path,
    form: Format,
    target: Path,
    advance: Advance | None = None,
    threads: int | None = None,
) -> Exported:
    """Write the export of `ledger` joined with the scores file `scores` (which may not exist)
    to `target`, whole; `threads`: DuckDB's (None: one per core)."""
    with open_view(ledger, scores, threads=threads, advance=advance, fields=FIELDS) as view:
        rows = view.connection.execute("SELECT count(*) FROM latest").fetchall()[0][0]
        if not rows:
            raise InputError(f"{ledger}: no result records in it")
        columns = export_columns(view)
        with written_whole(target) as temporary:
            try:
                written = _written(temporary, view, columns, form, scan=True)
            except _OutOfOrder:
                written = _written(temporary, view, columns, form, scan=False)
        return Exported(written, view.labels.skipped, view.skipped)


def _written(target: Path, view: View, columns: list[Column], form: Format, scan: bool) -> int:
    """Write the export's rows to `target` (see `_batches`); the thread that makes them is
    stopped before this returns or raises, whatever the writer did."""
    with contextlib.closing(_made_ahead(view, _batches(view, columns, form, scan))) as batches:
        return _WRITERS[form](target, batches)


class _OutOfOrder(Exception):
    """A scan of `latest` gave its records out of line order."""


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


def scorer_order(view: View) -> list[str]:
    """The view's scorers in the order the scores file first names them (by name where the
    view does not say)."""
    try:
        found = view.connection.execute(
            "SELECT scorer FROM score_lines GROUP BY scorer ORDER BY min(line), scorer"
        ).fetchall()
    except duckdb.CatalogException:  # no scores file: no order to keep
        found = []
    named = [name for (name,) in found if name in view.scorers]
    return named + sorted(set(view.scorers) - set(named))


def export_columns(view: View) -> list[Column]:
    """Every column of the export, in order (see the module docstring)."""
    groups = _fields(view)
    columns = [
        _plain("key", pa.string()),
        _plain("status", pa.string()),
        _plain("variant", pa.string()),
        _plain("provider", pa.string()),
        _plain("model", pa.string()),
        _plain("prompt_id", pa.string()),
        Column("sample", pa.int64(), "CAST(sample AS BIGINT)"),
        _plain("prompt_category", pa.string()),
        _plain("is_synthetic_probe", pa.bool_()),
        _plain("prompt_hash", pa.string()),
        _plain("run_id", pa.string()),
        Column("schema", pa.int64(), "CAST(schema AS BIGINT)"),
        _plain("full_response", pa.string()),
        _plain("finish_reason", pa.string()),
        _plain("finish_detail", pa.string()),
        *groups["tokens"],
        _plain("cost_usd", pa.float64()),
        *groups["sampling_params"],
        Column("timestamp", TIMESTAMP, "timestamp", "timestamp"),
        _plain("elapsed_seconds", pa.float64()),
        Column("retry_count", pa.int64(), "CAST(retry_count AS BIGINT)"),
        *groups["error"],
        Column("attempt_errors", pa.list_(ERROR), _ERROR_SQL),
        # a line from before `mode` was written: a live answer
        Column("mode", pa.string(), "coalesce(mode, 'live')"),
        _plain("batch_id", pa.string()),
        _plain("adapter", pa.string()),
        *groups["metadata"],
        Column("token_logprobs", pa.list_(POSITION), "token_logprobs", "token_logprobs"),
    ]
    columns += [
        Column(f"uncertainty.{name}", pa.float64(), "NULL", "uncertainty") for name in MEASURES
    ]
    for name in scorer_order(view):
        label = f"score.{name}"
        columns.append(Column(label, pa.string(), _ident(label), scored=True))
        if view.scorers[name].has_values:
            value = f"{label}.value"
            columns.append(Column(value, pa.float64(), _ident(value), scored=True))
    return columns


def _plain(name: str, kind: pa.DataType) -> Column:
    return Column(name, kind, _ident(name))


# What a value's JSON type (DuckDB's `json_type`) may be, as the export's kinds: a kind, or a
# question DuckDB answers over the values (see `_settle`).
_SURE = {"BOOLEAN": "bool", "VARCHAR": "str"}
_OPEN = {"UBIGINT": "whole", "BIGINT": "whole", "DOUBLE": "double", "ARRAY": "array"}
# SQL over a field's value `{v}` (JSON) and its type `{t}`: which kinds it has.
_KIND_SQL = {
    "whole": (
        ("int", "{t} IN ('UBIGINT', 'BIGINT') AND TRY_CAST({v} AS BIGINT) IS NOT NULL"),
        ("other", "{t} IN ('UBIGINT', 'BIGINT') AND TRY_CAST({v} AS BIGINT) IS NULL"),
    ),
    "double": (  # DuckDB reads a whole number past 64 bits as a DOUBLE, its text kept
        ("float", "{t} = 'DOUBLE' AND regexp_matches({v}::VARCHAR, '[.eEnN]')"),
        ("other", "{t} = 'DOUBLE' AND NOT regexp_matches({v}::VARCHAR, '[.eEnN]')"),
    ),
    "array": (
        ("empty_list", "{t} = 'ARRAY' AND json_array_length({v}) = 0"),
        (
            "list_str",
            "{t} = 'ARRAY' AND json_array_length({v}) > 0 "
            "AND list_bool_and([k = 'VARCHAR' FOR k IN json_type({v}, '$[*]')])",
        ),
        (
            "other",
            "{t} = 'ARRAY' AND json_array_length({v}) > 0 "
            "AND NOT list_bool_and([k = 'VARCHAR' FOR k IN json_type({v}, '$[*]')])",
        ),
    ),
}


def _fields(view: View) -> dict[str, list[Column]]:
    """The columns of each of the record's objects (`GROUPS`): the fields in the order they
    first appear, each typed by the kinds of its values. Each object's distinct texts are asked
    about, not every record's (the bench's 1M answers: 0.6 s against 1.1 s)."""
    connection = view.connection
    kinds: dict[str, dict[str, set[str]]] = {group: {} for group in GROUPS}
    questions: dict[tuple[str, str], set[str]] = {}
    for group in GROUPS:
        found = connection.execute(
            f"SELECT json_structure(value), min(first) AS first FROM ({_distinct(group)}) "
            "WHERE json_type(value) = 'OBJECT' GROUP BY ALL ORDER BY first"
        ).fetchall()
        for shape, _ in found:
            fields = orjson.loads(shape)  # an empty object's structure is "JSON": no fields
            for key, of in fields.items() if isinstance(fields, dict) else ():
                seen = kinds[group].setdefault(key, set())
                if isinstance(of, str) and of in _SURE:
                    seen.add(_SURE[of])
                elif isinstance(of, list):
                    questions.setdefault((group, key), set()).add("array")
                elif isinstance(of, str) and of in _OPEN:
                    questions.setdefault((group, key), set()).add(_OPEN[of])
                elif of != "NULL":  # an object
                    seen.add("other")
    _settle(connection, kinds, questions)
    columns = {}
    for group, fields in kinds.items():
        columns[group] = [_field_column(group, key, _type(seen)) for key, seen in fields.items()]
    _refuse_inexact(view, kinds, columns)
    return columns


def _distinct(group: str) -> str:
    """SQL: each distinct text of the object `group` (as `value`) and the first line it is on."""
    return f"SELECT {group} AS value, min(line) AS first FROM latest GROUP BY value"


def _settle(
    connection: Any, kinds: dict[str, dict[str, set[str]]], questions: dict[Any, set[str]]
) -> None:
    """Add to `kinds` the kinds the values of the fields in `questions` have, asked of DuckDB in
    one pass over each object's distinct texts, each text parsed once."""
    asked: dict[str, list[tuple[str, str, str]]] = {}
    keys: dict[str, list[str]] = {}
    for (group, key), open_ in questions.items():
        keys.setdefault(group, []).append(key)
        value = f"v[{len(keys[group])}]"
        for question in sorted(open_):
            for kind, sql in _KIND_SQL[question]:
                sql = sql.format(v=value, t=f"json_type({value})")
                asked.setdefault(group, []).append((key, kind, sql))
    for group, wanted in asked.items():
        pointers = ", ".join(_pointer(key) for key in keys[group])
        answers = connection.execute(
            "SELECT "
            + ", ".join(f"coalesce(bool_or({sql}), false)" for *_, sql in wanted)
            + f" FROM (SELECT json_extract(value, [{pointers}]) AS v FROM ({_distinct(group)}))"
        ).fetchall()[0]
        for (key, kind, _), has in zip(wanted, answers, strict=True):
            if has:
                kinds[group][key].add(kind)


def _type(seen: set[str]) -> pa.DataType | None:
    """The Arrow type of a field whose values are of the kinds `seen`; None for JSON text."""
    kinds = seen - {"empty_list"}
    if "empty_list" in seen and kinds <= {"list_str"}:
        return pa.list_(pa.string())
    if "empty_list" in seen:
        return None
    if not kinds or kinds == {"str"}:
        return pa.string()
    if kinds == {"bool"}:
        return pa.bool_()
    if kinds == {"int"}:
        return pa.int64()
    if kinds <= {"int", "float"}:
        return pa.float64()
    if kinds == {"list_str"}:
        return pa.list_(pa.string())
    return None


def _field_column(group: str, key: str, kind: pa.DataType | None) -> Column:
    name = f"{GROUPS[group]}.{key}"
    value = f"json_extract({group}, {_pointer(key)})"
    if kind is None:
        return Column(name, pa.string(), f"{value}::VARCHAR", "text")
    if kind == pa.string():
        sql = f"json_extract_string({group}, {_pointer(key)})"
    elif kind == pa.bool_():
        sql = f"TRY_CAST({value} AS BOOLEAN)"
    elif kind == pa.int64():
        sql = f"CAST({value} AS BIGINT)"
    elif kind == pa.float64():
        sql = f"CAST({value} AS DOUBLE)"
    else:
        sql = f"from_json({value}, '[\"VARCHAR\"]')"
    return Column(name, kind, sql)


def _refuse_inexact(
    view: View, kinds: dict[str, dict[str, set[str]]], columns: dict[str, list[Column]]
) -> None:
    """InputError naming the first record with a whole number a float64 column of its cannot
    hold exactly (as Arrow refuses to convert it)."""
    checks = []
    for group, fields in kinds.items():
        for key, seen in fields.items():
            if "int" in seen and _type(seen) == pa.float64():
                value = f"json_extract({group}, {_pointer(key)})"
                checks.append(
                    (
                        group,
                        f"json_type({value}) IN ('UBIGINT', 'BIGINT') AND "
                        f"abs(TRY_CAST({value} AS HUGEINT)) > {_LARGEST_EXACT}",
                        value,
                    )
                )
    if not checks:
        return
    found = []
    for group, where, value in checks:
        row = view.connection.execute(
            f"SELECT line, key, {group}::VARCHAR, {value}::VARCHAR FROM latest WHERE {where} "
            "ORDER BY line LIMIT 1"
        ).fetchall()
        found += [(*row[0], group)] if row else []
    if found:
        _, key, text, number, group = min(found)
        shown = f"{orjson.loads(text)!r:.80}"
        problem = _DOUBLE_MISFIT.format(number)
        raise InputError(f"{view.ledger}: record {key!r}: {group}: {shown} ({problem})")


def _pointer(key: str) -> str:
    """SQL: the JSON pointer of an object's field `key`."""
    return "'/" + key.replace("~", "~0").replace("/", "~1").replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _batches(
    view: View, columns: list[Column], form: Format, scan: bool
) -> Generator[pa.RecordBatch]:
    """The export's rows, in ledger order, as batches of the export's schema; with `scan`, the
    records as a scan of `latest` gives them (_OutOfOrder where that is not line order), else
    sorted by DuckDB."""
    connection = view.connection
    selected = [
        f"{c.sql} AS {_ident(c.name)}" for c in columns if c.form != "uncertainty" and not c.scored
    ]
    schema = pa.schema([pa.field(c.name, c.type) for c in columns])
    if form == "jsonl":
        at = schema.get_field_index("token_logprobs")
        schema = schema.set(at, pa.field("token_logprobs", pa.string()))
    scored = [f"{c.sql} AS {_ident(c.name)}" for c in columns if c.scored]
    scores = pa.table({})
    if scored:
        scores = connection.sql(
            f"SELECT {', '.join(scored)} FROM answers ORDER BY line"
        ).to_arrow_table()
    done, last = 0, -1
    with in_order(connection):
        query = f"SELECT line AS {_LINE}, {', '.join(selected)} FROM latest"
        with connection.sql(query + ("" if scan else " ORDER BY line")).to_arrow_reader(
            BATCH
        ) as reader:  # closed before the setting is put back
            for batch in reader:
                lines = batch[_LINE].to_numpy()
                if len(lines) and (lines[0] <= last or (np.diff(lines) <= 0).any()):
                    raise _OutOfOrder
                last = int(lines[-1]) if len(lines) else last
                rows = scores.slice(done, batch.num_rows)
                done += batch.num_rows
                yield _converted(batch, rows, columns, schema, form)


def _made_ahead(view: View, batches: Generator[pa.RecordBatch]) -> Generator[pa.RecordBatch]:
    """`batches`, made in a thread of their own up to `AHEAD` before the caller takes them (who
    writes meanwhile); stopped, and DuckDB interrupted, when the caller stops."""
    made: queue.Queue[Any] = queue.Queue(AHEAD)
    stopped = threading.Event()

    def offer(item: Any) -> bool:
        while not stopped.is_set():
            try:
                made.put(item, timeout=0.05)
            except queue.Full:
                continue
            return True
        return False

    def make() -> None:
        try:
            for batch in batches:
                if not offer(batch):
                    break
            else:
                offer(_DONE)
        except BaseException as exc:  # the caller's to raise
            offer(exc)
        finally:
            batches.close()

    maker = threading.Thread(target=make, name="export-rows", daemon=True)
    maker.start()
    try:
        while (item := made.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stopped.set()
        maker.join(timeout=0.5)  # a batch being made: done soon
        if maker.is_alive():  # DuckDB still at work (sorting, say): stop it
            view.connection.interrupt()
            maker.join()


def _converted(
    batch: pa.RecordBatch,
    scores: pa.Table,
    columns: list[Column],
    schema: pa.Schema,
    form: Format,
) -> pa.RecordBatch:
    # the measures of an answer's token logprobs; none for a failure's (read from the column
    # the export holds: DuckDB hands the nested lists over once)
    measured = measure_arrow(batch["token_logprobs"])
    answered = pc.fill_null(pc.equal(batch["status"], "ok"), False).to_numpy(zero_copy_only=False)
    arrays = []
    for column, field in zip(columns, schema, strict=True):
        if column.form == "uncertainty":
            measures = np.where(
                answered, measured[column.name.removeprefix("uncertainty.")], np.nan
            )
            arrays.append(pa.array(measures, pa.float64(), mask=np.isnan(measures)))
            continue
        if column.scored:
            arrays.append(scores[column.name].combine_chunks().cast(field.type))
            continue
        array = batch[column.name]
        if column.form == "timestamp":
            arrays.append(_timestamps(array))
        elif column.form == "text":
            arrays.append(pa.array(map(_json_text, array.to_pylist()), pa.string()))
        elif column.form == "token_logprobs" and form == "jsonl":
            arrays.append(pa.array(map(_ledger_form, array.to_pylist()), pa.string()))
        else:
            arrays.append(array.cast(field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _json_text(text: str | None) -> str | None:
    """A value's JSON text as orjson writes it (null: None)."""
    if text is None or text == "null":
        return None
    try:
        return orjson.dumps(orjson.loads(text)).decode()
    except (orjson.JSONDecodeError, TypeError):  # past orjson's 64 bits: DuckDB's text
        return text


def _ledger_form(positions: list[dict[str, Any]] | None) -> str | None:
    """Token logprobs as the ledger holds them, as JSON text."""
    if positions is None:
        return None
    return orjson.dumps(
        [
            {
                "token": p["token"],
                "logprob": p["logprob"],
                "top": [
                    list(pair) for pair in zip(p["top_tokens"], p["top_logprobs"], strict=True)
                ],
                "token_id": p["token_id"],
                "top_ids": p["top_ids"],
            }
            for p in positions
        ]
    ).decode()


def _timestamps(texts: pa.Array) -> pa.Array:
    """The records' times; null for one that is not an ISO-8601 time with its zone (as the
    report leaves it out of its timeline)."""
    try:
        return _to_milliseconds(texts)
    except _UNFIT:
        return _to_milliseconds(pa.array(map(_time_or_none, texts.to_pylist()), pa.string()))


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


def _write_parquet(target: Path, batches: Iterator[pa.RecordBatch]) -> int:
    rows = written = 0
    pending: list[pa.RecordBatch] = []
    writer: pq.ParquetWriter | None = None
    try:
        for batch in batches:
            writer = writer or pq.ParquetWriter(
                target,
                batch.schema,
                compression="zstd",
                use_dictionary=list(_dictionary_columns(batch.schema)),
                write_statistics=_flat_columns(batch.schema),
            )
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


def _dictionary_columns(schema: pa.Schema) -> Iterator[str]:
    """The Parquet columns (leaves, by path) worth a dictionary: all but floating-point ones.
    Logprobs and seconds seldom repeat, so their dictionary fills and is dropped after costing
    the time (1M answers' 20M top logprobs: 1.05 s with one and 125 MB, 0.73 s and 115 MB
    without)."""

    def leaves(path: str, kind: pa.DataType) -> Iterator[str]:
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            yield from leaves(f"{path}.list.element", kind.value_type)
        elif pa.types.is_struct(kind):
            for child in kind:
                yield from leaves(f"{path}.{child.name}", child.type)
        elif not pa.types.is_floating(kind):
            yield path

    for field in schema:
        yield from leaves(field.name, field.type)


def _flat_columns(schema: pa.Schema) -> list[str]:
    """The columns that are neither lists nor structs: those whose Parquet statistics (each row
    group's least and greatest value) a reader can filter by. The nested ones' leaves go without
    (1M answers: 0.3 s of the 3.0 s the writer takes)."""
    return [f.name for f in schema if not pa.types.is_nested(f.type)]


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
            texts = [_dumped(value) for value in arrays[at].to_pylist()]
            arrays[at] = pa.array(texts, pa.string())
            fields[at] = pa.field(column.name, pa.string())
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _dumped(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


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


_WRITERS: dict[str, Callable[[Path, Iterator[pa.RecordBatch]], int]] = {
    "parquet": _write_parquet,
    "csv": _write_csv,
    "jsonl": _write_jsonl,
}
