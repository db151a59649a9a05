"""The one pass of Python over a sealed JSONL file (a ledger, a shard tree, a scores file) that the
analysis's query engine cannot make: which line is the latest whole one of each key.

The CRC seal is the truth for damaged lines (see `harness.ledger.lines`), and DuckDB has no
CRC-32. So this pass checks every line's seal (zlib, a few GB/s) and reads the key of a sealed line
from its head, as the resume index does; the latest sealed line of each key is then known by its
key and its checksum text, and DuckDB's reading of the file is joined on both (see
`harness.analysis.view`). A line corrupted anywhere fails its seal, so it is never the latest of
its key here. It could still be joined in DuckDB only if it kept both the key and the checksum of
the latest sealed line: every such line is noted from its head (`damaged`), and a key whose
latest line shares them with a damaged one is parsed here instead (`Latest.parsed`), as is every
latest line not in the fast form (no seal: written before checksums, or by hand).

Memory: a dict entry per key (its line number, checksum and a flag): about 150 bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from harness.ledger.lines import CRC_MARK, CRC_TAIL, KEY_HEAD, STATUS_MARK, Source, source_lines
from harness.ledger.sets import Advance, Ledgers

_REPORT_EVERY = 1 << 22  # bytes between two calls of `advance`
# A ledger line whose token logprobs are a list of positions (the harness writes `null` or a list
# of objects, in place): the query engine reads a list of the wrong shape as null (or a position
# that is a list as an empty object), so the view refuses the one and this pass parses the other.
LISTED = b',"token_logprobs":['
UNLISTED = b',"token_logprobs":null,'

# Parse a whole line the slow way: a record, a score; None for a line that is not one (counted as
# skipped), or the string "other" for a line of another kind the file may hold (a run line).
Parse = Callable[[bytes], dict[str, Any] | None]


@dataclass
class LatestLines:
    """The latest line of every key: `sealed` (key -> its line number, checksum text and whether
    its token logprobs are a list) for lines DuckDB reads; `parsed` (key -> line number and the
    line parsed here) for the others. `skipped` counts lines that are not whole or not of the
    file's shape."""

    sealed: dict[str, tuple[int, str, bool]] = field(default_factory=dict)
    parsed: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    skipped: int = 0

    @property
    def keys(self) -> int:
        return len(self.sealed) + len(self.parsed)


def latest_lines(
    source: Path | Ledgers,
    parse: Parse,
    *,
    ledger: bool,
    advance: Advance | None = None,
) -> LatestLines:
    """The latest line of every key in `source` (see the module docstring); `parse` reads a line
    that is not in the fast form (a result of its file, or None: counted as skipped; a line it
    returns without a `key` is of another kind, left out uncounted); `ledger`: the file is a
    ledger (its token logprobs are checked for the view)."""
    found = LatestLines()
    parsed = found.parsed
    # Each sealed line's key as its JSON text (decoded all at once at the end), its line number,
    # checksum and whether its token logprobs are a list.
    sealed: dict[bytes, tuple[int, bytes, bool]] = {}
    damaged: set[tuple[str, str]] = set()
    head, tail, listed = len(KEY_HEAD), -CRC_TAIL, False
    for number, line in enumerate(_lines(source, advance)):
        if line[-1:] != b"\n":
            line += b"\n"
        if line.startswith(KEY_HEAD) and line[tail : tail + 8] == CRC_MARK:
            mark = line.find(STATUS_MARK, head)
            if mark > 0:
                crc = line[-11:-3]
                if b"%08x" % zlib.crc32(memoryview(line)[:tail]) != crc:
                    key = _key(line[head:mark])
                    if key is not None:
                        damaged.add((key, crc.decode("ascii", "replace")))
                    found.skipped += 1
                    continue
                if ledger:
                    at = line.find(LISTED, mark)
                    listed = (
                        at > 0
                        and line[at + _LISTED : at + _LISTED + 1] in _POSITION_HEADS
                        and line.find(_LIST_AFTER_POSITION, at) < 0
                    )
                if not ledger or listed or UNLISTED in line:
                    sealed[line[head:mark]] = (number, crc, listed)
                    continue
        if line[:1] != b"{" and not line.strip():
            continue
        obj = parse(line)
        if obj is None:
            found.skipped += 1
        elif isinstance(obj.get("key"), str):
            parsed[obj["key"]] = (number, obj)
    _settle(found, sealed, parse)
    doubtful = {key: entry[0] for key, entry in found.sealed.items() if (key, entry[1]) in damaged}
    if doubtful:
        _parse_again(source, parse, doubtful, found)
    return found


_LISTED = len(LISTED)
_POSITION_HEADS = (b"{", b"]")
# A list after a position (`[{...},[...]]`): DuckDB would read that list as an empty position, so
# such a line is parsed here (as is one whose text holds these three characters anywhere after
# its token logprobs begin: slower, never wrong).
_LIST_AFTER_POSITION = b"},["


def _settle(found: LatestLines, sealed: dict[bytes, tuple[int, bytes, bool]], parse: Parse) -> None:
    """Decode the sealed lines' keys (a head that is no JSON string: the line is parsed whole)
    and keep the latest line of each key, sealed or parsed."""
    texts = list(sealed)
    try:
        keys = orjson.loads(b"[" + b",".join(texts) + b"]")
    except orjson.JSONDecodeError:
        keys = [_key(text) for text in texts]
    if len(keys) != len(texts):  # a head such as `1,2`: read one by one
        keys = [_key(text) for text in texts]
    parsed, kept = found.parsed, found.sealed
    for key, (number, crc, listed) in zip(keys, sealed.values(), strict=True):
        if not isinstance(key, str):
            found.skipped += 1  # sealed, but its key is no string: no record
            continue
        other = parsed.get(key)
        if other is not None and other[0] > number:
            continue
        before = kept.get(key)
        if other is not None:
            del parsed[key]
        if before is None or before[0] < number:  # the same key written with other escapes
            kept[key] = (number, crc.decode("ascii"), listed)


def _key(text: bytes) -> str | None:
    try:
        key = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return key if isinstance(key, str) else None


def _parse_again(
    source: Path | Ledgers, parse: Parse, doubtful: dict[str, int], found: LatestLines
) -> None:
    """Parse here the latest lines that a damaged line could be mistaken for."""
    wanted = {number: key for key, number in doubtful.items()}
    for number, line in enumerate(_lines(source, None)):
        key = wanted.get(number)
        if key is not None:
            del found.sealed[key]
            obj = parse(line)
            if obj is None:
                found.skipped += 1
            else:
                found.parsed[key] = (number, obj)


def _lines(source: Path | Ledgers, advance: Advance | None) -> Iterator[bytes]:
    if isinstance(source, Ledgers):
        return source.lines(advance)
    if advance is None:
        return source_lines(source)
    return _reported(source, advance)


def _reported(source: Source, advance: Advance) -> Iterator[bytes]:
    unreported = 0
    for line in source_lines(source):
        unreported += len(line)
        if unreported >= _REPORT_EVERY:
            advance(unreported)
            unreported = 0
        yield line
    if unreported:
        advance(unreported)
