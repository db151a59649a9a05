"""The latest-wins view of a ledger's results, streamed: what every reader of answers starts from.

One pass notes the byte offset of each key's latest record (a few dozen bytes per key); a second
pass yields those records in file order, so memory holds offsets, never a million records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.ledger import is_record, iter_lines, parse_line


def latest_offsets(path: Path) -> dict[str, int]:
    """Each key's latest result record, as its line's byte offset in the ledger."""
    offsets: dict[str, int] = {}
    offset = 0
    with path.open("rb") as file:
        for line in file:
            if line.strip():
                record = parse_line(line)
                if record is not None and is_record(record):  # not a run or batch line
                    offsets[record["key"]] = offset
            offset += len(line)
    return offsets


def latest_records(path: Path, *, successes_only: bool = False) -> Iterator[dict[str, Any]]:
    """The latest record of every key, in ledger order; with `successes_only`, only the keys
    whose latest record is an answer (a failure that superseded an answer hides it)."""
    wanted = set(latest_offsets(path).values())
    offset = 0
    with path.open("rb") as file:
        for line in file:
            if offset in wanted:
                record = parse_line(line)
                if record is not None and (not successes_only or record["status"] == "ok"):
                    yield record
            offset += len(line)


def run_lines(path: Path) -> list[dict[str, Any]]:
    """Every run line of the ledger (provenance), oldest first."""
    return [obj for obj in iter_lines(path) if obj is not None and obj.get("type") == "run"]
