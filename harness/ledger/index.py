"""The resume index: one pass over a ledger (`build_index`) says, for every key, whether its latest
record is a success and from which prompt content, or its latest failure. The index keeps every
batch not closed and the keys it still owes a record, so a run re-attaches to it instead of sending
them again.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from harness.ledger.lines import (
    CRC_MARK,
    CRC_TAIL,
    ERROR_STATUS,
    HASH_AT,
    KEY_HEAD,
    OK_HASH,
    STATUS_MARK,
    Source,
    head_key,
    parse_line,
    source_lines,
)


@dataclass
class OpenBatch:
    """A provider batch the ledger says was submitted, or was being submitted, and is not closed:
    its label, the model (config name) and provider that sent it, its `submit` line's run and
    time, its keys and the prompt hashes they were sent with (in custom-id order), and the
    provider's id for it (None: its creation was never confirmed)."""

    label: str
    model: str
    provider: str
    run_id: str
    submitted: str
    keys: list[str]
    hashes: list[str]
    batch_id: str | None = None


@dataclass
class ResumeIndex:
    """The latest state of every key: the prompt content its success was made from, or its
    latest failure record, and how many failure records it has (`failed_before`); and every
    open batch, with the keys it still owes a record (`awaiting`: key -> batch label). `skipped`
    counts lines that could not be read."""

    answered: dict[str, str | None] = field(default_factory=dict)
    # A key's latest failure: its checksummed line, parsed only when `failures` is asked for
    # (`run` needs none of them; parsing a tenth of a 1M-record ledger cost 0.4 s).
    failed: dict[str, bytes | dict[str, Any]] = field(default_factory=dict)
    # Each key's failure records, latest or not: attempt series of the job that ended in failure.
    failed_before: dict[str, int] = field(default_factory=dict)
    batches: dict[str, OpenBatch] = field(default_factory=dict)
    awaiting: dict[str, str] = field(default_factory=dict)
    batch_ids: set[str] = field(default_factory=set)  # every provider batch id in the ledger
    skipped: int = 0

    def owed(self, batch: OpenBatch) -> list[int]:
        """The places (custom-id order) of an open batch's keys that have no record yet."""
        label, awaiting = batch.label, self.awaiting
        return [i for i, key in enumerate(batch.keys) if awaiting.get(key) == label]

    @property
    def failures(self) -> dict[str, dict[str, Any]]:
        """Every key whose latest record is a failure, with that record."""
        return self.read_failures()

    def read_failures(self) -> dict[str, dict[str, Any]]:
        """`failures`, parsing the lines not parsed yet (each kept parsed in `failed`): a line
        that is not a record (of no known shape) is counted in `skipped`, and its key has no
        failure."""
        failures: dict[str, dict[str, Any]] = {}
        for key, line in list(self.failed.items()):
            if isinstance(line, bytes):
                record = parse_line(line)
                if record is None or record.get("key") != key:
                    del self.failed[key]
                    self.skipped += 1
                    continue
                self.failed[key] = line = record
            failures[key] = line
        return failures

    def take_appended(self, line: bytes) -> None:
        """Take a line the run holding the ledger appended: a failure becomes the key's latest
        (and is counted), a success ends its failure (and replaces the prompt hash of a key
        already answered: a key first answered now is not added, so a run's index does not grow
        with its answers), a result releases the key from its open batch, a batch line opens or
        closes a batch."""
        key = head_key(line)
        if key is None:
            _index_whole_line(self, line, None)
            return
        self.awaiting.pop(key, None)
        if line.startswith(ERROR_STATUS, line.find(STATUS_MARK) + len(STATUS_MARK)):
            self.answered.pop(key, None)
            self.failed[key] = line
            self.failed_before[key] = self.failed_before.get(key, 0) + 1
            return
        self.failed.pop(key, None)
        if key in self.answered:
            at = line.find(STATUS_MARK) + HASH_AT
            self.answered[key] = line[at : at + 16].decode()

    def is_done(self, key: str, prompt_hash: str) -> bool:
        """True when the key's latest record is a success made from this prompt content."""
        return self.answered.get(key, False) == prompt_hash

    def changed(self, key: str, prompt_hash: str) -> bool:
        """True when the key's latest success was made from other prompt content."""
        return key in self.answered and self.answered[key] != prompt_hash


