"""The analysis's view of a ledger: DuckDB tables of the latest record per key and of the current
score per answer and scorer, what `stats`, `export`, `report`, `annotate export` and `query` ask
their questions of.

- `latest`: the latest record of every key (one ledger file, a shard tree, or several ledgers
  read as one), with the resume index's rules: a line counts only when whole (its seal checked by
  `harness.analysis.sealed_pass`) and of the record's shape (checked there by the harness's own
  decoder); `line` is its place in the ledger. The table is written in line order, which a plain
  scan `in_order` keeps (else `ORDER BY line` reads the records in order; a reader that counts on
  the scan checks it). A damaged or misshapen line is skipped and counted (`View.skipped`). It
  holds the fields asked for, and what can be derived from them (`DERIVED`).
- `scores`: per answer and scorer, the current score: the latest line for its key says "ok", was
  made under the scorer's current definition (its last line's) and given to the answer as it is
  now (its `answer` digest equals the answer's, `harness.analysis.scores.answer_digest`:
  DuckDB's sha256 of the same JSON, checked in Python where the two disagree). A scores line is
  checked as `harness.analysis.scores.is_score` says.
- `answers` (a view): `latest` with, per scorer, `score.<scorer>` (the label, null when none is
  current) and `score.<scorer>.value`; `records` (when asked for): every record line.

DuckDB runs with `threads` (default: the cores) and `memory_limit` (default: a quarter of the
RAM, at most `MEMORY_LIMIT_MB`), spilling to a temporary folder of its own.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import msgspec
import orjson
import pyarrow as pa
from duckdb.func import ARROW

from harness.analysis.pass_processes import SealedPass, apart, interrupts_held, run_passes
from harness.analysis.scores import ScoreLine, answer_digest, is_score
from harness.analysis.sealed_pass import Parse, Readable, SealedLines, parse_lines, sealed_lines
from harness.analysis.shard_passes import file_passes, merged_lines
from harness.analysis.view_cache import checksums, forget, keep, restore, save, snapshot_for
from harness.errors import InputError
from harness.input_files import refuse_special
from harness.ledger.lines import READ_BUFFER, is_result, parse_line, parse_sealed
from harness.ledger.record import decode_record
from harness.ledger.sets import Advance, Ledgers

# The record's fields as DuckDB reads them. Every line DuckDB's reading is joined with was checked
# by the harness's own decoder first (`harness.ledger.record.decode_record`, in
# `harness.analysis.sealed_pass`), so each value is of its field's type and DuckDB's casts are
# exact; objects stay JSON.
_POSITIONS = (
    "STRUCT(token VARCHAR, logprob DOUBLE, top VARCHAR[][], token_id BIGINT, top_ids BIGINT[])[]"
)
# The token logprobs' numbers alone: a token in `top` is read as a null number.
_NUMBERS_ONLY = "STRUCT(logprob DOUBLE, top DOUBLE[][])[]"
RECORD_COLUMNS = {
    "key": "VARCHAR",
    "status": "VARCHAR",
    "prompt_hash": "VARCHAR",
    "schema": "UINTEGER",
    "run_id": "VARCHAR",
    "variant": "VARCHAR",
    "provider": "VARCHAR",
    "model": "VARCHAR",
    "prompt_id": "VARCHAR",
    "sample": "UINTEGER",
    "full_response": "VARCHAR",
    "finish_reason": "VARCHAR",
    "finish_detail": "VARCHAR",
    "tokens": "JSON",
    "cost_usd": "DOUBLE",
    "token_logprobs": _POSITIONS,
    "sampling_params": "JSON",
    "timestamp": "VARCHAR",
    "elapsed_seconds": "DOUBLE",
    "retry_count": "UINTEGER",
    "error": "JSON",
    "attempt_errors": "JSON",
    "prompt_category": "VARCHAR",
    "is_synthetic_probe": "BOOLEAN",
    "metadata": "JSON",
    "mode": "VARCHAR",
    "batch_id": "VARCHAR",
    "adapter": "VARCHAR",
    "crc": "VARCHAR",
}
SCORE_COLUMNS = {
    "key": "VARCHAR",
    "status": "VARCHAR",
    "definition": "VARCHAR",
    "answer": "VARCHAR",
    "answer_key": "VARCHAR",
    "scorer": "VARCHAR",
    "label": "VARCHAR",
    "value": "DOUBLE",
    "rater": "VARCHAR",
    "detail": "VARCHAR",
    "timestamp": "VARCHAR",
    "crc": "VARCHAR",
}


_OK = "r.status = 'ok'"
_PAIRS = "coalesce(p.top, [])"
# The token logprobs as the view holds them: per position its token, logprob and token id, and its
# alternatives' tokens, logprobs and ids as lists (the ledger's `top` pairs as two lists).
POSITIONS = (
    "[{'token': p.token, 'logprob': p.logprob, 'token_id': p.token_id, "
    f"'top_tokens': [pair[1] FOR pair IN {_PAIRS}], "
    f"'top_logprobs': [CAST(pair[2] AS DOUBLE) FOR pair IN {_PAIRS}], "
    "'top_ids': p.top_ids} FOR p IN r.token_logprobs]"
)
# The record as the view shows it where it is not the field as read.
_READ_AS = {
    "prompt_category": "coalesce(r.prompt_category, 'None')",
    "is_synthetic_probe": "coalesce(r.is_synthetic_probe, false)",
    "token_logprobs": POSITIONS,
}
FIELDS = [name for name in RECORD_COLUMNS if name != "crc"]


def _json_text(text: str) -> str:
    """SQL for a text as orjson writes it in JSON (null: `null`) where it holds no control
    character but a newline, return or tab (any other, the answer's digest is checked in
    Python). DuckDB's `to_json` would do it whole, but runs out of a 256 MB memory limit on
    long answers."""
    escaped = f"replace(replace({text}, '\\', '\\\\'), '\"', '\\\"')"
    for char, written in ((10, "n"), (13, "r"), (9, "t")):
        escaped = f"replace({escaped}, chr({char}), '\\{written}')"
    return f"coalesce('\"' || {escaped} || '\"', 'null')"


# What else the view can derive from a record: the digest of the answer (what a score was given
# to: `harness.analysis.scores.answer_digest`, from DuckDB's JSON of the two fields), how many
# token logprob positions an answer has, and the uncertainty measures of its token logprobs
# (`harness.analysis.uncertainty.measure_arrow`, called by DuckDB on each chunk of rows, on the
# numbers alone: a view with `unsure` does not hold the tokens).
DERIVED = {
    "digest": f"CASE WHEN {_OK} THEN sha256('[' || {_json_text('r.prompt_hash')} || ',' || "
    f"{_json_text('r.full_response')} || ']')[:16] END",
    "positions": f"CASE WHEN {_OK} THEN coalesce(len(r.token_logprobs), 0) END",
    "unsure": f"CASE WHEN {_OK} THEN measures(r.token_logprobs) END",
}
# The scores table's columns when there is no scores file.
_SCORES = "answer_key VARCHAR, scorer VARCHAR, label VARCHAR, value DOUBLE, rater VARCHAR"
LONGEST_LINE = 16 << 20  # DuckDB reads a line up to this long (its buffers are sized for it)


@dataclass
class ScorerSummary:
    """One scorer's current scores, counted."""

    name: str
    given: list[str] = field(default_factory=list)  # its current labels, sorted
    failed: int = 0  # latest lines that say "error"
    earlier_definition: int = 0  # latest lines made under an earlier definition
    has_values: bool = False
    definition: str | None = None  # its current definition hash (its last line's)

    def labels(self) -> list[str]:
        return self.given


