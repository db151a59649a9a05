"""Rows from one data file, streamed: JSON, JSONL, CSV/TSV, Parquet, Arrow.

Every reader yields `(position, row)`, a row being a plain mapping (`read_batches`: the rows in
lists, several thousand at a time, with their positions), and `where(format, position)` names the
row for errors: `prompts[2]` (JSON), `line 7` (JSONL), `row 4` (CSV/TSV, counted as a
spreadsheet counts them: the header is row 1), `row 3` (Parquet, Arrow). JSONL, CSV/TSV, Parquet
and Arrow stream (memory holds one batch, not the file); a JSON document is read whole.

CSV follows RFC 4180 (quoted cells may hold commas, quotes and line breaks; a byte-order mark is
skipped; columns with no name at the end of the header, as spreadsheets write them, are dropped
when empty). TSV is the IANA format: no quoting, a cell cannot hold a tab or a line break.
Columns of a Hugging Face `ClassLabel` (named in a saved dataset's `dataset_info.json`, or in the
`huggingface` metadata a hub Parquet file carries) arrive as their label names, not numbers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from harness.errors import PromptsError
from harness.input_files import refuse_special, utf8_problem, utf8_problem_in

Rows = Iterator[tuple[int, Any]]
Batches = Iterator[tuple[Sequence[int], list[Any]]]  # rows in order, each list with its positions
_BATCH_ROWS = 65_536
_BATCH_LINES = 1 << 22  # bytes of JSONL lines decoded at once
_BOM = b"\xef\xbb\xbf"
csv.field_size_limit(2**31 - 1)  # the default, 128 KiB, refuses long-context cells


def where(format: str, position: int) -> str:
    """A row's place in a file of `format`, as its reader counts."""
    if format == "json":
        return f"prompts[{position}]"
    return f"{'line' if format == 'jsonl' else 'row'} {position}"


def read_rows(path: Path, format: str) -> Rows:
    """Every row of one data file and its position; PromptsError for a file that cannot be read
    (InputError for one that is not a regular file)."""
    for positions, rows in read_batches(path, format):
        yield from zip(positions, rows, strict=True)


def read_batches(path: Path, format: str) -> Batches:
    """The rows of one data file in batches, with their positions, as `read_rows` reads them: a
    row that cannot be read is an error after the rows before it have been yielded."""
    refuse_special(path)
    try:
        if format == "jsonl":
            yield from _jsonl_batches(path)
        else:
            yield from _batched(_READERS[format](path))
    except OSError as exc:
        raise PromptsError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _batched(rows: Rows) -> Batches:
    """Rows in lists of `_BATCH_ROWS`; those read before an error come first, then the error."""
    positions: list[int] = []
    batch: list[Any] = []
    try:
        for position, row in rows:
            positions.append(position)
            batch.append(row)
            if len(batch) == _BATCH_ROWS:
                yield positions, batch
                positions, batch = [], []
    except Exception:
        if batch:
            yield positions, batch
        raise
    if batch:
        yield positions, batch


def _json_rows(path: Path) -> Rows:
    document = _decode(path, path.read_bytes().removeprefix(_BOM), "")
    if isinstance(document, Mapping):
        if "prompts" not in document:
            raise PromptsError(
                f'{path}: expected a list of prompts or an object with a "prompts" list'
            )
        document = document["prompts"]
    if not isinstance(document, list):
        raise PromptsError(f"{path}: prompts: expected a list")
    yield from enumerate(document)


def _jsonl_batches(path: Path) -> Batches:
    """The lines of a JSONL file, decoded a few MB at a time; a batch with a blank line or one
    that is no JSON is decoded again line by line, to skip the one and name the other."""
    with path.open("rb") as file:
        first = 1
        while lines := file.readlines(_BATCH_LINES):
            if first == 1:
                lines[0] = lines[0].removeprefix(_BOM)
            try:
                rows = list(map(orjson.loads, lines))
            except orjson.JSONDecodeError:
                yield from _batched(_jsonl_lines(path, lines, first))
            else:
                yield range(first, first + len(lines)), rows
            first += len(lines)


def _jsonl_lines(path: Path, lines: list[bytes], first: int) -> Rows:
    for number, line in enumerate(lines, start=first):
        if line.strip():
            yield number, _decode(path, line, f"line {number}, ", number)


