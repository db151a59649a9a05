"""The ledger's writer: one run appends to a ledger at a time, and a crash loses little.

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import anyio

from harness.errors import InputError, LedgerWriteError
from harness.input_files import special_problem
from harness.ledger.lines import parse_sealed, sealed
from harness.ledger.record import utc_timestamp
from harness.whole import sync_dir

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