@dataclass
class ScoreCounts:
    """The scores file's scorers (those kept), what it names, and its lines left out (torn,
    damaged, not scores, or lines whose answer digest is not one)."""

    scorers: dict[str, ScorerSummary] = field(default_factory=dict)
    named: set[str] = field(default_factory=set)
    skipped: int = 0


@dataclass
class View:
    """A DuckDB connection holding `answers` and `scores` (see the module docstring), and what
    reading them left out."""

    connection: duckdb.DuckDBPyConnection
    ledger: Path | Ledgers
    scores_path: Path
    skipped: int = 0  # ledger lines: torn, damaged, of no known shape
    labels: ScoreCounts = field(default_factory=ScoreCounts)
    paths: tuple[str, ...] = ()  # the ledger's files as DuckDB reads them (held open)
    # How DuckDB reads the ledger's latest records: each source's `read_json` and its join
    sources: list[tuple[str, str]] = field(default_factory=list)

    @property
    def scorers(self) -> dict[str, ScorerSummary]:
        return self.labels.scorers

    def arrow(self, sql: str, parameters: list[Any] | None = None) -> pa.Table:
        """A query's result as an Arrow table."""
        return self.connection.sql(sql, params=parameters).to_arrow_table()


def connect(
    threads: int | None = None, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the harness's settings: `threads` (default: the cores this
    process may use), `memory_limit` (default: a quarter of the RAM, at most
    `MEMORY_LIMIT_MB`)."""
    config: dict[str, Any] = {
        "threads": threads or cores(),
        "memory_limit": memory_limit or _default_memory(),
        "preserve_insertion_order": False,  # a reading in order says so (`in_order`)
    }
    return duckdb.connect(":memory:", config=config)


def cores() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


MEMORY_LIMIT_MB = 512  # the harness's cap on DuckDB: a verb's whole process stays near 1 GB


def _default_memory() -> str:
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 8 << 30
    return f"{max(256, min(MEMORY_LIMIT_MB, ram // 4 >> 20))}MB"


@contextmanager
def open_view(
    ledger: Path | Ledgers,
    scores: Path,
    *,
    scorers: Collection[str] = (),
    threads: int | None = None,
    memory_limit: str | None = None,
    advance: Advance | None = None,
    fields: Collection[str] = FIELDS,
    every_record: bool = False,
    snapshots: bool = True,
) -> Iterator[View]:
    """The view of `ledger` and the scores file `scores` (which may not exist), `scorers` only
    when named (in the order the scores file first names them); `latest` holds `fields` of the
    record (and the derived fields named: `DERIVED`; `unsure` not with `token_logprobs`) besides
    its key and line; with `every_record`, the table `records` holds every record line of the
    ledger. With `snapshots` (and not `every_record`), the view is taken from its snapshot
    while the files are as they were, and kept as one when the caller gets to its end
    (`harness.analysis.view_cache`).
    InputError when a file cannot be read."""
    if "unsure" in fields and "token_logprobs" in fields:
        raise ValueError("the measures read the token logprobs' numbers alone: not with the tokens")
    with ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="harness-view-"))
        connection = connect(threads, memory_limit)
        stack.callback(connection.close)
        connection.create_function("measures", _measures, [_NUMBERS_ONLY], _measured(), type=ARROW)
        _do(connection, f"SET temp_directory = '{_quoted(folder)}'")
        view = View(connection, ledger, scores)
        try:
            # One ledger file is opened once: the pass and DuckDB read the same file, even if the
            # path is given to another meanwhile (as `run --fresh` does).
            source, paths = _held(stack, ledger)
            view.paths = paths
            files = list(ledger.paths) if isinstance(ledger, Ledgers) else [ledger]
            snapshot = None
            if snapshots and not every_record:
                held = [Path(p) for p in paths]
                snapshot = snapshot_for(files, held, scores, fields, scorers)
            written, spread = False, threads or cores()
            kept = None if snapshot is None else restore(connection, snapshot, spread, advance)
            if kept is not None:
                _read_counts(view, kept)
            else:
                before = None if snapshot is None else checksums(snapshot, spread)
                if snapshot is not None:
                    stack.callback(forget, snapshot)  # unless the verb got to its end
                _make(view, stack, source, fields, scorers, Path(folder), every_record, advance)
                if (
                    snapshot is not None
                    and before is not None
                    and view.connection.execute("SELECT count(*) FROM latest").fetchone() != (0,)
                ):
                    written = save(connection, snapshot, _counts(view), before, spread)
            _score_columns(view)
            yield view
            if snapshot is not None and written:
                keep(snapshot)
        except duckdb.Error as exc:
            raise InputError(f"{ledger}: {_first_line(exc)}") from None
        except RuntimeError as exc:  # DuckDB interrupted by Ctrl-C, in this thread or another
            if "interrupted" in str(exc).lower():
                raise KeyboardInterrupt from None
            raise
        except OSError as exc:
            raise InputError(f"{exc.filename or ledger}: {exc.strerror or exc}") from None


@contextmanager
def in_order(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Within: a table is written in the order its query gives, and scanned in the order it was
    written."""
    _do(connection, "SET preserve_insertion_order = true")
    try:
        yield
    finally:
        _do(connection, "SET preserve_insertion_order = false")


