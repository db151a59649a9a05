"""The latest-wins view of a ledger's results, streamed: what every reader of answers starts from.

One pass notes the place of each key's latest record (a few dozen bytes per key); a second pass
yields those records in ledger order, so memory holds places, never a million records. A source
is one ledger file or several read as one (`harness.ledger_set.Ledgers`: a shard tree); a place
is stable when lines are appended between the passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.ledger import is_record, iter_lines, parse_line
from harness.ledger_set import Ledgers, placed_lines


def latest_places(source: Path | Ledgers) -> dict[str, int]:
    """Each key's latest result record, as its line's place (see `harness.ledger_set`)."""
    places: dict[str, int] = {}
    for place, line in placed_lines(source):
        if line[:1] == b"{" or line.strip():
            record = parse_line(line)
            if record is not None and is_record(record):  # not a run or batch line
                places[record["key"]] = place
    return places


def latest_records(
    source: Path | Ledgers, *, successes_only: bool = False
) -> Iterator[dict[str, Any]]:
    """The latest record of every key, in ledger order; with `successes_only`, only the keys
    whose latest record is an answer (a failure that superseded an answer hides it)."""
    wanted = set(latest_places(source).values())
    for place, line in placed_lines(source):
        if place in wanted:
            record = parse_line(line)
            if record is not None and (not successes_only or record["status"] == "ok"):
                yield record


def run_lines(source: Path | Ledgers) -> list[dict[str, Any]]:
    """Every run line of the ledger (provenance), oldest first."""
    return [obj for obj in iter_lines(source) if obj is not None and obj.get("type") == "run"]
