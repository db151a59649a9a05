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
from harness.errors import InputError
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


def read_probe_labels(path: Path) -> tuple[dict[str, ProbeLabels], int]:
    """The latest line of every scorer in the file at `path` (none when it is missing), and how
    many lines were left out (damaged, or not of the shape); InputError when it is no file."""
    found: dict[str, ProbeLabels] = {}
    skipped = 0
    if not check_probe_labels(path):
        return found, skipped
    for _, line in lines_at(path):
        if not line.strip():
            continue
        try:
            labels = msgspec.convert(parse_sealed(line, always_sealed=True), ProbeLabels)
        except msgspec.ValidationError:
            skipped += 1
            continue
        found[labels.key] = labels
    return found, skipped


def check_probe_labels(path: Path) -> bool:
    """Whether the file is there; InputError when something else is (a folder, a FIFO)."""
    if not path.exists():
        return False
    refuse_special(path)
    if not path.is_file():
        raise InputError(f"{path}: is not a file (the scorers file must be one)")
    return True


def write_probe_labels(
    output: Path, given: Mapping[str, tuple[str, str | None, str | None]]
) -> list[str]:
    """Append a line for each scorer of `given` (name -> definition hash, claims, denies) whose
    latest line says otherwise (a scorer without either label and without a line: none);
    returns their names."""
    path = output / SCORERS_NAME
    latest, _ = read_probe_labels(path)
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
    return [line["scorer"] for line in lines]