def keep_latest(view: View, condition: str, parameters: list[Any]) -> None:
    """Keep in `latest` only the records that meet `condition` (SQL), whether it is a table or a
    view of a snapshot."""
    connection = view.connection
    with in_order(connection):
        _do(connection, f"CREATE TABLE kept AS SELECT * FROM latest WHERE {condition}", parameters)
    ((kind,),) = _do(
        connection,
        "SELECT table_type FROM information_schema.tables WHERE table_name = 'latest' "
        "AND table_catalog = current_database()",
    )
    _do(connection, f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} latest")
    _do(connection, "ALTER TABLE kept RENAME TO latest")


def _counts(view: View) -> dict[str, Any]:
    """What reading left out, and the scorers' summaries: what a snapshot keeps beside the
    tables."""
    labels = view.labels
    return {
        "skipped": view.skipped,
        "scorers": [dataclasses.asdict(s) for s in labels.scorers.values()],
        "named": sorted(labels.named),
        "scores_skipped": labels.skipped,
    }


def _read_counts(view: View, kept: dict[str, Any]) -> None:
    """Take back what `_counts` gave a snapshot."""
    view.skipped = kept["skipped"]
    view.labels = ScoreCounts(
        {s["name"]: ScorerSummary(**s) for s in kept["scorers"]},
        set(kept["named"]),
        kept["scores_skipped"],
    )


