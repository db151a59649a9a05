"""The ledger: an append-only JSONL file that is both the record of results and the resume index.

Rules (see docs/architecture.md): one JSON object per line; a result line is written only after an
attempt series has ended; the latest line for a key wins; a key is done when that line says `"ok"`.
Besides results, a ledger holds a `{"type": "run"}` line per run (provenance) and
`{"type": "batch"}` lines that follow a provider batch (see `harness.run.batch_lane`): `submit` (its
label, model, provider and keys, written and fsync'd before the batch is created), `submitted` (the
provider's id for it) and `closed` (its results are all recorded). The index keeps every batch not
closed and the keys it still owes a record, so a run re-attaches to it instead of sending them
again.
Writes go out in small batches with `os.write` on an `O_APPEND` descriptor and are fsync'd on a
timer and at close, so a crash can lose at most the last moments of unsynced results (their jobs
simply run again) and tear at most the last line. Reading skips and counts a torn line; the next
writer moves it to `ledger.jsonl.torn` before appending, so every newline-ended line is whole. A
last line that lacks only its newline is whole (its checksum says so): it is read, and the next
writer ends it.

One writer at a time: the file is locked (flock) while a run appends to it. `--fresh` takes that
lock on the old ledger first, renames it to `ledger.<stamp>.jsonl` while holding it, then creates
and locks the new one, so a fresh start never pulls a ledger from under a live run. The ledgers a
fresh run would also read (its shards': see `harness.run.run_ledger`) are locked before any
ledger is renamed, so one in use leaves every one as it was, then set aside with the same stamp.
The directory is fsync'd after a ledger is created or renamed, so a power cut cannot lose the file
itself. A ledger a writer created is removed at close when nothing reached it (`discard_empty`,
as `merge` does with the one it makes to hold the lock): an empty file is no ledger.

What the writer does when the file misbehaves under it (checked at every flush: one fstat, one
stat; a flush is every 64 lines and every second):

- the ledger was deleted: the open descriptor still holds every line, so they are copied to a new
  ledger at the same path, a warning is logged, and the run carries on;
- the path now holds another file (replaced): that file is never touched; everything this writer
  holds goes to `ledger.recovered-<stamp>.jsonl` beside it, the rest of the run's lines follow it
  there, and the run stops with `LedgerWriteError` naming that file;
- a write or fsync fails (disk full, I/O error, file too large): the lines already written stay,
  the run stops with `LedgerWriteError`, and `unwritten` counts the finished records that never
  reached the file (their jobs run again on resume; a line cut short is a torn tail, set aside
  as above).

The CLI exits 2 when the ledger cannot be opened or its first line written (nothing ran), and 3
when it fails mid-run (see harness.errors.EXIT_LEDGER).
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import anyio
import msgspec
import orjson

from harness.errors import InputError, LedgerWriteError
from harness.input_files import special_problem
from harness.ledger.record import as_record, decode_record, utc_timestamp
from harness.scrub import SECRETS
from harness.whole import sync_dir

LEDGER_NAME = "ledger.jsonl"

# os.write's shape: (descriptor, bytes) -> how many were written. Tests pass one that fails.
Write = Callable[[int, memoryview], int]

log = logging.getLogger("harness.ledger")


class LedgerWriter:
    """Buffers serialized lines and appends them in batches; `close` flushes and fsyncs.

    `fresh` sets an existing ledger aside first, and with it each ledger of `along` that holds
    anything (see the module docstring); `set_aside` is then where the ledger went, and
    `set_aside_along` (where it was, where it went) for each other one. Opening raises InputError,
    with nothing renamed when a ledger is in use; a failed flush raises LedgerWriteError once,
    after which the writer keeps what it could not write (`unwritten`) and writes nothing more.
    """

    __slots__ = (
        "_batch",
        "_buffer",
        "_created",
        "_failed",
        "_fd",
        "_write",
        "observe",
        "path",
        "set_aside",
        "set_aside_along",
    )

    def __init__(
        self,
        path: Path,
        *,
        batch: int = 64,
        fresh: bool = False,
        along: Sequence[Path] = (),
        write: Write = os.write,
    ) -> None:
        self.path = path
        self._created = not path.exists()
        held = _lock_existing(along) if fresh else []
        try:
            self._fd = self._prepare(open_and_lock(path), fresh, held)
        finally:
            for _, locked in held:
                os.close(locked)
        # Lines serialized but not yet written; written whenever `batch` of them are waiting.
        self._buffer: list[bytes] = []
        self._batch = batch
        self._write = write
        self._failed = False
        # Given every line as it is queued (a run's ledger: see harness.run.run_ledger).
        self.observe: Callable[[bytes], None] | None = None

    def _prepare(self, fd: int, fresh: bool, held: list[tuple[Path, int]]) -> int:
        """Set the locked ledger and the `held` ones aside when `fresh`, end a torn last line:
        the descriptor to write to. InputError when a file cannot be renamed or written."""
        path = self.path
        try:
            stamp = _stamp()
            fd, self.set_aside = _start_fresh(path, fd, stamp) if fresh else (fd, None)
            self._created = self._created or self.set_aside is not None
            self.set_aside_along = [_rename_aside(p, stamp) for p, _ in held]
            set_aside_torn_tail(path, fd)
            sync_dir(path.parent)
        except OSError as exc:
            os.close(fd)
            problem = f"{exc.filename or path}: cannot prepare the ledger: {exc.strerror}"
            raise InputError(problem) from None
        return fd

    @property
    def unwritten(self) -> int:
        """Finished records that could not be written (after a failed flush)."""
        return len(self._buffer)

    def append(self, obj: Any) -> None:
        """Queue one record (a dict or dataclass); it reaches the file within one batch or tick."""
        line = sealed(obj)
        self._buffer.append(line)
        if self.observe is not None:
            self.observe(line)
        if len(self._buffer) >= self._batch:
            self.flush()

    def flush(self) -> None:
        """Write every queued line to the file (the OS's page cache, not yet the disk), first
        making sure the file at `path` is still the one this writer holds."""
        if self._failed:
            return
        try:
            self._follow_file()
            self._write_out()
        except OSError as exc:
            self._fail(exc)

    def sync(self) -> None:
        """Flush and fsync: what was appended survives a power cut."""
        self.flush()
        self._fsync()

    async def sync_every(self, seconds: float) -> None:
        """Flush on every tick and fsync in a worker thread, until cancelled."""
        while True:
            await anyio.sleep(seconds)
            self.flush()
            await anyio.to_thread.run_sync(self._fsync)

    def close(self, *, discard_empty: bool = False) -> None:
        """Flush, fsync and close the file; after a failure, only close it. With `discard_empty`,
        a ledger this writer created that nothing reached is removed first, under its lock.
        Closing twice is closing once."""
        if self._fd < 0:
            return
        try:
            self.sync()
        finally:
            if discard_empty and self._created:
                self._discard_if_empty()
            os.close(self._fd)
            self._fd = -1

    def _discard_if_empty(self) -> None:
        """Remove the ledger when it is empty and still the file at `path`."""
        held = os.fstat(self._fd)
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return
        if held.st_size == 0 and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            self.path.unlink()
            sync_dir(self.path.parent)

    def _write_out(self) -> None:
        data = b"".join(self._buffer)
        view = memoryview(data)
        try:
            while view:
                view = view[self._write(self._fd, view) :]
        except OSError:
            del self._buffer[: data.count(b"\n", 0, len(data) - len(view))]
            raise
        self._buffer.clear()

    def _fsync(self) -> None:
        if self._failed:
            return
        fd = self._fd
        try:
            os.fsync(fd)
        except OSError as exc:
            if fd == self._fd:  # else the file was swapped under this thread: nothing lost
                self._fail(exc)

    def _fail(self, exc: OSError) -> NoReturn:
        self._failed = True
        raise LedgerWriteError(f"{self.path}: cannot write the ledger: {exc.strerror}") from exc

    def _follow_file(self) -> None:
        """Recreate a deleted ledger; move aside from one replaced by another file."""
        held = os.fstat(self._fd)
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            self._recreate()
            return
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            self._recover()

    def _recreate(self) -> None:
        path = self.path
        try:
            size = self._move_to(path)
        except FileExistsError:  # another file appeared there meanwhile
            self._recover()
        log.warning(
            "%s was deleted during the run; recreated it from the %s bytes it held",
            path,
            f"{size:,}",
        )

    def _recover(self) -> NoReturn:
        replaced = self.path
        target = replaced.with_name(f"ledger.recovered-{_stamp()}.jsonl")
        self._move_to(target)
        self._write_out()
        raise LedgerWriteError(
            f"{replaced}: replaced by another file during the run; left that file alone; "
            f"every line of this run's ledger is in {target}"
        )

    def _move_to(self, target: Path) -> int:
        """Copy the held file to a new, locked `target` and write there from now on."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            size = _copy(self._fd, fd)
            os.fsync(fd)
            sync_dir(target.parent)
        except OSError:
            os.close(fd)
            raise
        # Swap before closing: an fsync racing in a worker thread then ignores its EBADF.
        old, self._fd, self.path = self._fd, fd, target
        os.close(old)
        return size


def open_and_lock(path: Path) -> int:
    """Open (creating it and its folder) and lock the ledger; InputError says what is wrong."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # exist_ok forgives only a directory
        raise InputError(f"{folder}: the output path is a file, not a directory") from None
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the output directory: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except IsADirectoryError:
        raise InputError(f"{path}: the ledger path is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open the ledger: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a device (/dev/full) or a pipe
        os.close(fd)
        raise InputError(special_problem(path) or f"{path}: not a regular file")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        held = isinstance(exc, BlockingIOError)
        problem = "in use by another harness run" if held else f"cannot lock: {exc.strerror}"
        raise InputError(f"{path}: {problem}") from None
    return fd


def _start_fresh(path: Path, old: int, stamp: str) -> tuple[int, Path | None]:
    """Rename the locked ledger aside (if it holds anything), then create and lock a new one;
    the old lock is held until the new one is taken."""
    if not os.fstat(old).st_size:
        return old, None
    target = path.with_name(f"ledger.{stamp}.jsonl")
    os.rename(path, target)
    try:
        return open_and_lock(path), target
    finally:
        os.close(old)


def _lock_existing(paths: Sequence[Path]) -> list[tuple[Path, int]]:
    """Each of `paths` that holds anything, opened and locked; InputError, with none held,
    when one is in use or cannot be locked."""
    held: list[tuple[Path, int]] = []
    try:
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # gone meanwhile: nothing to set aside
                continue
            held.append((path, fd))
            _lock_to_set_aside(path, fd)
    except BaseException:
        for _, fd in held:
            os.close(fd)
        raise
    kept = []
    for path, fd in held:
        if os.fstat(fd).st_size:
            kept.append((path, fd))
        else:  # empty: nothing to set aside
            os.close(fd)
    return kept


def _lock_to_set_aside(path: Path, fd: int) -> None:
    """Lock a ledger a fresh run sets aside; InputError when it cannot."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        held = isinstance(exc, BlockingIOError)
        problem = "in use by another harness run" if held else f"cannot lock: {exc.strerror}"
        raise InputError(
            f"{path}: {problem}; --fresh sets aside every ledger the run reads, so none was "
            "set aside"
        ) from None


def _rename_aside(path: Path, stamp: str) -> tuple[Path, Path]:
    """Rename a ledger (locked) to `ledger.<stamp>.jsonl` beside it: (where it was, where it is)."""
    target = path.with_name(f"ledger.{stamp}.jsonl")
    os.rename(path, target)
    sync_dir(path.parent)
    return path, target


def _copy(source: int, target: int) -> int:
    """Append the whole of one open file to another; returns the byte count."""
    offset = 0
    while chunk := os.pread(source, 1 << 20, offset):
        view = memoryview(chunk)
        while view:
            view = view[os.write(target, view) :]
        offset += len(chunk)
    return offset


def _stamp() -> str:
    """Now, for a file name: `20261123T175742102Z`."""
    return utc_timestamp().replace(":", "").replace("-", "").replace(".", "")


def set_aside_torn_tail(path: Path, fd: int) -> None:
    """End the file's last line: with its newline when the line is whole (its checksum is right:
    a crash cut only the newline), else by moving it (a crash's unfinished line) to
    `<ledger>.torn`, so that every line is whole."""
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
    if parse_sealed(fragment) is not None:
        os.write(fd, b"\n")  # appended: `fd` is opened with O_APPEND
        return
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
    batches: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0


# What a reader reads: a ledger file, or lines (`harness.ledger.sets.Ledgers`: several ledgers
# read as one).
Source = Path | Iterable[bytes]


def source_lines(source: Source) -> Iterator[bytes]:
    """The lines of a ledger file, or of lines given as they are."""
    if isinstance(source, Path):
        with source.open("rb") as file:
            yield from file
    else:
        yield from source


def iter_lines(source: Source) -> Iterator[dict[str, Any] | None]:
    """Yield each line of the ledger parsed: a run line, a batch line, a result record, or None
    for a line that is torn, not JSON, fails its checksum, or is not shaped like any of them."""
    if isinstance(source, Path):
        with source.open("rb") as file:
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
    if line.startswith(_KEY_HEAD):
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
    latest failure record; and every open batch, with the keys it still owes a record
    (`awaiting`: key -> batch label). `skipped` counts lines that could not be read."""

    answered: dict[str, str | None] = field(default_factory=dict)
    # A key's latest failure: its checksummed line, parsed only when `failures` is asked for
    # (`run` needs none of them; parsing a tenth of a 1M-record ledger cost 0.4 s).
    failed: dict[str, bytes | dict[str, Any]] = field(default_factory=dict)
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
        """Take a line the run holding the ledger appended: a failure becomes the key's latest,
        a success ends its failure (and replaces the prompt hash of a key already answered: a key
        first answered now is not added, so a run's index does not grow with its answers), a
        result releases the key from its open batch, a batch line opens or closes a batch."""
        key = head_key(line)
        if key is None:
            _index_whole_line(self, line, None)
            return
        self.awaiting.pop(key, None)
        if line.startswith(_ERROR, line.find(_STATUS_MARK) + len(_STATUS_MARK)):
            self.answered.pop(key, None)
            self.failed[key] = line
            return
        self.failed.pop(key, None)
        if key in self.answered:
            at = line.find(_STATUS_MARK) + _HASH_AT
            self.answered[key] = line[at : at + 16].decode()

    def is_done(self, key: str, prompt_hash: str) -> bool:
        """True when the key's latest record is a success made from this prompt content."""
        return self.answered.get(key, False) == prompt_hash

    def changed(self, key: str, prompt_hash: str) -> bool:
        """True when the key's latest success was made from other prompt content."""
        return key in self.answered and self.answered[key] != prompt_hash


# Success lines begin `{"key":<json string>,"status":"ok","prompt_hash":"<16 hex>",` (see
# harness.ledger.record). Inside a JSON string every quote is escaped, so the first `,"status":"`
# ends the key.
_KEY_HEAD = b'{"key":'
_STATUS_MARK = b',"status":"'
_OK_HASH = b'ok","prompt_hash":"'
_ERROR = b'error"'
_HASH_AT = len(_STATUS_MARK) + len(_OK_HASH)


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
    awaiting = index.awaiting  # a record for a key of an open batch: that batch delivered it
    hashes: dict[bytes, str] = {}
    for line in lines:
        if line.startswith(_KEY_HEAD):
            mark = line.find(_STATUS_MARK)
            at = mark + _HASH_AT
            if (
                mark > 0
                and line.endswith(b'"}\n')
                and line.startswith(_CRC_MARK, len(line) - _CRC_TAIL)
                and b"%08x" % crc32(line[:-_CRC_TAIL]) == line[-11:-3]
            ):
                try:
                    key = loads(line[7:mark])
                except orjson.JSONDecodeError:
                    key = None  # a checksum that matches a line built by hand
                if not isinstance(key, str):
                    pass
                elif line.startswith(_OK_HASH, mark + 11) and line[at + 16 : at + 18] == b'",':
                    if keeps is None or keeps(key):
                        raw = line[at : at + 16]
                        answered[key] = hashes.get(raw) or hashes.setdefault(raw, raw.decode())
                        if failed:
                            failed.pop(key, None)
                        if awaiting:
                            awaiting.pop(key, None)
                    yield line, True
                    continue
                elif line.startswith(_ERROR, mark + 11):
                    if keeps is None or keeps(key):
                        answered.pop(key, None)
                        failed[key] = line
                        if awaiting:
                            awaiting.pop(key, None)
                    yield line, True
                    continue
                elif keeps is not None and not keeps(key):
                    yield line, line.startswith(b'ok"', mark + 11)
                    continue
        _index_whole_line(index, line, keeps)
        yield line, False


def head_key(line: bytes) -> str | None:
    """The key of a result line read from its head, trusted on its checksum alone (as
    `build_index` trusts it): `{"key":<json string>,"status":"ok"|"error",` then the rest, sealed.
    None for any other line (a run line, one without a checksum, or whose checksum fails): parse
    those whole."""
    if not line.startswith(_KEY_HEAD) or _intact(line) is not True:
        return None
    mark = line.find(_STATUS_MARK)
    if mark < 0 or not line.startswith((b'ok"', _ERROR), mark + len(_STATUS_MARK)):
        return None
    try:
        key = orjson.loads(line[len(_KEY_HEAD) : mark])
    except orjson.JSONDecodeError:
        return None
    return key if isinstance(key, str) else None


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


# Every line the writer appends ends with its checksum: `,"crc":"<8 hex>"}` and a newline, the
# CRC-32 of all the bytes before `,"crc"`. It catches a line corrupted anywhere, not only at its
# end, for about 0.3 s per million records (zlib.crc32 runs at several GB/s).
_CRC_MARK = b',"crc":"'
_CRC_TAIL = len(_CRC_MARK) + 8 + len(b'"}\n')


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
    if line[-_CRC_TAIL : -_CRC_TAIL + 8] != _CRC_MARK or not line.endswith(b'"}\n'):
        return None
    return b"%08x" % zlib.crc32(line[:-_CRC_TAIL]) == line[-11:-3]
