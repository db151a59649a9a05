"""`harness query OUTPUT "SQL"` (or `--sql FILE`): one read-only SQL query over a run's results
(see `harness.analysis.query`), shown as a table or written whole with `--format ... --to PATH`.
DuckDB and pyarrow load only when it runs."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.cli.results import add_force_argument, add_threads_argument, result_inputs
from harness.errors import InputError
from harness.input_files import refuse_special
from harness.terminal import Parser, command_line, file_to_write, say, shown

SHOWN_ROWS = 50  # rows shown on a terminal; the rest are counted
_CELL = 120  # characters of a cell shown at most
_READERS = {
    "csv": "pandas.read_csv({path!r})",
    "json": "pandas.read_json({path!r}, lines=True)",
    "parquet": "pandas.read_parquet({path!r})",
}
_EXAMPLE = "SELECT variant, status, count(*) AS jobs FROM answers GROUP BY ALL ORDER BY ALL"


def add_query_verb(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add `query` to the command line's verbs."""
    query = verbs.add_parser(
        "query",
        help="one read-only SQL query over the latest answers and their scores (DuckDB)",
        description="One read-only SQL query (DuckDB) over a run's results: `answers` (the "
        "latest record per job, with each scorer's label and value as the columns "
        '"score.<scorer>" and "score.<scorer>.value") and `scores` (answer_key, scorer, label, '
        "value, rater: the current scores). The session reads no other file and writes none.",
    )
    query.add_argument("output", help="the run's output directory (or its ledger)")
    query.add_argument("sql", nargs="?", help=f'the query, e.g. "{_EXAMPLE}"')
    query.add_argument("--sql", dest="sql_file", type=Path, metavar="FILE", help="read it here")
    query.add_argument(
        "--format",
        choices=["table", "csv", "json", "parquet"],
        default="table",
        help="table: the first rows on the terminal (default); csv, json (one object per line), "
        "parquet: the whole result, into --to",
    )
    query.add_argument(
        "--to", type=file_to_write, metavar="PATH", help="the file to write (with --format)"
    )
    add_force_argument(query, "--to")
    add_threads_argument(query)
    query.set_defaults(verb=_query)


def _query(args: argparse.Namespace, console: Console) -> int:
    from harness.analysis.query import (
        QUERY_OUTPUT,
        checked,
        lock,
        preview,
        tables_named,
        write_query,
    )
    from harness.analysis.view import open_view
    from harness.ledger.targets import check_target
    from harness.run.progress import reading_bar

    sql = _sql(args)
    if (args.format == "table") != (args.to is None):
        raise InputError(
            "query: --format csv|json|parquet and --to PATH go together (without them: a table)"
        )
    ledger, scores, size = result_inputs(args.output)
    if args.to is not None:
        unmarked = "a CSV or JSON file carries no mark of the query that wrote it: "
        hint = "name another file, or add --force"
        check_target(
            args.to,
            "query --to",
            QUERY_OUTPUT,
            force=args.force,
            hint=hint if args.format == "parquet" else unmarked + hint,
        )
    with ExitStack() as stack:
        with reading_bar(console, "reading", size) as advance:
            view = stack.enter_context(
                open_view(
                    ledger,
                    scores,
                    threads=args.threads,
                    advance=advance,
                    every_record="records" in tables_named(sql),
                    snapshots=False,  # the session writes no file
                )
            )
        lock(view)
        checked(view, sql)
        skipped = view.skipped
        if args.to is not None:
            rows = write_query(view, sql, args.format, args.to)
            _say_skipped(console, ledger, skipped)
            say(console, f"Wrote {rows:,} row(s) to {args.to}")
            say(console, f"Read it in Python: {_READERS[args.format].format(path=str(args.to))}")
            return 0
        shown_rows = preview(view, sql, SHOWN_ROWS)
    table = shown_rows.rows
    _show(console, table.column_names, [column.to_pylist() for column in table.columns])
    _say_skipped(console, ledger, skipped)
    # a query of several lines is not repeated: the shell would take it, a printed line not
    again = ["--sql", str(args.sql_file)] if args.sql_file is not None else [sql]
    if args.sql_file is None and "\n" in sql.strip():
        again = ["SQL"]
    if shown_rows.left_out:
        line = command_line("query", args.output, *again, "--format", "csv", "--to", "query.csv")
        say(
            console,
            f"{shown_rows.total:,} row(s); {shown_rows.left_out:,} not shown. All of them: {line}",
        )
    else:
        say(console, f"{shown_rows.total:,} row(s)")
        line = command_line(
            "query", args.output, *again, "--format", "parquet", "--to", "q.parquet"
        )
        say(console, f"For a notebook: {line}")
    return 0


def _say_skipped(console: Console, ledger: object, skipped: int) -> None:
    if skipped:
        say(console, f"{ledger}: skipped {skipped:,} unreadable line(s) (not in answers)")


def _sql(args: argparse.Namespace) -> str:
    """The query, from the command line or from --sql FILE."""
    if (args.sql is None) == (args.sql_file is None):
        raise InputError('query: give the SQL either inline ("SELECT ...") or as --sql FILE')
    if args.sql is not None:
        text: str = args.sql
    else:
        path: Path = args.sql_file
        refuse_special(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise InputError(f"{path}: cannot read: {reason}") from None
    if not text.strip():
        raise InputError("query: the SQL is empty")
    return text


def _show(console: Console, names: list[str], columns: list[list[Any]]) -> None:
    """The columns' values as a table on a terminal; elsewhere as plain aligned lines (a name may
    be given twice)."""
    cells = [list(row) for row in zip(*([_cell(v) for v in c] for c in columns), strict=True)]
    numeric = [
        bool(column) and all(isinstance(v, int | float) or v is None for v in column)
        for column in columns
    ]
    if console.is_terminal:
        table = Table()
        for name, right in zip(names, numeric, strict=True):
            table.add_column(shown(name), justify="right" if right else "left")
        for line in cells:
            table.add_row(*(Text(cell) for cell in line))
        console.print(table)
        return
    header = [str(shown(n)) for n in names]
    widths = [max([len(h), *(len(line[k]) for line in cells)]) for k, h in enumerate(header)]
    for line in [header, *cells]:
        parts = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(line, widths, numeric, strict=True)
        ]
        say(console, "  ".join(parts).rstrip())


def _cell(value: object) -> str:
    """A value as a cell: NULL for none, numbers as DuckDB shows them, long text cut."""
    if value is None:
        text = "NULL"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, int) and not isinstance(value, bool):
        text = f"{value}"
    else:
        text = str(value)
    text = str(shown(text))
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"