def _make(
    view: View,
    stack: ExitStack,
    source: BinaryIO | Ledgers,
    fields: Collection[str],
    scorers: Collection[str],
    folder: Path,
    every_record: bool,
    advance: Advance | None,
) -> None:
    """Read the ledger and the scores file into the view's tables."""
    scores = _scores_file(stack, view.scores_path)
    size = source.size if isinstance(source, Ledgers) else os.fstat(source.fileno()).st_size
    if scores is not None:
        size += os.fstat(scores[0].fileno()).st_size
    passes, by_file = _ledger_passes(view, source, size)
    ledger = len(passes)  # the ledger's passes come first
    if scores is not None:
        passes.append(SealedPass(str(view.scores_path), partial(_score_lines, Path(scores[1]))))
    # DuckDB reads the ledger's lines (on its threads, without the GIL) while the seals and
    # shapes of the ledger's lines and the scores file's are checked (`run_passes`). Where the
    # passes run apart, DuckDB then reads the scores beside the ledger's passes.
    reading: Future[None] | None = None
    with ThreadPoolExecutor(1) as pool, ExitStack() as started:
        try:
            with interrupts_held():
                running = started.enter_context(run_passes(passes, size, advance))
                reading = pool.submit(_file_rows, view, view.paths, fields)
            if not running.apart:  # here: every pass beside DuckDB's reading
                for index in range(len(passes)):
                    running.result(index)
            running.report_until(reading)
            reading.result()
            if scores is not None:
                given = (*scores, running.result(ledger))
                _scores_table(view, given, scorers, folder)
            passed = [running.result(index) for index in range(ledger)]
        except BaseException:
            _stopped(view.connection, reading)
            raise
    found = passed[0]
    if by_file:  # or, where a ledger's times go back, as one (its bytes reported already)
        found = merged_lines(passed) or _record_lines(source, None)
    del passed  # each file's lines: merged, no longer held
    _answers_table(view, source, view.paths, found, folder, fields)
    if every_record:
        _records_table(view, source, view.paths, found, folder)
    if scores is None:
        _do(view.connection, f"CREATE TABLE scores ({_SCORES})")
    else:
        _keep_current_answers(view)


def _stopped(connection: duckdb.DuckDBPyConnection, reading: Future[None] | None) -> None:
    """Interrupt DuckDB until its reading has stopped (an interrupt that comes before the
    reading's query has begun stops nothing)."""
    connection.interrupt()
    while reading is not None and not reading.done():
        wait_futures([reading], timeout=0.05)
        connection.interrupt()


def _measured() -> str:
    """The type of the uncertainty measures of an answer."""
    from harness.analysis.uncertainty import MEASURES

    return "STRUCT(" + ", ".join(f"{name} DOUBLE" for name in MEASURES) + ")"


def _measures(answers: pa.Array) -> pa.StructArray:
    """The uncertainty measures of a chunk of answers, from their token logprobs' numbers."""
    from harness.analysis.uncertainty import MEASURES, measure_arrow  # scipy, when a view is made

    measured = measure_arrow(answers)
    return pa.StructArray.from_arrays(
        [pa.array(measured[name]) for name in MEASURES], names=list(MEASURES)
    )


def _held(stack: ExitStack, ledger: Path | Ledgers) -> tuple[BinaryIO | Ledgers, tuple[str, ...]]:
    """The ledger to read (one file opened, held by `stack`) and the paths DuckDB reads it by."""
    if isinstance(ledger, Ledgers):  # each file opened: a path is never a glob pattern to DuckDB
        files = [
            stack.enter_context(path.open("rb", buffering=READ_BUFFER)) for path in ledger.paths
        ]
        return ledger, tuple(_open_path(f, p) for f, p in zip(files, ledger.paths, strict=True))
    file = stack.enter_context(ledger.open("rb", buffering=READ_BUFFER))
    return file, (_open_path(file, ledger),)


def _open_path(file: BinaryIO, path: Path) -> str:
    """A path to the file held open (Linux: its descriptor's), else its own."""
    held = Path(f"/proc/self/fd/{file.fileno()}")
    return str(held) if held.exists() else str(path)


def _parse_record(line: bytes) -> dict[str, Any] | None:
    obj = parse_line(line)
    if obj is None or is_result(obj):
        return obj
    return {}  # a run or batch line: no key, not counted


def _is_record(line: bytes) -> bool:
    try:
        decode_record(line)
    except msgspec.DecodeError:
        return False
    return True


