"""The ledger's line format: an append-only JSONL file that is both the record of results and the
resume index.

Rules (see docs/architecture.md): one JSON object per line; a result line is written only after an
attempt series has ended; the latest line for a key wins; a key is done when that line says `"ok"`.
Besides results, a ledger holds a `{"type": "run"}` line per run (provenance) and
`{"type": "batch"}` lines that follow a provider batch (see `harness.run.batch_lane`): `submit` (its
label, model, provider and keys, written and fsync'd before the batch is created), `submitted` (the
provider's id for it) and `closed` (its results are all recorded). Every line ends with its
checksum (`sealed`). Reading skips and counts a torn line; the next writer moves it to
`ledger.jsonl.torn` before appending (see `harness.ledger.writer`), so every newline-ended line is
whole. A last line that lacks only its newline is whole (its checksum says so): it is read, and the
next writer ends it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson

from harness.ledger.record import as_record, decode_record
from harness.scrub import SECRETS

LEDGER_NAME = "ledger.jsonl"
# How much a reader of lines reads at a time: iterating over 1.5 GB of lines takes half the
# time of Python's default 8 KiB buffer.
READ_BUFFER = 1 << 20


@dataclass
class LedgerContents:
    """Every readable line of a ledger, and how many lines could not be read."""

    records: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0


# What a reader reads: a ledger file, or lines (`harness.ledger.sets.Ledgers`: several ledgers
# read as one).
Source = Path | Iterable[bytes]


def source_lines(source: Source) -> Iterator[bytes]:
    """The lines of a ledger file, or of lines given as they are."""
    if isinstance(source, Path):
        with source.open("rb", buffering=READ_BUFFER) as file:
            yield from file
    else:
        yield from source


def iter_lines(source: Source) -> Iterator[dict[str, Any] | None]:
    """Yield each line of the ledger parsed: a run line, a batch line, a result record, or None
    for a line that is torn, not JSON, fails its checksum, or is not shaped like any of them."""
    if isinstance(source, Path):
        with source.open("rb", buffering=READ_BUFFER) as file:
            yield from map(parse_line, filter(_not_blank, file))
    else:
        yield from map(parse_line, filter(_not_blank, source))


def _not_blank(line: bytes) -> bool:
    return line[:1] == b"{" or bool(line.strip())


def read_ledger(source: Source) -> LedgerContents:
    """All result records, run lines and batch lines, in file order; unreadable lines are
    counted."""
    contents = LedgerContents()
    for obj in iter_lines(source):
        if obj is None:
            contents.skipped += 1
        elif obj.get("type") == "run":
            contents.runs.append(obj)
        elif obj.get("type") == "batch":
            contents.batches.append(obj)
        else:
            contents.records.append(obj)
    return contents


def parse_line(line: bytes) -> dict[str, Any] | None:
    """One ledger line parsed: a run line, a batch line or a result record (of the shape
    `harness.ledger.record.RecordLine` says, only its fields); None for a line that is torn, not
    JSON, fails its checksum, or has none of those shapes. A line the harness wrote as a result
    record is checked as it is parsed; any other is parsed, then checked."""
    if line.startswith(KEY_HEAD):
        return parse_sealed(line, decode=decode_record)
    obj = parse_sealed(line)
    if obj is None or obj.get("type") == "run" or is_batch_line(obj):
        return obj
    return as_record(obj)


def is_result(line: dict[str, Any]) -> bool:
    """Whether a line `parse_line` returned is a result record (not a run or batch line)."""
    return "type" not in line


def is_batch_line(obj: dict[str, Any]) -> bool:
    """Whether a parsed line is a well-formed batch line (see the module docstring)."""
    if obj.get("type") != "batch" or not isinstance(obj.get("batch"), str):
        return False
    event = obj.get("event")
    if event == "submit":
        keys, hashes = obj.get("keys"), obj.get("hashes")
        return (
            all(isinstance(obj.get(name), str) for name in ("model", "provider", "timestamp"))
            and isinstance(keys, list)
            and isinstance(hashes, list)
            and len(keys) == len(hashes)
            and all(isinstance(item, str) for item in keys + hashes)
        )
    if event == "submitted":
        return isinstance(obj.get("batch_id"), str)
    return event == "closed"


def parse_sealed(
    line: bytes,
    *,
    always_sealed: bool = False,
    decode: Callable[[bytes], Any] = orjson.loads,
) -> dict[str, Any] | None:
    """One line of a sealed JSONL file (the ledger, scores) as its object (parsed by `decode`);
    None for a line that is torn, not a JSON object (or not one `decode` takes), fails its
    checksum, or lost the checksum it must have (every line of a file whose lines are
    `always_sealed`, or one whose schema promises it)."""
    intact = _intact(line)
    if intact is False:
        return None
    try:
        obj = decode(line)
    except (orjson.JSONDecodeError, msgspec.DecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    if intact is None and (always_sealed or _sealed_schema(obj)):  # its checksum is gone
        return None
    return obj


def _sealed_schema(obj: dict[str, Any]) -> bool:
    """Whether the line claims a schema whose every line carries a checksum (2 and later)."""
    schema = obj.get("schema")
    return type(schema) is int and schema >= 2


# Success lines begin `{"key":<json string>,"status":"ok","prompt_hash":"<16 hex>",` (see
# harness.ledger.record). Inside a JSON string every quote is escaped, so the first `,"status":"`
# ends the key.
KEY_HEAD = b'{"key":'
STATUS_MARK = b',"status":"'
OK_HASH = b'ok","prompt_hash":"'
ERROR_STATUS = b'error"'
HASH_AT = len(STATUS_MARK) + len(OK_HASH)


def head_key(line: bytes) -> str | None:
    """The key of a result line read from its head, trusted on its checksum alone (as
    `build_index` trusts it): `{"key":<json string>,"status":"ok"|"error",` then the rest, sealed.
    None for any other line (a run line, one without a checksum, or whose checksum fails): parse
    those whole."""
    if not line.startswith(KEY_HEAD) or _intact(line) is not True:
        return None
    mark = line.find(STATUS_MARK)
    if mark < 0 or not line.startswith((b'ok"', ERROR_STATUS), mark + len(STATUS_MARK)):
        return None
    try:
        key = orjson.loads(line[len(KEY_HEAD) : mark])
    except orjson.JSONDecodeError:
        return None
    return key if isinstance(key, str) else None


# Every line the writer appends ends with its checksum: `,"crc":"<8 hex>"}` and a newline, the
# CRC-32 of all the bytes before `,"crc"`. It catches a line corrupted anywhere, not only at its
# end, for about 0.3 s per million records (zlib.crc32 runs at several GB/s).
CRC_MARK = b',"crc":"'
CRC_TAIL = len(CRC_MARK) + 8 + len(b'"}\n')


def sealed(obj: Any) -> bytes:
    """One object as a ledger line: its JSON, every known secret scrubbed (see harness.scrub),
    with the checksum as the last field, and a newline."""
    head = SECRETS.scrub_bytes(orjson.dumps(obj)[:-1])  # without its closing brace
    return b'%b,"crc":"%08x"}\n' % (head, zlib.crc32(head))


def _intact(line: bytes) -> bool | None:
    """True when a line's checksum matches, False when it does not, None when it has none (a
    line written before checksums, or by hand). A last line may lack its newline (a crash cut
    it, or its writer is writing it): its checksum says whether the rest is whole."""
    if not line.endswith(b"\n"):
        line += b"\n"
    if line[-CRC_TAIL : -CRC_TAIL + 8] != CRC_MARK or not line.endswith(b'"}\n'):
        return None
    return b"%08x" % zlib.crc32(line[:-CRC_TAIL]) == line[-11:-3]
