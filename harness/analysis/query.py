"""`harness query`: one read-only SQL statement over the analysis's view of a ledger
(`harness.analysis.view`: `answers`, the latest record per key with each scorer's label and value
as columns; `scores`; and `records`, every record line, made only for a statement that names
it).

The statement is checked with DuckDB's own parser: exactly one, and a query (SELECT, WITH ...
SELECT, VALUES, FROM ..., DESCRIBE, SUMMARIZE, SHOW: what DuckDB calls a SELECT statement);
anything else (INSERT, COPY, ATTACH, SET, PRAGMA, INSTALL, CALL, EXPLAIN, which may run another
statement) is refused. Once the view is built the session is locked: no file can be read or
written from it (`enable_external_access = false`) and no setting changed
(`lock_configuration = true`). A result written to a file leaves the locked session as Arrow
batches, which a second DuckDB, holding nothing of the user's, writes with `COPY ... TO`, whole and
renamed into place (`harness.whole.written_whole`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from harness.analysis.view import View
from harness.errors import InputError
from harness.ledger.targets import OwnFile, head
from harness.whole import written_whole

Format = Literal["csv", "json", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "json", "parquet")
_COPY_OPTIONS = {
    "csv": "FORMAT csv, HEADER true",
    "json": "FORMAT json",  # one object per line
    # the mark that tells `query --to` a Parquet file is one it wrote (see `QUERY_OUTPUT`)
    "parquet": "FORMAT parquet, KV_METADATA {harness: 'query'}",
}
_BATCH = 65_536  # rows per Arrow batch taken from the session


def is_query_output(path: Path) -> bool:
    """Whether `path` is a Parquet file `query --to` wrote (a CSV or JSON file carries no mark: one
    that is there already is replaced only with `--force`)."""
    if not head(path).startswith(b"PAR1"):
        return False
    metadata = pq.read_schema(path).metadata or {}
    return metadata.get(b"harness") == b"query"


QUERY_OUTPUT = OwnFile("an earlier query's Parquet output", is_query_output)


@dataclass(frozen=True)
class Preview:
    """The first rows of a result and how many rows it has in all."""

    rows: pa.Table
    total: int

    @property
    def left_out(self) -> int:
        return self.total - int(self.rows.num_rows)


def tables_named(sql: str) -> set[str]:
    """The tables (and common table expressions) a statement names, read from DuckDB's parse of
    it; none when it does not parse as a query."""
    with duckdb.connect() as connection:
        try:
            tree = connection.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0]
        except duckdb.Error:
            return set()
    found: set[str] = set()
    stack: list[Any] = [orjson.loads(tree)]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            name = node.get("table_name")
            if isinstance(name, str):
                found.add(name.lower())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def lock(view: View) -> None:
    """Lock the view's session: no file read or written from it, no setting changed."""
    connection = view.connection
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")


def checked(view: View, sql: str) -> str:
    """`sql` when it is exactly one read-only query; InputError (one line) otherwise."""
    try:
        statements = view.connection.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"query: {one_line(exc)}") from None
    if not statements:
        raise InputError("query: no SQL statement given")
    if len(statements) > 1:
        raise InputError(
            f"query: {len(statements)} statements given; give one query (SELECT, WITH, VALUES, "
            "DESCRIBE, SUMMARIZE)"
        )
    kind = statements[0].type
    # A PIVOT without its values finds them first, in a statement that writes.
    if kind == duckdb.StatementType.MULTI:
        raise InputError(
            "query: a statement DuckDB runs as several (a PIVOT without its values) is refused, "
            "the session is read-only; name the values: PIVOT answers ON variant IN ('a', 'b') "
            "USING count(*) GROUP BY prompt_category"
        )
    if kind != duckdb.StatementType.SELECT:
        raise InputError(
            f"query: {kind.name} is refused, the session is read-only; give one query (SELECT, "
            "WITH, VALUES, DESCRIBE, SUMMARIZE)"
        )
    return sql


def preview(view: View, sql: str, rows: int) -> Preview:
    """The first `rows` rows of one checked query's result, and how many it has in all (the rest
    are counted as they stream past, never held)."""
    reader = _reader(view, sql)
    kept: list[pa.RecordBatch] = []
    total = 0
    try:
        for batch in reader:
            if total < rows:
                kept.append(batch.slice(0, rows - total))
            total += batch.num_rows
    except duckdb.Error as exc:
        raise InputError(f"query: {one_line(exc)}") from None
    return Preview(pa.Table.from_batches(kept, schema=reader.schema), total)


def write_query(view: View, sql: str, form: Format, target: Path) -> int:
    """Write one checked query's whole result to `target` as `form` (json: one object per line),
    whole and renamed into place; the rows written."""
    threads = _threads(view)  # asked before the result is open: one at a time
    reader = _reader(view, sql)
    writer = duckdb.connect(
        ":memory:", config={"threads": threads, "preserve_insertion_order": True}
    )
    try:
        writer.register("result", reader)
        with written_whole(target) as temporary:
            path = str(temporary).replace("'", "''")
            rows = writer.execute(
                f"COPY (SELECT * FROM result) TO '{path}' ({_COPY_OPTIONS[form]})"
            ).fetchall()
        return int(rows[0][0]) if rows and rows[0] else 0
    except duckdb.Error as exc:
        raise InputError(f"query: {one_line(exc)}") from None
    finally:
        writer.close()


def _reader(view: View, sql: str) -> pa.RecordBatchReader:
    try:
        return view.connection.sql(checked(view, sql)).to_arrow_reader(_BATCH)
    except duckdb.Error as exc:
        raise InputError(f"query: {one_line(exc)}") from None


def _threads(view: View) -> int:
    found = view.connection.execute("SELECT current_setting('threads')").fetchall()
    return int(found[0][0]) if found else 1


def one_line(exc: BaseException) -> str:
    """DuckDB's message as one line: its lines before the statement is quoted (`LINE 1: ...`),
    joined with "; "."""
    lines: list[str] = []
    for line in str(exc).splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            lines.append(line.strip())
    return "; ".join(lines) or type(exc).__name__
