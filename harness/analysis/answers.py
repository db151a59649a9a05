"""The latest-wins view of a ledger's results, streamed: what every reader of answers starts from.

One pass notes the position of each key's latest record (a few dozen bytes per key), reading
the key of a sealed result line from its head (`harness.ledger.lines.head_key`, as the resume index
does) and parsing other lines whole; a second pass yields those records in ledger order, parsed
and checked, so memory holds positions, never a million records. A position is a byte offset in
one ledger file, or a line's number among several ledgers read as one (a shard tree:
`harness.ledger.sets.Ledgers`, whose readings stop at the sizes the files had when named, so both
passes read the same lines).
`advance`, where a reader takes it, is called with the bytes read since its last call (every few
MiB), for a progress bar; `observe` is given every result record the first pass reads (superseded
ones too), for a reader that needs to know something of all of them before the second pass.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from harness.ledger.lines import KEY_HEAD, READ_BUFFER, head_key, is_result, parse_line
from harness.ledger.sets import Advance, Ledgers

# A ledger to read: its path, the file already open (so that two passes read one file, even if
# the path is given to another meanwhile, as `run --fresh` does), or several ledgers read as one.
Source = Path | BinaryIO | Ledgers

_REPORT_EVERY = 1 << 22  # bytes between two calls of `advance`


@dataclass
class Scan:
    """Each key's latest result record, as its line's position, and how many lines were
    skipped: torn, damaged (their checksum fails) or of no known shape."""

    offsets: dict[str, int]
    skipped: int = 0


def scan(
    path: Source,
    advance: Advance | None = None,
    observe: Callable[[dict[str, Any]], None] | None = None,
) -> Scan:
    """The ledger's latest records (see `Scan`)."""
    found = Scan({})
    offsets = found.offsets
    for offset, line in lines_at(path, advance):
        key = head_key(line) if observe is None else None
        if key is not None:
            offsets[key] = offset
        elif line.strip():
            record = parse_line(line)
            if record is None:
                found.skipped += 1
            elif is_result(record):  # not a run or batch line
                offsets[record["key"]] = offset
                if observe is not None:
                    observe(record)
    return found


def latest_offsets(
    path: Source,
    advance: Advance | None = None,
    observe: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, int]:
    """Each key's latest result record, as its line's byte offset in the ledger."""
    return scan(path, advance, observe).offsets


def latest_positions(path: Source, advance: Advance | None = None) -> array[int]:
    """The byte offsets of the latest records, ascending: 8 bytes each, the keys let go."""
    return scanned_positions(path, advance)[0]


def scanned_positions(path: Source, advance: Advance | None = None) -> tuple[array[int], int]:
    """The latest positions (see `latest_positions`) and the lines skipped (see `Scan`)."""
    found = scan(path, advance)
    return array("q", sorted(found.offsets.values())), found.skipped


@dataclass
class Skipped:
    """A count of the lines a reading left out: torn, damaged, or of no known shape (a line
    found from its head in the first pass, then parsed whole, can be of the wrong shape)."""

    lines: int = 0


def records_at(
    path: Source,
    offsets: Sequence[int],
    *,
    successes_only: bool = False,
    advance: Advance | None = None,
    skipped: Skipped | None = None,
) -> Iterator[dict[str, Any]]:
    """The records whose lines start at `offsets` (ascending), in ledger order; with
    `successes_only`, only those that are answers. A line there that is not a record is left
    out (and counted in `skipped`)."""
    wanted = iter(offsets)
    next_wanted = next(wanted, -1)
    for offset, line in lines_at(path, advance):
        if offset != next_wanted:
            continue
        next_wanted = next(wanted, -1)
        record = parse_line(line)
        if record is None:
            if skipped is not None:
                skipped.lines += 1
        elif not successes_only or record["status"] == "ok":
            yield record


def latest_records(
    path: Path | Ledgers, *, successes_only: bool = False, skipped: Skipped | None = None
) -> Iterator[dict[str, Any]]:
    """The latest record of every key, in ledger order; with `successes_only`, only the keys
    whose latest record is an answer (a failure that superseded an answer hides it). The lines
    left out are counted in `skipped`."""
    positions, unread = scanned_positions(path)
    if skipped is not None:
        skipped.lines += unread
    return records_at(path, positions, successes_only=successes_only, skipped=skipped)


def _paths(ledger: Path | Ledgers) -> tuple[Path, ...]:
    return ledger.paths if isinstance(ledger, Ledgers) else (ledger,)


def run_lines(ledger: Path | Ledgers) -> list[dict[str, Any]]:
    """Every run line of the ledger (provenance), oldest first: each line that holds a JSON
    string "run" (an escaped quote is no end of a string), found by a byte search, parsed (its
    seal checked) and kept when it is a run line."""
    if isinstance(ledger, Ledgers) and len(ledger.paths) > 1:
        candidates: Iterator[bytes] = (line for line in ledger.lines() if b'"run"' in line)
    else:
        candidates = _lines_with(_paths(ledger)[0], b'"run"')
    runs = []
    for line in candidates:
        if line.startswith(KEY_HEAD):
            continue  # a result record (never a run line), "run" in its text
        obj = parse_line(line)
        if obj is not None and obj.get("type") == "run":
            runs.append(obj)
    return runs


def _lines_with(path: Path, needle: bytes) -> Iterator[bytes]:
    """Each line of the file at `path` that holds `needle`, once, in order; read a few MiB at
    a time (a mapping of the whole file would count it all in the process's memory)."""
    with path.open("rb", buffering=0) as file:
        carry = b""
        while chunk := file.read(_SEARCH_CHUNK):
            block = carry + chunk
            whole = block.rfind(b"\n") + 1  # lines end there; the rest is read with the next
            yield from _holding(block[:whole], needle)
            carry = block[whole:]
        yield from _holding(carry, needle)


_SEARCH_CHUNK = 8 << 20


def _holding(data: bytes, needle: bytes) -> Iterator[bytes]:
    """Each line of `data` (whole lines) that holds `needle`, once, in order."""
    at = data.find(needle)
    while at >= 0:
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        end = len(data) if end < 0 else end + 1
        yield data[start:end]
        at = data.find(needle, end)


def lines_at(source: Source, advance: Advance | None = None) -> Iterator[tuple[int, bytes]]:
    """Each line of the file (a path, or a file open for reading, read from its start) with its
    byte offset, or of several ledgers with its number, reporting progress to `advance`."""
    if isinstance(source, Ledgers):
        yield from enumerate(source.lines(advance))
        return
    with _opened(source) as file:
        offset = reported = 0
        for line in file:
            yield offset, line
            offset += len(line)
            if advance is not None and offset - reported >= _REPORT_EVERY:
                advance(offset - reported)
                reported = offset
    if advance is not None and offset > reported:
        advance(offset - reported)


@contextmanager
def _opened(source: Path | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(source, Path):
        with source.open("rb", buffering=READ_BUFFER) as file:
            yield file
    else:
        source.seek(0)
        yield source
