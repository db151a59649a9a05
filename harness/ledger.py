"""The ledger: an append-only JSONL file that is both the record of results and the resume index.

Rules (see design.md): one JSON object per line; a result line is written only after an attempt
series has ended; the latest line for a key wins; a key is done when that line says `"ok"`.
Writes go out in small batches with `os.write` on an `O_APPEND` descriptor and are fsync'd on a
timer and at close, so a crash can lose at most the last moments of unsynced results (their jobs
simply run again) and tear at most the last line. Reading skips and counts a torn line; the next
writer moves it to `ledger.jsonl.torn` before appending, so every newline-ended line is whole.
One writer at a time: the file is locked while a run appends to it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson

from harness.errors import InputError

LEDGER_NAME = "ledger.jsonl"


class LedgerWriter:
    """Buffers serialized lines and appends them in batches; `close` flushes and fsyncs."""

    __slots__ = ("_batch", "_buffer", "_fd", "path")

    def __init__(self, path: Path, *, batch: int = 64) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise InputError(f"{path}: in use by another harness run") from None
        # Lines serialized but not yet written; written whenever `batch` of them are waiting.
        self._buffer: list[bytes] = []
        self._batch = batch
        _set_aside_torn_tail(path, self._fd)

    def append(self, obj: Any) -> None:
        """Queue one record (a dict or dataclass); it reaches the file within one batch or tick."""
        self._buffer.append(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
        if len(self._buffer) >= self._batch:
            self.flush()

    def flush(self) -> None:
        """Write every queued line to the file (the OS's page cache, not yet the disk)."""
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]

    def sync(self) -> None:
        """Flush and fsync: what was appended survives a power cut."""
        self.flush()
        os.fsync(self._fd)

    async def sync_every(self, seconds: float) -> None:
        """Flush on every tick and fsync in a worker thread, until cancelled."""
        while True:
            await anyio.sleep(seconds)
            self.flush()
            await anyio.to_thread.run_sync(os.fsync, self._fd)

    def close(self) -> None:
        """Flush, fsync and close the file."""
        try:
            self.sync()
        finally:
            os.close(self._fd)


def _set_aside_torn_tail(path: Path, fd: int) -> None:
    """Move a crash's unfinished last line to `<ledger>.torn`, keeping every line whole."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = size
    while start > 0:
        chunk_start = max(0, start - 65536)
        chunk = os.pread(fd, start - chunk_start, chunk_start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            start = chunk_start + newline + 1
            break
        start = chunk_start
    fragment = os.pread(fd, size - start, start)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()).encode()
    with open(f"{path}.torn", "ab") as torn:
        torn.write(b"# " + stamp + b"\n" + fragment + b"\n")
        torn.flush()
        os.fsync(torn.fileno())
    os.ftruncate(fd, start)


@dataclass
class LedgerContents:
    """Every readable line of a ledger, and how many lines could not be read."""

    records: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0


def iter_lines(path: Path) -> Iterator[dict[str, Any] | None]:
    """Yield each line of the ledger parsed, or None for a line that is torn or not JSON."""
    with path.open("rb") as file:
        for line in file:
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                if line.strip():
                    yield None
                continue
            yield obj if isinstance(obj, dict) else None


def read_ledger(path: Path) -> LedgerContents:
    """All result records and run lines, in file order; unreadable lines are counted."""
    contents = LedgerContents()
    for obj in iter_lines(path):
        if obj is None:
            contents.skipped += 1
        elif obj.get("type") == "run":
            contents.runs.append(obj)
        elif "key" in obj:
            contents.records.append(obj)
        else:
            contents.skipped += 1
    return contents


@dataclass
class ResumeIndex:
    """The latest status of every key, the latest failure records, and the latest run line."""

    status: dict[str, str] = field(default_factory=dict)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_run: dict[str, Any] | None = None
    skipped: int = 0

    def is_done(self, key: str) -> bool:
        """True when the key's latest record is a success."""
        return self.status.get(key) == "ok"


# Result lines begin `{"key":<json string>,"status":"...` (see harness.record). Inside a JSON
# string every quote is escaped, so the first `,"status":"` always ends the key.
_KEY_HEAD = b'{"key":'
_STATUS_MARK = b',"status":"'
_OK_HEAD = b'ok"'


def build_index(path: Path) -> ResumeIndex:
    """Scan the ledger once; the latest record per key wins. A missing ledger is empty.

    Successes, nearly every line, are read from their first fields alone; everything else is
    parsed whole. A newline-ended line is whole (see the module docstring), so only the final
    line needs the full parse to tell a torn record from a finished one.
    """
    index = ResumeIndex()
    if not path.exists():
        return index
    status, failures, loads = index.status, index.failures, orjson.loads
    with path.open("rb") as file:
        for line in file:
            if line.startswith(_KEY_HEAD) and line.endswith(b"}\n"):
                mark = line.find(_STATUS_MARK)
                if mark > 0 and line.startswith(_OK_HEAD, mark + 11):
                    key = loads(line[7:mark])
                    status[key] = "ok"
                    failures.pop(key, None)
                    continue
            _index_whole_line(index, line)
    return index


def _index_whole_line(index: ResumeIndex, line: bytes) -> None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        index.skipped += bool(line.strip())
        return
    key = obj.get("key") if isinstance(obj, dict) else None
    if key is None:
        if isinstance(obj, dict) and obj.get("type") == "run":
            index.last_run = obj
        else:
            index.skipped += 1
        return
    outcome = obj.get("status")
    index.status[key] = outcome
    if outcome == "ok":
        index.failures.pop(key, None)
    else:
        index.failures[key] = obj
