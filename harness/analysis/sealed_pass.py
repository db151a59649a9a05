"""The one pass of Python over a sealed JSONL file (a ledger, a shard tree, a scores file) that the
analysis's query engine cannot make: which lines are whole.

The CRC seal is the truth for damaged lines (see `harness.ledger.lines`), and DuckDB has no
CRC-32. So this pass checks every line's seal (zlib, a few GB/s) and notes each sealed result
line by its key (read from its head, as the resume index reads it), its line number and its
checksum text, in flat arrays (about 60 bytes a line); DuckDB then finds the latest line of each
key and joins its own reading of the file on key and checksum (see `harness.analysis.view`). A
line corrupted anywhere fails its seal, so it is never noted. It could still be joined in DuckDB
only if it kept both the key and the checksum text of a sealed line: the checksum text of every
line whose seal fails is kept (`damaged`), and the view has a line that shares one parsed here
instead. A line not in the fast form (no seal: written before checksums, or by hand; a record
whose token logprobs DuckDB could misread) is parsed here (`parsed`).
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
import pyarrow as pa

from harness.ledger.lines import CRC_MARK, CRC_TAIL, KEY_HEAD, STATUS_MARK, Source, source_lines
from harness.ledger.sets import Advance, Ledgers

_REPORT_EVERY = 1 << 22  # bytes between two calls of `advance`
# A ledger line whose token logprobs are a list of positions (the harness writes `null` or a list
# of objects, in place): the query engine reads a list of the wrong shape as null (or a position
# that is a list as an empty object), so the view refuses the one and this pass parses the other.
LISTED = b',"token_logprobs":['
UNLISTED = b',"token_logprobs":null,'
_LISTED = len(LISTED)
_POSITION_HEADS = (b"{", b"]")
# A list after a position (`[{...},[...]]`): DuckDB would read that list as an empty position, so
# such a line is parsed here (as is one whose text holds these three characters anywhere after
# its token logprobs begin: slower, never wrong).
_LIST_AFTER_POSITION = b"},["

# Parse a whole line the slow way: a record, a score; None for a line that is not one (counted as
# skipped); a line of another kind the file may hold (a run line) as an object without a key.
Parse = Callable[[bytes], dict[str, Any] | None]
Readable = Path | BinaryIO | Ledgers


@dataclass
class SealedLines:
    """Every sealed result line of a file by its key's text (UTF-8, one after another: `keys`
    with `ends`), line number, checksum text (8 characters each) and whether its token logprobs
    are a list; every other result line parsed (`parsed`: line number, object); the checksum
    text of every line whose seal fails (`damaged`); and the lines that are no record
    (`skipped`)."""

    keys: bytearray = field(default_factory=bytearray)
    ends: array[int] = field(default_factory=lambda: array("q"))
    numbers: array[int] = field(default_factory=lambda: array("q"))
    crcs: bytearray = field(default_factory=bytearray)
    listed: bytearray = field(default_factory=bytearray)
    parsed: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    damaged: set[str] = field(default_factory=set)
    skipped: int = 0

    def table(self) -> pa.Table:
        """Every result line: `key`, `line`, `crc` (null: parsed here), `listed`, `parsed`."""
        count = len(self.numbers)
        keys = pa.LargeStringArray.from_buffers(
            count,
            pa.py_buffer(
                np.concatenate([[0], np.frombuffer(self.ends, np.int64)]).astype(np.int64)
            ),
            pa.py_buffer(bytes(self.keys)),
        )
        crcs = pa.StringArray.from_buffers(
            count,
            pa.py_buffer(np.arange(0, 8 * count + 1, 8, dtype=np.int32)),
            pa.py_buffer(bytes(self.crcs)),
        )
        sealed = pa.table(
            {
                "key": keys.cast(pa.string()),
                "line": pa.array(np.frombuffer(self.numbers, np.int64)),
                "crc": crcs,
                "listed": pa.array(np.frombuffer(self.listed, np.uint8).astype(bool)),
                "parsed": pa.array(np.zeros(count, bool)),
            }
        )
        others = pa.table(
            {
                "key": pa.array([obj["key"] for _, obj in self.parsed], pa.string()),
                "line": pa.array([number for number, _ in self.parsed], pa.int64()),
                "crc": pa.nulls(len(self.parsed), pa.string()),
                "listed": pa.array(
                    [isinstance(obj.get("token_logprobs"), list) for _, obj in self.parsed],
                    pa.bool_(),
                ),
                "parsed": pa.array(np.ones(len(self.parsed), bool)),
            }
        )
        return pa.concat_tables([sealed, others])


def sealed_lines(
    source: Readable, parse: Parse, *, ledger: bool, advance: Advance | None = None
) -> SealedLines:
    """Every result line of `source` noted (see the module docstring); `parse` reads a line not
    in the fast form; `ledger`: the file is a ledger (its token logprobs are checked)."""
    found = SealedLines()
    keys, ends, numbers, crcs, listed_flags = (
        found.keys,
        found.ends,
        found.numbers,
        found.crcs,
        found.listed,
    )
    head, tail, listed = len(KEY_HEAD), -CRC_TAIL, False
    for number, line in enumerate(_lines(source, advance)):
        if line[-1:] != b"\n":
            line += b"\n"
        if line[tail : tail + 8] == CRC_MARK:
            crc = line[-11:-3]
            if b"%08x" % zlib.crc32(memoryview(line)[:tail]) != crc:
                found.damaged.add(crc.decode("ascii", "replace"))
                found.skipped += 1
                continue
            mark = line.find(STATUS_MARK, head) if line.startswith(KEY_HEAD) else -1
            if mark > 0 and line[head : head + 1] == b'"' and line[mark - 1 : mark] == b'"':
                if ledger:
                    at = line.find(LISTED, mark)
                    listed = (
                        at > 0
                        and line[at + _LISTED : at + _LISTED + 1] in _POSITION_HEADS
                        and line.find(_LIST_AFTER_POSITION, at) < 0
                    )
                if not ledger or listed or UNLISTED in line:
                    key = line[head + 1 : mark - 1]
                    if b"\\" in key or not key.isascii():  # escaped, or UTF-8 to check
                        decoded = _key(line[head:mark])
                        if decoded is None:  # not JSON (not UTF-8): no record
                            found.skipped += 1
                            continue
                        key = decoded.encode()
                    keys += key
                    ends.append(len(keys))
                    numbers.append(number)
                    crcs += crc
                    listed_flags.append(listed)
                    continue
        if line[:1] != b"{" and not line.strip():
            continue
        obj = parse(line)
        if obj is None:
            found.skipped += 1
        elif isinstance(obj.get("key"), str):
            found.parsed.append((number, obj))
    return found


def parse_lines(
    source: Readable, parse: Parse, numbers: Collection[int]
) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """The lines at `numbers` parsed here, and how many of them are no record."""
    parsed, skipped = [], 0
    wanted = set(numbers)
    for number, line in enumerate(_lines(source, None)):
        if number in wanted:
            obj = parse(line)
            if obj is None or not isinstance(obj.get("key"), str):
                skipped += 1
            else:
                parsed.append((number, obj))
    return parsed, skipped


def _key(text: bytes) -> str | None:
    try:
        key = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return key if isinstance(key, str) else None


def _lines(source: Readable, advance: Advance | None) -> Iterator[bytes]:
    if isinstance(source, Ledgers):
        return source.lines(advance)
    if not isinstance(source, Path):
        source.seek(0)
    if advance is None:
        return source_lines(source)
    return _reported(source, advance)


def _reported(source: Source | BinaryIO, advance: Advance) -> Iterator[bytes]:
    unreported = 0
    for line in source_lines(source):
        unreported += len(line)
        if unreported >= _REPORT_EVERY:
            advance(unreported)
            unreported = 0
        yield line
    if unreported:
        advance(unreported)