class _ScoreShape:
    """Whether a sealed scores line is a score (`is_score`); counts those whose answer digest is
    not one: each is an unreadable line, and the latest of its key leaves no score current."""

    def __init__(self) -> None:
        self.bad_digests = 0

    def __call__(self, line: bytes) -> bool:
        try:  # its seal is checked already; read as every reader of scores reads it
            score = msgspec.convert(orjson.loads(line), ScoreLine)
        except (orjson.JSONDecodeError, msgspec.ValidationError):
            return False
        if score.status == "ok" and not _DIGEST.fullmatch(score.answer):
            self.bad_digests += 1
        return True


_DIGEST = re.compile(r"[0-9a-fA-F]{16}")


def _parse_score(line: bytes) -> dict[str, Any] | None:
    obj = parse_sealed(line, always_sealed=True)
    return obj if obj is not None and is_score(obj) else None


def _latest_table(
    connection: duckdb.DuckDBPyConnection,
    name: str,
    found: SealedLines,
    source: Readable,
    parse: Parse,
) -> list[tuple[int, dict[str, Any]]]:
    """CREATE TABLE `name` (key, line, crc, parsed): the latest line of each key of
    `found`, by line number (and `every_line`, or `every_<name>`: every line of `found`); return
    the latest ones parsed here. A latest line that a damaged one
    could be taken for in DuckDB (they share key and checksum text) is parsed here too."""
    every = "every_line" if name == "latest_lines" else f"every_{name}"
    connection.register("lines_seen", found.table())
    _do(connection, f"CREATE TABLE {every} AS SELECT * FROM lines_seen")
    connection.unregister("lines_seen")
    ((lines, keys),) = _do(connection, f"SELECT count(*), count(DISTINCT key) FROM {every}")
    # each key once (a first run): every line is its key's latest, no window needed
    window = "QUALIFY row_number() OVER (PARTITION BY key ORDER BY line DESC) = 1"
    _do(
        connection, f"CREATE TABLE {name} AS SELECT * FROM {every} {window if lines > keys else ''}"
    )
    if found.damaged:
        doubtful = [
            number
            for (number,) in _do(
                connection,
                f"SELECT line FROM {name} WHERE NOT parsed AND list_contains(?, crc)",
                [sorted(found.damaged)],
            )
        ]
        if doubtful:
            again, skipped = parse_lines(source, parse, doubtful)
            found.skipped += skipped
            found.parsed += again
            read = [number for number, _ in again]
            if read:
                _do(
                    connection,
                    f"UPDATE {name} SET parsed = true WHERE list_contains(?, line)",
                    [read],
                )
            unread = sorted(set(doubtful) - set(read))
            if unread:
                _do(connection, f"DELETE FROM {name} WHERE list_contains(?, line)", [unread])
    latest = {number for (number,) in _do(connection, f"SELECT line FROM {name} WHERE parsed")}
    return [(number, obj) for number, obj in found.parsed if number in latest]


def _wanted(fields: Collection[str]) -> set[str]:
    """The fields `latest` holds: those asked for, the status and the answer's digest."""
    return {"status", "digest", *fields}


def _file_rows(view: View, paths: tuple[str, ...], fields: Collection[str]) -> None:
    """CREATE `file_rows`: every line of the ledger's files as DuckDB reads them, with its key and
    checksum and the fields `latest` holds (derived ones computed): what the pass's latest lines
    are picked from."""
    read, _ = _record_reads(paths, "latest_lines", None, fields)[0]
    _do(
        view.connection,
        f"CREATE TABLE file_rows AS SELECT r.key, r.crc, {_selected(_wanted(fields))} "
        f"FROM {read} r WHERE r.key IS NOT NULL AND r.crc IS NOT NULL",
    )


def _answers_table(
    view: View,
    source: Readable,
    paths: tuple[str, ...],
    found: SealedLines,
    folder: Path,
    fields: Collection[str],
) -> None:
    """CREATE `latest` from the files read by DuckDB, joined with the latest lines."""
    connection = view.connection
    latest = _latest_table(connection, "latest_lines", found, source, _parse_record)
    side = _side_file(folder / "parsed.jsonl", latest)
    view.skipped = found.skipped
    reads = _record_reads(paths, "latest_lines", side, fields)
    view.sources = reads
    parts = [
        "SELECT l.line, w.* EXCLUDE (crc) FROM file_rows w "
        "JOIN latest_lines l ON w.key = l.key AND w.crc = l.crc AND NOT l.parsed",
        *_record_parts(reads[1:], _wanted(fields)),
    ]
    with _file_probed(connection), in_order(connection):
        _do(
            connection,
            f"CREATE TABLE latest AS SELECT * FROM ({' UNION ALL BY NAME '.join(parts)}) "
            "ORDER BY line",
        )
    _do(connection, "DROP TABLE file_rows")
    ((rows, keys, expected),) = _do(
        connection,
        "SELECT count(*), count(DISTINCT key), (SELECT count(*) FROM latest_lines) FROM latest",
    )
    if rows != keys:  # a line repeated exactly (in two of the ledgers, or in one): once
        with in_order(connection):
            _do(
                connection,
                "CREATE OR REPLACE TABLE latest AS SELECT * FROM latest "
                "QUALIFY row_number() OVER (PARTITION BY key ORDER BY line) = 1 ORDER BY line",
            )
    view.skipped += expected - keys


