"""`harness merge`: several ledgers (a shard tree, runs made elsewhere) joined into one.

Nothing recorded is lost: every line of every ledger is copied byte for byte, checksum and all,
in the order `harness.ledger.sets` reads them (timestamp order, each ledger's own order kept), so
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
import re
from array import array
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from harness.errors import InputError
from harness.ledger.lines import LEDGER_NAME, parse_line
from harness.ledger.sets import (
    LEDGER_PLACE,
    Advance,
    Ledgers,
    OutOfOrder,
    blank,
    is_ledger_line,
    merged,
    repeats,
    success_key,
)
from harness.ledger.targets import OwnFile, check_target, head
from harness.ledger.writer import open_and_lock, set_aside_torn_tail
from harness.whole import discard, remove_stale, sync_dir, temporary_path, written_whole

CONFLICTS_NAME = "merge-conflicts.jsonl"
_RECORD_HEAD = b'{"key":'
# The head of a conflicts list's first entry (see `_Conflicts.listing`).
_CONFLICT = re.compile(rb'\A\{"key":"(?:[^"\\]|\\.)*","read":(?:null|\d+),"answers":\[')
_CONFLICTS = OwnFile(
    "a list of conflicts an earlier merge wrote", lambda at: bool(_CONFLICT.match(head(at)))
)


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
    an input that is no ledger), with nothing written. `advance` is given the bytes read."""
    target = into / LEDGER_NAME
    check_target(into / CONFLICTS_NAME, "merge", _CONFLICTS, hint="move it away first")
    created = not target.exists()
    fd = open_and_lock(target)  # creates an empty ledger when there is none, to hold the lock
    replaced = False
    temporary = temporary_path(into, LEDGER_NAME)
    try:
        remove_stale(into, LEDGER_NAME)  # what merges killed here left (under the lock: none runs)
        set_aside_torn_tail(target, fd)
        inputs, limits = _inputs(target, sources)
        _refuse_non_ledgers(inputs)
        try:
            result, answers = _write(inputs, limits, temporary, None, advance)
        except OutOfOrder:  # a clock went back: find the duplicates by fingerprint instead
            found = repeats(inputs, advance, limits)
            result, answers = _write(inputs, limits, temporary, found, advance)
        result.ledger = target
        os.replace(temporary, target)
        replaced = True
        sync_dir(into)
        listed = _conflicts(target, inputs, answers)
    except OSError as exc:
        raise InputError(f"{exc.filename or target}: cannot merge: {exc.strerror}") from None
    finally:
        discard(temporary)
        if created and not replaced:  # the empty ledger made to hold the lock
            target.unlink(missing_ok=True)
        os.close(fd)
    if listed:
        result.conflicts = len(listed)
        result.conflicts_path = _write_conflicts(into / CONFLICTS_NAME, listed)
    return result


@dataclass
class _Answers:
    """Where the merged ledger's successes came from, in its order: each one's key fingerprint
    (Python's hash of its JSON) and the number of its ledger (12 bytes a success)."""

    keys: array[int] = field(default_factory=lambda: array("q"))
    ledgers: array[int] = field(default_factory=lambda: array("i"))


def _write(
    inputs: list[Path],
    limits: list[int | None],
    temporary: Path,
    repeated: list[np.ndarray] | None,
    advance: Advance | None,
) -> tuple[Merged, _Answers]:
    """Write the merged lines of `inputs` to `temporary`, fsync'd; OutOfOrder (without
    `repeated`) when a ledger's times go back; InputError for an input that is not a ledger."""
    result = Merged(temporary, len(inputs))
    answers = _Answers()
    counts = [0] * len(inputs)
    with temporary.open("wb") as out:
        lines = merged(
            inputs, repeated, advance, strict=repeated is None, counts=counts, limits=limits
        )
        for place, line in lines:
            if not line.endswith(b"\n"):
                result.unfinished += 1
                continue
            out.write(line)
            if line.startswith(_RECORD_HEAD):
                key = success_key(line)
                if key is not None:
                    answers.keys.append(hash(key))
                    answers.ledgers.append(place // LEDGER_PLACE)
            result.lines += 1
        out.flush()
        os.fsync(out.fileno())
    result.duplicates = sum(counts) - result.lines - result.unfinished
    return result, answers


def _refuse_non_ledgers(inputs: list[Path]) -> None:
    """An input none of whose first lines is a ledger's is not merged (a wrong file named)."""
    for path in inputs:
        with path.open("rb") as file:
            head = list(islice((line for line in file if not blank(line)), 64))
        if head and not any(is_ledger_line(line) for line in head):
            raise InputError(f"{path}: not a ledger (no run line or result record in it)")


def _inputs(target: Path, sources: Ledgers) -> tuple[list[Path], list[int | None]]:
    """The target's ledger first (when it holds anything), then every source once; and where
    each one's reading stops (the sources' sizes when they were named)."""
    own = target.stat()
    inputs: list[Path] = [target] if own.st_size else []
    limits: list[int | None] = [None] if own.st_size else []
    held = {(own.st_dev, own.st_ino)}
    sizes = sources.sizes or (None,) * len(sources.paths)
    for path, size in zip(sources.paths, sizes, strict=True):
        stat = path.stat()
        if (stat.st_dev, stat.st_ino) not in held:
            held.add((stat.st_dev, stat.st_ino))
            inputs.append(path)
            limits.append(size)
    return inputs, limits


def _conflicts(merged_ledger: Path, inputs: list[Path], answers: _Answers) -> list[dict[str, Any]]:
    """The keys with different answers from different ledgers, read back from the merged
    ledger: only those whose successes came from more than one ledger are looked at."""
    keys = np.frombuffer(answers.keys, np.int64)
    ledgers = np.frombuffer(answers.ledgers, np.int32)
    if keys.size < 2:
        return []
    order = np.lexsort((ledgers, keys))
    sorted_keys, sorted_ledgers = keys[order], ledgers[order]
    across = (sorted_keys[1:] == sorted_keys[:-1]) & (sorted_ledgers[1:] != sorted_ledgers[:-1])
    candidates = set(sorted_keys[1:][across].tolist())
    if not candidates:
        return []
    found = _Conflicts(inputs, candidates)
    successes = iter(answers.ledgers)  # the i-th success line came from this ledger
    with merged_ledger.open("rb") as file:
        for line in file:
            if line.startswith(_RECORD_HEAD):
                number = next(successes) if success_key(line) is not None else None
                found.see(number, line)
    return found.listing()


@dataclass
class _Conflicts:
    """The records of the candidate keys, read back from the merged ledger."""

    inputs: list[Path]
    candidates: set[int]
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    latest_ok: dict[str, bool] = field(default_factory=dict)

    def see(self, number: int | None, line: bytes) -> None:
        """Note a result line of a candidate key (`number`: the ledger a success came from):
        whether it is the key's latest so far a success, and if so its answer."""
        mark = line.find(b',"status":"', len(_RECORD_HEAD))
        if mark < 0 or hash(line[len(_RECORD_HEAD) : mark]) not in self.candidates:
            return
        record = parse_line(line)
        if record is None or record.get("type") is not None:
            return
        key, ok = record["key"], record["status"] == "ok"
        self.latest_ok[key] = ok
        if ok and number is not None:
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


def _write_conflicts(path: Path, entries: list[dict[str, Any]]) -> Path:
    """Write one JSON object per line to `path`, whole."""
    with written_whole(path) as temporary, temporary.open("wb") as out:
        out.writelines(orjson.dumps(entry) + b"\n" for entry in entries)
    return path
