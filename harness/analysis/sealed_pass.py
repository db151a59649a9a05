"""The one pass of Python over a sealed JSONL file (a ledger, a shard tree, a scores file) that the
analysis's query engine cannot make: which lines are whole.

The CRC seal is the truth for damaged lines (see `harness.ledger.lines`), and DuckDB has no
CRC-32. So this pass checks every line's seal (zlib, a few GB/s) and notes each sealed result
line of the file's shape (checked by the harness's own decoder: `Shaped`) by its key (read
from its head, as the resume index reads it), its line number and its checksum text, in flat
arrays (about 60 bytes a line); DuckDB then finds the latest line of each
key and joins its own reading of the file on key and checksum (see `harness.analysis.view`). A
line corrupted anywhere fails its seal, so it is never noted. It could still be joined in DuckDB
only if it kept both the key and the checksum text of a sealed line: the checksum text of every
line whose seal fails, and every checksum-like text of a line not in the fast form, is kept
(`damaged`), and the view has a line that shares one parsed here instead. A line not in the
fast form (no seal: written before checksums, or by hand) is parsed
here (`parsed`).
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

# Parse a whole line the slow way: a record, a score; None for a line that is not one (counted as
# skipped); a line of another kind the file may hold (a run line) as an object without a key.
Parse = Callable[[bytes], dict[str, Any] | None]
# Whether a sealed line is of the file's shape (a record, a score): checked here, where the
# harness's own decoder says it exactly, as every reader of the file does (DuckDB would take "3"
# for 3).
Shaped = Callable[[bytes], bool]
Readable = Path | BinaryIO | Ledgers


@dataclass
class SealedLines:
    """Every sealed result line of a file by its key's text (UTF-8, one after another: `keys`
    with `ends`), line number and checksum text (8 characters each); every other result line
    parsed (`parsed`: line number, object); the checksum
    text of every line whose seal fails (`damaged`); and the lines that are no record
    (`skipped`)."""

    keys: bytearray = field(default_factory=bytearray)
    ends: array[int] = field(default_factory=lambda: array("q"))
    numbers: array[int] = field(default_factory=lambda: array("q"))
    crcs: bytearray = field(default_factory=bytearray)
    parsed: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    damaged: set[str] = field(default_factory=set)
    skipped: int = 0
    # the sealed lines as `sealed_table` gives them, where they are made otherwise (the passes
    # over several ledgers, merged: `harness.analysis.shard_passes`)
    sealed: pa.Table | None = None

    def table(self) -> pa.Table:
        """Every result line: `key`, `line`, `crc` (null: parsed here), `parsed`."""
        others = pa.table(
            {
                "key": pa.array([obj["key"] for _, obj in self.parsed], pa.string()),
                "line": pa.array([number for number, _ in self.parsed], pa.int64()),
                "crc": pa.nulls(len(self.parsed), pa.string()),
                "parsed": pa.array(np.ones(len(self.parsed), bool)),
            }
        )
        return pa.concat_tables([self.sealed_table(), others])

    def sealed_table(self) -> pa.Table:
        """The sealed lines: `key`, `line`, `crc`, `parsed` (false)."""
        if self.sealed is not None:
            return self.sealed
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
        return pa.table(
            {
                "key": keys.cast(pa.string()),
                "line": pa.array(np.frombuffer(self.numbers, np.int64)),
                "crc": crcs,
                "parsed": pa.array(np.zeros(count, bool)),
            }
        )


def sealed_lines(
    source: Readable, parse: Parse, shaped: Shaped, *, advance: Advance | None = None
) -> SealedLines:
    """Every result line of `source` noted (see the module docstring): a sealed line whose key
    its head gives is noted when `shaped` says it is of the file's shape (else skipped and
    counted); `parse` reads a line not in that form."""
    return _noted(enumerate(_lines(source, advance)), parse, shaped, None)


class Track:
    """What a pass over one ledger of several notes besides (see `harness.analysis.shard_passes`):
    the time of each line (`stamp`: set before the line is passed, as the merge of several ledgers
    stamps it), each noted line's time (24 bytes each, `odd` when one is not in the harness's
    form) and key's hash, and every other line with its time and what the pass made of it
    (`SKIPPED`, `PARSED` or `NOTHING`)."""

    def __init__(self) -> None:
        self.stamp = b""
        self.stamps = bytearray()
        self.hashes: array[int] = array("q")
        self.others: list[tuple[int, bytes, bytes, str]] = []
        self.odd = False

    def noted(self, key: bytes, whole: bool) -> None:
        """A sealed line of `key` noted; not `whole`: it lacked its newline (a file's last line,
        another line than the same one with it)."""
        if len(self.stamp) != STAMP_LENGTH:  # none yet, or not the harness's
            self.odd = True
        self.stamps += self.stamp
        self.hashes.append(hash(key) if whole else ~hash(key))

    def other(self, number: int, line: bytes, what: str) -> None:
        """A line not noted as a sealed one, and what the pass made of it."""
        if len(self.stamp) not in (0, STAMP_LENGTH):
            self.odd = True
        self.others.append((number, self.stamp, line, what))


SKIPPED, PARSED, NOTHING = "skipped", "parsed", "nothing"
STAMP_LENGTH = 24  # `2025-11-12T10:01:23.412Z`


def tracked_lines(
    lines: Iterator[tuple[int, bytes]], parse: Parse, shaped: Shaped, track: Track
) -> SealedLines:
    """`lines` (numbered) passed as `sealed_lines` passes a file's, noting in `track` what it
    notes."""
    return _noted(lines, parse, shaped, track)


def _noted(
    lines: Iterator[tuple[int, bytes]], parse: Parse, shaped: Shaped, track: Track | None
) -> SealedLines:
    """The pass over numbered lines (see `sealed_lines`), noting in `track` too when given."""
    found = SealedLines()
    keys, ends, numbers, crcs = found.keys, found.ends, found.numbers, found.crcs
    tail = -CRC_TAIL
    for number, given in lines:
        line = given if given[-1:] == b"\n" else given + b"\n"
        if line[tail : tail + 8] == CRC_MARK and line.endswith(_END):
            crc = line[-11:-3]
            if b"%08x" % zlib.crc32(memoryview(line)[:tail]) != crc:
                found.damaged.add(crc.decode("ascii", "replace"))
                found.skipped += 1
                if track is not None:
                    track.other(number, given, SKIPPED)
                continue
            key = _head_key(line)
            if key is not None:
                if not shaped(line):
                    found.skipped += 1
                    if track is not None:
                        track.other(number, given, SKIPPED)
                    continue
                keys += key
                ends.append(len(keys))
                numbers.append(number)
                crcs += crc
                if track is not None:
                    track.noted(key, line is given)
                continue
        if line[:1] != b"{" and not line.strip():
            continue
        obj = parse(line)
        _note_damaged(line, found.damaged)
        if obj is None:
            found.skipped += 1
        elif isinstance(obj.get("key"), str):
            found.parsed.append((number, obj))
        if track is not None:
            kept = PARSED if obj is not None and isinstance(obj.get("key"), str) else NOTHING
            track.other(number, given, SKIPPED if obj is None else kept)
    return found


_END = b'"}\n'
_CRC_FIELD = b'"crc":"'


def _note_damaged(line: bytes, damaged: set[str]) -> None:
    """Note every checksum text a line not in the fast form carries (its seal's tail cut,
    something after it): DuckDB could read the line and take it for the sealed one it copies."""
    at = line.find(_CRC_FIELD)
    while at >= 0:
        text = line[at + len(_CRC_FIELD) : at + len(_CRC_FIELD) + 8]
        damaged.add(text.decode("ascii", "replace"))
        at = line.find(_CRC_FIELD, at + 1)


def _head_key(line: bytes) -> bytes | None:
    """The key of a line the harness wrote, read from its head (`{"key":"...","status":"`), as
    UTF-8; None when the head holds no such key (fields in another order, or not JSON): the line
    is then parsed whole. `harness.ledger.lines.head_key` reads it so too, but checks the seal
    again, which the pass has just done."""
    if not line.startswith(KEY_HEAD):
        return None
    mark = line.find(STATUS_MARK, len(KEY_HEAD))
    if mark < 0:
        return None
    text = line[len(KEY_HEAD) : mark]
    key = text[1:-1]
    if text[:1] == b'"' and text[-1:] == b'"' and key.isascii() and not _escaped(key):
        return key
    try:
        decoded = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return decoded.encode() if isinstance(decoded, str) else None


def _escaped(key: bytes) -> bool:
    """Whether a key's text between its quotes holds a quote or an escape (read as JSON)."""
    return b'"' in key or b"\\" in key


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