def _record_reads(
    paths: tuple[str, ...], lines: str, side: Path | None, fields: Collection[str]
) -> list[tuple[str, str]]:
    """How DuckDB reads the records of `lines` (a table of lines noted by the pass): the ledger's
    files joined with it on key and checksum, and the lines parsed here (`side`). Without
    `token_logprobs` among `fields`, only the numbers of the token logprobs are read (a token is
    not, which DuckDB reads faster)."""
    types = RECORD_COLUMNS
    if "token_logprobs" not in fields:
        types = types | {"token_logprobs": _NUMBERS_ONLY}
    columns = "{" + ", ".join(f"'{n}': '{t}'" for n, t in types.items()) + "}"
    reads = [
        (
            f"read_json({_files(paths)}, format='newline_delimited', columns={columns}, "
            f"ignore_errors=true, maximum_object_size={LONGEST_LINE})",
            f"JOIN {lines} l ON r.key = l.key AND r.crc = l.crc AND NOT l.parsed",
        )
    ]
    if side is not None:
        reads.append(
            (
                f"read_json('{_quoted(side)}', format='newline_delimited', "
                f"columns={columns[:-1]}, 'line': 'BIGINT'}})",
                "",
            )
        )
    return reads


def _selected(wanted: Collection[str]) -> str:
    """The SELECT list of the `wanted` fields of a record read as `r` (its key apart)."""
    return ", ".join(
        f"{_READ_AS.get(name) or DERIVED.get(name) or 'r.' + name} AS {name}"
        for name in [*FIELDS, *DERIVED]
        if name in wanted and name != "key"
    )


def _record_parts(reads: list[tuple[str, str]], wanted: Collection[str]) -> list[str]:
    """One SELECT of the `wanted` fields per read."""
    return [
        f"SELECT r.line, r.key, {_selected(wanted)} "
        f"FROM (SELECT r.*{', l.line' if join else ''} FROM {read} r {join}) r"
        for read, join in reads
    ]


def _records_table(
    view: View, source: Readable, paths: tuple[str, ...], found: SealedLines, folder: Path
) -> None:
    """CREATE `records`: every record line of the ledger (whole, of the record's shape), with
    its line number; a line repeated exactly is there as often."""
    connection = view.connection
    _do(connection, "CREATE TABLE record_lines AS SELECT * FROM every_line")
    parsed = list(found.parsed)
    if found.damaged:
        doubtful = [
            number
            for (number,) in _do(
                connection,
                "SELECT line FROM record_lines WHERE NOT parsed AND list_contains(?, crc)",
                [sorted(found.damaged)],
            )
        ]
        if doubtful:
            done = {number for number, _ in parsed}
            again = [number for number in doubtful if number not in done]
            parsed += parse_lines(source, _parse_record, again)[0]
            _do(connection, "DELETE FROM record_lines WHERE list_contains(?, line)", [doubtful])
    side = _side_file(folder / "every.jsonl", parsed)
    parts = _record_parts(_record_reads(paths, "record_lines", side, FIELDS), FIELDS)
    # An exact repeat is read as often as it is there (in one file, or in two of a shard tree),
    # and joined with each of its lines: each line once.
    selected = f"SELECT DISTINCT ON (line) * FROM ({' UNION ALL '.join(parts)})"
    with _file_probed(connection):
        _do(connection, f"CREATE TABLE records AS {selected}")
    _do(connection, "DROP TABLE record_lines")