def _decode(path: Path, data: bytes, where: str, first_line: int = 1) -> Any:
    """`data` parsed as JSON; `where` names it in errors ("" for a whole file), `first_line` is
    the file's line it starts on."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        bad = utf8_problem(data)
        if bad is not None:
            line, reason = bad
            raise PromptsError(
                f"{path}: line {first_line + line - 1}: not UTF-8 text ({reason})"
            ) from None
        position = f"column {exc.colno}" if where else f"line {exc.lineno}, column {exc.colno}"
        hint = ""
        if any(word in exc.doc[max(0, exc.pos - 9) : exc.pos + 9] for word in ("NaN", "Infinity")):
            hint = " (NaN and Infinity are not JSON: write null)"
        raise PromptsError(f"{path}: {where}{position}: invalid JSON: {exc.msg}{hint}") from None


def _csv_rows(path: Path) -> Rows:
    return _delimited_rows(path, delimiter=",", strict=True)


def _tsv_rows(path: Path) -> Rows:
    return _delimited_rows(path, delimiter="\t", quoting=csv.QUOTE_NONE)


def _delimited_rows(path: Path, **dialect: Any) -> Rows:
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file, **dialect)
        try:
            header = next(reader, None)
            if header is None:
                return
            names = _header(path, [name.strip() for name in header], dialect["delimiter"])
            width = len(names)
            for number, cells in enumerate(reader, start=2):
                if not any(cell.strip() for cell in cells):
                    continue
                if len(cells) != len(header) or any(c.strip() for c in cells[width:]):
                    raise PromptsError(
                        f"{path}: row {number}: {len(cells)} cells for {width} columns"
                    )
                yield number, dict(zip(names, cells[:width], strict=True))
        except csv.Error as exc:
            raise PromptsError(f"{path}: line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:  # raised for a block read ahead: find the true line
            line, reason = utf8_problem_in(path) or (reader.line_num + 1, exc.reason)
            raise PromptsError(f"{path}: line {line}: not UTF-8 text ({reason})") from None


def _header(path: Path, names: list[str], delimiter: str) -> list[str]:
    """The named columns: nameless ones at the end (a spreadsheet's) are dropped; a name twice,
    or a nameless column among named ones, is an error."""
    while names and not names[-1]:
        names.pop()
    repeated = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if repeated is not None:
        raise PromptsError(f"{path}: line 1: header has column {repeated!r} twice")
    if "" in names:
        raise PromptsError(f"{path}: line 1: header has a column with no name")
    if len(names) == 1 and delimiter == "," and ";" in names[0]:
        raise PromptsError(
            f"{path}: line 1: one column named {names[0]!r}: a semicolon-separated file? Save it "
            "with commas, or as TSV"
        )
    return names


def _parquet_rows(path: Path) -> Rows:
    import pyarrow.parquet as pq
    from pyarrow import ArrowException

    try:
        file = pq.ParquetFile(path)
        labels = _hub_class_labels(file.schema_arrow.metadata)
        batches = file.iter_batches(batch_size=_BATCH_ROWS)
        yield from _numbered((batch.to_pylist() for batch in batches), labels)
    except ArrowException as exc:
        raise PromptsError(f"{path}: not a readable Parquet file: {exc}") from None


def _arrow_rows(path: Path) -> Rows:
    """An Arrow IPC stream (what `save_to_disk` writes) or an Arrow IPC file, memory-mapped."""
    import pyarrow as pa

    labels = _saved_class_labels(path.parent / "dataset_info.json")
    try:
        source = pa.memory_map(str(path))
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            source.seek(0)
            opened = pa.ipc.open_file(source)
            reader = (opened.get_batch(i) for i in range(opened.num_record_batches))
        yield from _numbered((batch.to_pylist() for batch in reader), labels)
    except pa.ArrowException as exc:
        raise PromptsError(f"{path}: not a readable Arrow file: {exc}") from None


def _numbered(batches: Iterator[list[dict[str, Any]]], labels: dict[str, list[str]]) -> Rows:
    number = 0
    for rows in batches:
        for row in rows:
            number += 1
            for column, names in labels.items():
                value = row.get(column)
                if isinstance(value, int) and 0 <= value < len(names):
                    row[column] = names[value]
            yield number, row


def _saved_class_labels(info: Path) -> dict[str, list[str]]:
    """The ClassLabel columns of a dataset saved with `save_to_disk`, and their names."""
    refuse_special(info)
    try:
        features = json.loads(info.read_text(encoding="utf-8")).get("features")
    except (OSError, ValueError, AttributeError):
        return {}
    return _class_labels(features)


def _hub_class_labels(metadata: dict[bytes, bytes] | None) -> dict[str, list[str]]:
    """The ClassLabel columns a Parquet file written by `datasets` names in its metadata."""
    try:
        info = json.loads((metadata or {})[b"huggingface"]).get("info", {})
    except (KeyError, ValueError, AttributeError):
        return {}
    return _class_labels(info.get("features") if isinstance(info, dict) else None)


def _class_labels(features: Any) -> dict[str, list[str]]:
    if not isinstance(features, dict):
        return {}
    return {
        column: [str(name) for name in feature["names"]]
        for column, feature in features.items()
        if isinstance(feature, dict)
        and feature.get("_type") == "ClassLabel"
        and isinstance(feature.get("names"), list)
    }


_READERS = {
    "json": _json_rows,
    "csv": _csv_rows,
    "tsv": _tsv_rows,
    "parquet": _parquet_rows,
    "arrow": _arrow_rows,
}
