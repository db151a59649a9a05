"""Which of a scorer's labels says an item exists and which says it does not (the scorer's
`claims` and `denies` options), kept beside the scores for the hallucination view of `stats`
and the report, which read the output folder alone.

`OUTPUT/scorers.jsonl` follows the ledger's rules (appended by `harness score` through
`harness.ledger.writer.LedgerWriter`, every line sealed; the latest line per key wins). One line
per scorer whenever what it says changes:

    {"key": "<scorer>", "type": "scorer", "scorer": "...", "definition": "<12 hex>",
     "claims": str | null, "denies": str | null, "schema": 1, "timestamp": "...",
     "crc": "<8 hex>"}

A line counts only for the scores made under its `definition` (the scorer's definition hash
when `score` wrote it): a scorer edited since, and not scored again, has no probe labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from harness.analysis.answers import lines_at
from harness.input_files import refuse_special
from harness.ledger.lines import parse_sealed
from harness.ledger.record import utc_timestamp
from harness.ledger.writer import LedgerWriter

SCORERS_NAME = "scorers.jsonl"
_SCHEMA = 1


class ProbeLabels(msgspec.Struct, frozen=True):
    """One scorer's line: the labels that claim and deny existence (null: none), for the scores
    made under `definition`."""

    key: str
    type: Literal["scorer"]
    scorer: str
    definition: str
    claims: str | None = None
    denies: str | None = None


def read_probe_labels(path: Path) -> dict[str, ProbeLabels]:
    """The latest line of every scorer in the file at `path` (none when it is missing); a line
    that is damaged or not of the shape is left out."""
    found: dict[str, ProbeLabels] = {}
    if not path.exists():
        return found
    refuse_special(path)
    for _, line in lines_at(path):
        obj = parse_sealed(line, always_sealed=True) if line.strip() else None
        try:
            labels = msgspec.convert(obj, ProbeLabels)
        except msgspec.ValidationError:
            continue
        found[labels.key] = labels
    return found


def write_probe_labels(
    output: Path, given: Mapping[str, tuple[str, str | None, str | None]]
) -> int:
    """Append a line for each scorer of `given` (name -> definition hash, claims, denies) whose
    latest line says otherwise (a scorer without either label and without a line: none);
    returns how many were written."""
    path = output / SCORERS_NAME
    latest = read_probe_labels(path)
    lines = []
    for name, (definition, claims, denies) in given.items():
        before = latest.get(name)
        if before is None and not (claims or denies):
            continue
        now = ProbeLabels(name, "scorer", name, definition, claims or None, denies or None)
        if now != before:
            lines.append(
                {**msgspec.structs.asdict(now), "schema": _SCHEMA, "timestamp": utc_timestamp()}
            )
    if lines:
        writer = LedgerWriter(path)
        try:
            for line in lines:
                writer.append(line)
        finally:
            writer.close()
    return len(lines)
