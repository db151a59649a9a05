"""The one pass of Python over a sealed JSONL file (a ledger, a shard tree, a scores file) that the
analysis's query engine cannot make: which line is the latest whole one of each key.

The CRC seal is the truth for damaged lines (see `harness.ledger.lines`), and DuckDB has no
CRC-32. So this pass checks every line's seal (zlib, a few GB/s) and reads the key of a sealed line
from its head, as the resume index does; the latest sealed line of each key is then known by its
key and its checksum text, and DuckDB's reading of the file is joined on both (see
`harness.analysis.view`). A line corrupted anywhere fails its seal, so it is never the latest of
its key here. It could still be joined in DuckDB only if it kept both the key and the checksum of
the latest sealed line: every such line is noted from its head (`damaged`), and a key whose
latest line shares them with a damaged one is parsed here instead (`LatestLines.parsed`), as is
every latest line not in the fast form (no seal: written before checksums, or by hand).

Memory: a dict entry per key (its line number, checksum and a flag): about 150 bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

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
    file's shape. With `every`, every record line too, not only the latest (`every_sealed`: key,
    line number, checksum, listed; `every_parsed`: line number and the line parsed)."""

    sealed: dict[str, tuple[int, str, bool]] = field(default_factory=dict)
    parsed: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    skipped: int = 0
    every_sealed: list[tuple[str, int, str, bool]] = field(default_factory=list)
    every_parsed: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    @property
    def keys(self) -> int:
        return len(self.sealed) + len(self.parsed)


# A sealed line as the pass first notes it: its key's JSON text, line number, checksum, listed.
_Noted = tuple[bytes, int, bytes, bool]


def latest_lines(
    source: Path | BinaryIO | Ledgers,
    parse: Parse,
    *,
    ledger: bool,
    advance: Advance | None = None,
    every: bool = False,
) -> LatestLines:
    """The latest line of every key in `source` (see the module docstring), and with `every`
    every record line; `parse` reads a line that is not in the fast form (a result of its file,
    or None: counted as skipped; a line it returns without a `key` is of another kind, left out
    uncounted); `ledger`: the file is a ledger (its token logprobs are checked for the view)."""
    found = LatestLines()
    noted: list[_Noted] = []
    parsed: list[tuple[int, dict[str, Any]]] = []
    damaged: set[bytes] = set()  # the checksum text of every line whose seal fails
    head, tail, listed = len(KEY_HEAD), -CRC_TAIL, False
    for number, line in enumerate(_lines(source, advance)):
        if line[-1:] != b"\n":
            line += b"\n"
        if line[tail : tail + 8] == CRC_MARK:
            crc = line[-11:-3]
            if b"%08x" % zlib.crc32(memoryview(line)[:tail]) != crc:
                damaged.add(crc)
                found.skipped += 1
                continue
            mark = line.find(STATUS_MARK, head) if line.startswith(KEY_HEAD) else -1
            if mark > 0:
                if ledger:
                    at = line.find(LISTED, mark)
                    listed = (
                        at > 0
                        and line[at + _LISTED : at + _LISTED + 1] in _POSITION_HEADS
                        and line.find(_LIST_AFTER_POSITION, at) < 0
                    )
                if not ledger or listed or UNLISTED in line:
                    noted.append((line[head:mark], number, crc, listed))
                    continue
        if line[:1] != b"{" and not line.strip():
            continue
        obj = parse(line)
        if obj is None:
            found.skipped += 1
        elif isinstance(obj.get("key"), str):
            parsed.append((number, obj))
    decoded = _decoded(noted, found)
    doubtful = {number for _, number, text, _ in decoded if text.encode() in damaged}
    if doubtful:  # a damaged line could be taken for these: parse them here
        decoded = [entry for entry in decoded if entry[1] not in doubtful]
        parsed = sorted(parsed + _parse_again(source, parse, doubtful, found))
    for key, number, text, listed in decoded:
        found.sealed[key] = (number, text, listed)
    for number, obj in parsed:
        key = obj["key"]
        before = found.sealed.get(key)
        if before is None or before[0] < number:
            found.sealed.pop(key, None)
            found.parsed[key] = (number, obj)
    if every:
        found.every_sealed, found.every_parsed = decoded, parsed
    return found


_LISTED = len(LISTED)
_POSITION_HEADS = (b"{", b"]")
# A list after a position (`[{...},[...]]`): DuckDB would read that list as an empty position, so
# such a line is parsed here (as is one whose text holds these three characters anywhere after
# its token logprobs begin: slower, never wrong).
_LIST_AFTER_POSITION = b"},["


def _decoded(noted: list[_Noted], found: LatestLines) -> list[tuple[str, int, str, bool]]:
    """The noted lines with their keys decoded at once (a head that is no JSON string: the line
    is no record, counted as skipped), in line order."""
    texts = [entry[0] for entry in noted]
    try:
        keys = orjson.loads(b"[" + b",".join(texts) + b"]")
    except orjson.JSONDecodeError:
        keys = [_key(text) for text in texts]
    if len(keys) != len(texts):  # a head such as `1,2`: read one by one
        keys = [_key(text) for text in texts]
    decoded = []
    for key, (_, number, crc, listed) in zip(keys, noted, strict=True):
        if isinstance(key, str):
            decoded.append((key, number, crc.decode("ascii"), listed))
        else:
            found.skipped += 1
    return decoded


def _key(text: bytes) -> str | None:
    try:
        key = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return key if isinstance(key, str) else None


def _parse_again(
    source: Path | BinaryIO | Ledgers, parse: Parse, numbers: set[int], found: LatestLines
) -> list[tuple[int, dict[str, Any]]]:
    """The lines at `numbers` parsed here (those that are no record counted as skipped)."""
    parsed = []
    for number, line in enumerate(_lines(source, None)):
        if number in numbers:
            obj = parse(line)
            if obj is None:
                found.skipped += 1
            elif isinstance(obj.get("key"), str):
                parsed.append((number, obj))
    return parsed


def _lines(source: Path | BinaryIO | Ledgers, advance: Advance | None) -> Iterator[bytes]:
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