def build_index(source: Source, keeps: Callable[[str], bool] | None = None) -> ResumeIndex:
    """Scan the ledger once; the latest record per key wins. A missing ledger is empty. With
    `keeps`, only the records of the keys it keeps are indexed (a shard's own).

    Successes, nearly every line, are read from their first fields and their checksum alone (a
    line whose checksum fails is never done; one whose later fields are of the wrong shape is
    done here, though every reader that parses it skips it: checking it would parse every line,
    several times the cost); everything else is parsed whole and must have a record's shape.
    Prompt hashes are interned: every variant and sample of a prompt shares one.
    """
    index = ResumeIndex()
    if isinstance(source, Path) and not source.exists():
        return index
    deque(index_lines(index, source_lines(source), keeps), maxlen=0)
    return index


def index_lines(
    index: ResumeIndex, lines: Iterable[bytes], keeps: Callable[[str], bool] | None = None
) -> Iterator[tuple[bytes, bool]]:
    """Index each line as `build_index` does, then yield it with whether it is a result line
    read from its head (`head_key` would find its key: its checksum holds), so that a reader of
    the same lines need not check it again."""
    answered, failed, loads, crc32 = index.answered, index.failed, orjson.loads, zlib.crc32
    failed_before = index.failed_before
    awaiting = index.awaiting  # a record for a key of an open batch: that batch delivered it
    hashes: dict[bytes, str] = {}
    for line in lines:
        if line.startswith(KEY_HEAD):
            mark = line.find(STATUS_MARK)
            at = mark + HASH_AT
            if (
                mark > 0
                and line.endswith(b'"}\n')
                and line.startswith(CRC_MARK, len(line) - CRC_TAIL)
                and b"%08x" % crc32(line[:-CRC_TAIL]) == line[-11:-3]
            ):
                try:
                    key = loads(line[7:mark])
                except orjson.JSONDecodeError:
                    key = None  # a checksum that matches a line built by hand
                if not isinstance(key, str):
                    pass
                elif line.startswith(OK_HASH, mark + 11) and line[at + 16 : at + 18] == b'",':
                    if keeps is None or keeps(key):
                        raw = line[at : at + 16]
                        answered[key] = hashes.get(raw) or hashes.setdefault(raw, raw.decode())
                        if failed:
                            failed.pop(key, None)
                        if awaiting:
                            awaiting.pop(key, None)
                    yield line, True
                    continue
                elif line.startswith(ERROR_STATUS, mark + 11):
                    if keeps is None or keeps(key):
                        answered.pop(key, None)
                        failed[key] = line
                        failed_before[key] = failed_before.get(key, 0) + 1
                        if awaiting:
                            awaiting.pop(key, None)
                    yield line, True
                    continue
                elif keeps is not None and not keeps(key):
                    yield line, line.startswith(b'ok"', mark + 11)
                    continue
        _index_whole_line(index, line, keeps)
        yield line, False


def _index_whole_line(index: ResumeIndex, line: bytes, keeps: Callable[[str], bool] | None) -> None:
    obj = parse_line(line) if line.strip() else None
    if obj is None:
        index.skipped += bool(line.strip())
    elif obj.get("type") == "batch":
        _index_batch_line(index, obj)
    elif obj.get("type") != "run" and (keeps is None or keeps(obj["key"])):
        key = obj["key"]
        index.awaiting.pop(key, None)
        if obj["status"] == "ok":
            hashed = obj.get("prompt_hash")
            index.answered[key] = hashed if isinstance(hashed, str) else None
            index.failed.pop(key, None)
        else:
            index.answered.pop(key, None)
            index.failed[key] = obj
            index.failed_before[key] = index.failed_before.get(key, 0) + 1


def _index_batch_line(index: ResumeIndex, line: dict[str, Any]) -> None:
    """Open a batch, note its provider id, or close it (releasing the keys it still owed)."""
    label, event = line["batch"], line["event"]
    if event == "submit":
        keys = line["keys"]
        index.batches[label] = OpenBatch(
            label,
            line["model"],
            line["provider"],
            str(line.get("run_id", "")),
            line["timestamp"],
            keys,
            line["hashes"],
        )
        index.awaiting.update(dict.fromkeys(keys, label))
        return
    batch = index.batches.get(label)
    if batch is None:
        return
    if event == "submitted":
        batch.batch_id = line["batch_id"]
        index.batch_ids.add(batch.batch_id)
    else:
        del index.batches[label]
        for key in batch.keys:
            if index.awaiting.get(key) == label:
                del index.awaiting[key]