@contextmanager
def _file_probed(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Joins as written: the file's rows probe the table of lines (DuckDB, which cannot tell how
    many rows a file holds, and does not weigh a row's width, would otherwise put the wide rows
    in its hash table)."""
    _do(connection, "SET disabled_optimizers = 'join_order,build_side_probe_side'")
    try:
        yield
    finally:
        _do(connection, "RESET disabled_optimizers")


def _side_file(path: Path, parsed: list[tuple[int, dict[str, Any]]]) -> Path | None:
    """Lines parsed in Python, as lines DuckDB reads (None: there are none)."""
    if not parsed:
        return None
    with path.open("wb") as file:
        for number, record in parsed:
            file.write(orjson.dumps({**record, "line": number}) + b"\n")
    return path


def _scores_file(stack: ExitStack, path: Path) -> tuple[BinaryIO, str] | None:
    """The scores file, opened once and held by `stack`, and the path DuckDB reads it by (None:
    there is no scores file)."""
    if not path.exists():
        return None
    refuse_special(path)
    file = stack.enter_context(path.open("rb", buffering=READ_BUFFER))
    return file, _open_path(file, path)


def _ledger_passes(
    view: View, source: BinaryIO | Ledgers, size: int
) -> tuple[list[SealedPass], bool]:
    """The passes over the ledger, and whether they are over its files one by one: several
    ledgers whose passes run apart are passed file by file, on every core
    (`harness.analysis.shard_passes`)."""
    if isinstance(source, Ledgers) and len(source.paths) > 1 and apart(size):
        return file_passes(source, _parse_record, _is_record, cores()), True
    passed = partial(_record_lines, _readable(source, view.paths))
    return [SealedPass(str(view.ledger), passed)], False


def _readable(source: BinaryIO | Ledgers, paths: tuple[str, ...]) -> Readable:
    """What a pass reads the ledger by: the file held open by its own path (a process of its
    own reads it from its own place), else the ledgers."""
    return source if isinstance(source, Ledgers) else Path(paths[0])


def _record_lines(source: Readable, advance: Advance | None) -> SealedLines:
    """The ledger's pass: its lines of the record's shape. Several ledgers read as one are
    read twice (`Ledgers.lines`): each byte is reported as half a byte read."""
    if advance is not None and isinstance(source, Ledgers) and len(source.paths) > 1:
        advance = _Halved(advance)
    return sealed_lines(source, _parse_record, _is_record, advance=advance)


class _Halved:
    """Reports half the bytes it is given (whole bytes, none lost to rounding)."""

    def __init__(self, advance: Advance) -> None:
        self.advance = advance
        self.given = 0

    def __call__(self, count: int) -> None:
        before = self.given // 2
        self.given += count
        self.advance(self.given // 2 - before)


def _score_lines(path: Path, advance: Advance | None) -> SealedLines:
    """The scores file's pass: its lines of a score's shape; a score whose answer digest is not
    one is counted as left out."""
    shape = _ScoreShape()
    found = sealed_lines(path, _parse_score, shape, advance=advance)
    found.skipped += shape.bad_digests
    return found


def _scores_table(
    view: View,
    given: tuple[BinaryIO, str, SealedLines],
    only: Collection[str],
    folder: Path,
) -> None:
    """CREATE `scores`: the current score per answer and scorer, to the answers as the scores
    file names them (`_keep_current_answers` keeps those given to the answers the ledger
    holds); count what is left out."""
    connection = view.connection
    file, path, found = given
    side = _side_file(
        folder / "scores.jsonl",
        _latest_table(connection, "latest_scores", found, file, _parse_score),
    )
    view.labels.skipped = found.skipped
    spec = "{" + ", ".join(f"'{n}': '{t}'" for n, t in SCORE_COLUMNS.items()) + "}"
    reads = [
        f"SELECT l.line, s.* EXCLUDE (crc) FROM read_json('{_quoted(path)}', "
        f"format='newline_delimited', columns={spec}, ignore_errors=true) s "
        "JOIN latest_scores l ON s.key = l.key AND s.crc = l.crc AND NOT l.parsed"
    ]
    if side is not None:
        reads.append(
            f"SELECT line, * EXCLUDE (line, crc) FROM read_json('{_quoted(side)}', "
            f"format='newline_delimited', columns={spec[:-1]}, 'line': 'BIGINT', "
            "})"
        )
    _do(
        connection,
        "CREATE TABLE score_lines AS SELECT * FROM (" + " UNION ALL ".join(reads) + ") "
        "WHERE status IN ('ok', 'error') "
        # the latest per answer and scorer (whatever a hand wrote as its key), once
        "QUALIFY row_number() OVER (PARTITION BY answer_key, scorer ORDER BY line DESC) = 1",
    )
    named = [
        name
        for (name,) in _do(
            connection, "SELECT scorer FROM score_lines GROUP BY scorer ORDER BY min(line)"
        )
    ]
    view.labels.named = set(named)
    # A latest line whose digest is not one: no score is current (the line is counted
    # unreadable by the pass).
    _do(
        connection,
        "DELETE FROM score_lines WHERE status = 'ok' "
        "AND NOT regexp_full_match(answer, '[0-9a-fA-F]{16}')",
    )
    if only:
        _do(connection, "DELETE FROM score_lines WHERE NOT list_contains(?, scorer)", [list(only)])
    # The scorer's current definition: its last line's.
    _do(
        connection,
        "CREATE TABLE current AS SELECT scorer, arg_max(definition, line) AS definition "
        "FROM score_lines GROUP BY scorer",
    )
    _do(
        connection,
        """CREATE TABLE scores AS
        SELECT s.answer_key, s.scorer, s.label, s.value, s.rater, s.answer, s.line
        FROM score_lines s JOIN current c USING (scorer)
        WHERE s.status = 'ok' AND s.definition = c.definition""",
    )
    for name, failed, earlier, definition in _do(
        connection,
        """SELECT scorer, count(*) FILTER (WHERE s.status = 'error'),
               count(*) FILTER (WHERE s.status = 'ok' AND s.definition != c.definition),
               any_value(c.definition)
        FROM score_lines s JOIN current c USING (scorer) GROUP BY scorer ORDER BY min(s.line)""",
    ):
        view.scorers[name] = ScorerSummary(
            name, failed=failed, earlier_definition=earlier, definition=definition
        )
    for name in named:  # a scorer whose latest lines all lack a digest: named, no label
        if name not in view.scorers and (not only or name in only):
            view.scorers[name] = ScorerSummary(name)


def _keep_current_answers(view: View) -> None:
    """Drop the scores given to another answer than the one the ledger holds now."""
    connection = view.connection
    _do(
        connection,
        """CREATE TABLE digests AS
        SELECT a.key, s.scorer, s.answer, lower(s.answer) = a.digest AS same
        FROM scores s JOIN latest a ON a.key = s.answer_key AND a.status = 'ok'""",
    )
    # Where DuckDB's JSON of the answer is not orjson's, the digest is taken as the harness does.
    doubtful = _do(connection, "SELECT DISTINCT key FROM digests WHERE NOT same")
    if doubtful:
        confirmed = [
            (key, digest)
            for key, prompt_hash, response in _answers_of(view, [key for (key,) in doubtful])
            for digest in [answer_digest({"prompt_hash": prompt_hash, "full_response": response})]
        ]
        _do(
            connection,
            "UPDATE digests SET same = true FROM (SELECT unnest(?) AS key, unnest(?) AS digest) c "
            "WHERE digests.key = c.key AND lower(digests.answer) = c.digest",
            [[key for key, _ in confirmed], [digest for _, digest in confirmed]],
        )
    _do(
        connection,
        """CREATE OR REPLACE TABLE scores AS
        SELECT s.* EXCLUDE (answer, line) FROM scores s
        JOIN digests d ON d.key = s.answer_key AND d.scorer = s.scorer AND d.same""",
    )
    _do(connection, "DROP TABLE digests")
    for name, labels, values in _do(
        connection,
        "SELECT scorer, list_sort(list(DISTINCT label) FILTER (WHERE label IS NOT NULL)), "
        "count(value) > 0 FROM scores GROUP BY scorer",
    ):
        summary = view.scorers[name]
        summary.given, summary.has_values = labels, values


def _answers_of(view: View, keys: list[str]) -> list[tuple[str, str | None, str | None]]:
    """The prompt hash and response of the latest records of `keys`, read again."""
    parts = [
        f"SELECT r.key, r.prompt_hash, r.full_response FROM {read} r {join} "
        "WHERE list_contains($keys, r.key)"
        for read, join in view.sources
    ]
    return _do(view.connection, " UNION ALL ".join(parts), {"keys": keys})


def _score_columns(view: View) -> None:
    """CREATE VIEW `answers`: `latest` with each scorer's label and value as columns."""
    joins, columns = [], []
    for number, name in enumerate(sorted(view.scorers)):
        alias, literal = f"s{number}", name.replace("'", "''")
        joins.append(
            f"LEFT JOIN scores {alias} "
            f"ON {alias}.answer_key = a.key AND {alias}.scorer = '{literal}'"
        )
        columns.append(f'{alias}.label AS "{_ident("score." + name)}"')
        columns.append(f'{alias}.value AS "{_ident("score." + name + ".value")}"')
    selected = ", ".join(["a.*", *columns])
    _do(
        view.connection,
        f"CREATE VIEW answers AS SELECT {selected} FROM latest a {' '.join(joins)}",
    )


def _do(connection: duckdb.DuckDBPyConnection, sql: str, parameters: Any = None) -> list[Any]:
    """Run one statement to its end; its rows. DuckDB interrupted by Ctrl-C is Ctrl-C."""
    try:
        return connection.execute(sql, parameters).fetchall()
    except RuntimeError as exc:
        if "interrupted" in str(exc).lower():
            raise KeyboardInterrupt from None
        raise


def _files(paths: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{_quoted(path)}'" for path in paths) + "]"


def _quoted(path: Path | str) -> str:
    return str(path).replace("'", "''")


def _ident(name: str) -> str:
    return name.replace('"', '""')


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
