"""`harness merge`: several ledgers (a shard tree, runs made elsewhere) joined into one.

Nothing recorded is lost: every line of every ledger is copied byte for byte, checksum and all,
in the order `harness.ledger_set` reads them (timestamp order, each ledger's own order kept), so
the latest record of a key is the one every reader takes. Run lines and batch lines are copied
like records (a batch's `submit`, `submitted` and `closed` lines keep their order, so a batch a
shard left open is open in the merged ledger until a run collects it there). An exact duplicate
of a line is written once, so merging a shard again, or merging into a ledger that already holds
it, changes nothing. A ledger's last line without a newline (a run still writing it, or killed
mid-line) is left out and counted: the run that owns that ledger sets it aside itself.

The target's ledger, when there is one, is merged too (its lines are never dropped) under its
lock, so no run appends to it meanwhile; the result is written to a temporary file beside it,
fsync'd, and renamed over it, so a reader sees the old ledger or the new one, never half of one.

A key answered in more than one ledger with different answers (another answer text, or one made
from other prompt content) is a conflict: two runs did the same experiment and disagree. Both
answers stay (the latest is the one read); each such key is listed in
`OUTPUT/merge-conflicts.jsonl`, with every answer, where it came from and which one is read.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from harness.errors import InputError
from harness.ledger import LEDGER_NAME, open_and_lock, parse_line, set_aside_torn_tail, sync_dir
from harness.ledger_set import LEDGER_PLACE, Advance, Ledgers, Scan, merged, scan

CONFLICTS_NAME = "merge-conflicts.jsonl"
_RECORD_HEAD = b'{"key":'


@dataclass
class Merged:
    """What a merge wrote: the ledger, its line count, the exact duplicates and unfinished last
    lines left out, and the keys with conflicting answers (listed in `conflicts_path`)."""

    ledger: Path
    ledgers: int
    lines: int = 0
    duplicates: int = 0
    unfinished: int = 0
    conflicts: int = 0
    conflicts_path: Path | None = None


def merge(sources: Ledgers, into: Path, advance: Advance | None = None) -> Merged:
    """Merge `sources` and the ledger already in `into` (a run's output directory) into
    `into/ledger.jsonl`; InputError when it cannot (the ledger in use, a folder that is a file,
    an input that is no ledger), with nothing written."""
    target = into / LEDGER_NAME
    fd = open_and_lock(target)  # creates an empty ledger when there is none, to hold the lock
    try:
        set_aside_torn_tail(target, fd)
        inputs = _inputs(target, sources)
        found = scan(inputs, successes=True, advance=advance)
        _refuse_non_ledgers(inputs, found)
        result = Merged(target, len(inputs), duplicates=sum(len(r) for r in found.repeats))
        conflicts = _Conflicts(inputs, _candidates(found))
        temporary = into / f".{LEDGER_NAME}.{secrets.token_hex(4)}.tmp"
        try:
            with temporary.open("wb") as out:
                for place, line in merged(inputs, found, advance):
                    if not line.endswith(b"\n"):
                        result.unfinished += 1
                        continue
                    out.write(line)
                    result.lines += 1
                    if conflicts.candidates and line.startswith(_RECORD_HEAD):
                        conflicts.see(place // LEDGER_PLACE, line)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
            sync_dir(into)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as exc:
        raise InputError(f"{exc.filename or target}: cannot merge: {exc.strerror}") from None
    finally:
        os.close(fd)
    listed = conflicts.listing()
    if listed:
        result.conflicts = len(listed)
        result.conflicts_path = _write_whole(into / CONFLICTS_NAME, listed)
    return result


def _inputs(target: Path, sources: Ledgers) -> list[Path]:
    """The target's ledger first (when it holds anything), then every source once."""
    inputs = [target] if target.stat().st_size else []
    held = {(s.st_dev, s.st_ino) for s in (target.stat(),)}
    for path in sources.paths:
        stat = path.stat()
        if (stat.st_dev, stat.st_ino) not in held:
            held.add((stat.st_dev, stat.st_ino))
            inputs.append(path)
    return inputs


def _refuse_non_ledgers(inputs: list[Path], found: Scan) -> None:
    """An input with lines of which none is a ledger's is not merged (a wrong file named)."""
    for path, count, known in zip(inputs, found.counts, found.known, strict=True):
        if count and not known:
            raise InputError(f"{path}: not a ledger (no run line or result record in it)")


def _candidates(found: Scan) -> set[int]:
    """The key fingerprints with successes in more than one ledger (a superset of the
    conflicts: the lines are compared when they are copied)."""
    keys, places = found.success_keys, found.success_places
    if keys is None or places is None or keys.size < 2:
        return set()
    edges = np.cumsum(found.counts)
    ledger = np.searchsorted(edges, places, side="right")
    order = np.lexsort((ledger, keys))
    keys, ledger = keys[order], ledger[order]
    across = (keys[1:] == keys[:-1]) & (ledger[1:] != ledger[:-1])
    return set(keys[1:][across].tolist())


@dataclass
class _Conflicts:
    """The records of the candidate keys, gathered as they are copied."""

    inputs: list[Path]
    candidates: set[int]
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    latest_ok: dict[str, bool] = field(default_factory=dict)

    def see(self, number: int, line: bytes) -> None:
        """Note a copied result line of a candidate key: whether it is the key's latest so far
        a success, and if so its answer."""
        mark = line.find(b',"status":"')
        if mark < 0 or hash(line[len(_RECORD_HEAD) : mark]) not in self.candidates:
            return
        record = parse_line(line)
        if record is None or record.get("type") is not None:
            return
        key, ok = record["key"], record["status"] == "ok"
        self.latest_ok[key] = ok
        if ok:
            self.answers.setdefault(key, []).append(
                {
                    "ledger": str(self.inputs[number]),
                    "timestamp": record.get("timestamp"),
                    "run_id": record.get("run_id"),
                    "prompt_hash": record.get("prompt_hash"),
                    "answer_sha256": _digest(record.get("full_response")),
                    "full_response": record.get("full_response"),
                }
            )

    def listing(self) -> list[dict[str, Any]]:
        """One entry per key whose successes come from several ledgers and differ."""
        listed = []
        for key, answers in self.answers.items():
            ledgers = {answer["ledger"] for answer in answers}
            different = {(a["prompt_hash"], a["answer_sha256"]) for a in answers}
            if len(ledgers) > 1 and len(different) > 1:
                read = len(answers) - 1 if self.latest_ok[key] else None
                listed.append({"key": key, "read": read, "answers": answers})
        return listed


def _digest(text: Any) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest()[:16] if isinstance(text, str) else None


def _write_whole(path: Path, entries: list[dict[str, Any]]) -> Path:
    """Write one JSON object per line to a temporary file and rename it to `path`."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("wb") as out:
            for entry in entries:
                out.write(orjson.dumps(entry) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        sync_dir(path.parent)
    finally:
        temporary.unlink(missing_ok=True)
    return path
