"""Files written whole: to a temporary file beside the target, fsync'd, then renamed over it.

A reader sees the old file or the new one, never half of one; an error or an interrupt on the way
removes the temporary file and leaves the target as it was.

A temporary (file or folder) is named after its writer: `.<name>.<host>-<pid>-<start>.<hex>.
<kind>` (kind: tmp, parts, figures), where `start` is when the process started (clock ticks
after boot, from `/proc/<pid>/stat`; 0 where there is no /proc), so a later process given the
same pid is not taken for the writer. A writer killed outright (SIGKILL, out of memory) removes
nothing; the next run of the same verb removes what it left (`remove_stale`), never what a live
writer is writing, nor what another host's writer made on a shared file system.

Versions before these names named a temporary `.<name>.<hex>.tmp` (an export's parts folder
`.export-parts-<host>-<pid>-<random>`), which says nothing of its writer: such a one is removed once
it has not changed for `LEGACY_AGE` seconds (a live writer changes its temporary all along).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import InputError

_PROC = Path("/proc")
LEGACY_AGE = 3600.0


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes `path` (its folder is made when
    missing). InputError when `path` cannot be written; the stale temporaries of `path` that
    killed writers left are removed first."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory; name a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path.parent}: cannot create the folder: {exc.strerror}") from None
    remove_stale(path.parent, path.name)
    temporary = temporary_path(path.parent, path.name)
    try:
        yield temporary
        with temporary.open("rb") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
        sync_dir(path.parent)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        discard(temporary)


def discard(temporary: Path) -> None:
    """Remove a temporary file or folder if it is there; one that cannot be removed (a folder
    that became read-only) is left for `remove_stale`, never an error that hides the first."""
    with contextlib.suppress(OSError):
        if temporary.is_dir():
            shutil.rmtree(temporary)
        else:
            temporary.unlink(missing_ok=True)


def temporary_path(folder: Path, name: str, kind: str = "tmp") -> Path:
    """A new temporary's path in `folder`, for the file `name` (or a verb's own `name`), named
    after this process (see the module docstring); `kind` ends the name."""
    return folder / f".{name}.{_writer()}.{secrets.token_hex(4)}.{kind}"


def remove_stale(folder: Path, name: str) -> None:
    """Remove the temporaries of `name` in `folder` whose writers, on this host, are gone."""
    mine = re.compile(re.escape(f".{name}.{_host()}-") + r"(\d+)-(\d+)\.[0-9a-f]{8}\.[a-z]+")
    legacy = re.compile(
        re.escape(f".{name}.")
        + r"[0-9a-f]{8}\.tmp|"
        + re.escape(f".{name}-{socket.gethostname()}-")
        + r"\d+-\w{8}"
    )
    try:
        found = list(folder.iterdir())
    except OSError:  # no folder, or one that cannot be listed: nothing to remove
        return
    for path in found:
        match = mine.fullmatch(path.name)
        gone = match is not None and not _running(int(match[1]), int(match[2]))
        if gone or (legacy.fullmatch(path.name) and _unchanged_for(path, LEGACY_AGE)):
            discard(path)


def _unchanged_for(path: Path, seconds: float) -> bool:
    """Whether nothing in `path` (a file, or a folder's files) changed for `seconds`."""
    try:
        files = [path, *path.rglob("*")] if path.is_dir() else [path]
        newest = max(file.stat().st_mtime for file in files)
    except OSError:
        return False
    return time.time() - newest >= seconds


def _writer() -> str:
    """This process: its host, pid and start time."""
    pid = os.getpid()
    return f"{_host()}-{pid}-{_started(pid) or 0}"


def _host() -> str:
    """This host's name, with what a file name should not hold replaced."""
    return re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname()) or "host"


def _started(pid: int) -> int | None:
    """When process `pid` started, in clock ticks after boot; None when there is no such process,
    0 where /proc cannot say."""
    try:
        stat = (_PROC / str(pid) / "stat").read_bytes()
    except FileNotFoundError:
        return None if _PROC.joinpath("self").exists() else _pid_started(pid)
    except OSError:
        return 0
    return int(stat.rsplit(b")", 1)[1].split()[19])  # field 22, counted after the name


def _pid_started(pid: int) -> int | None:
    """Without /proc: 0 while a process `pid` exists (its start time unknown), else None."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # another user's
        return 0
    return 0


def _running(pid: int, started: int) -> bool:
    """Whether the process that named a temporary `pid` and `started` still runs."""
    now = _started(pid)
    return now is not None and (started == 0 or now in (0, started))


def sync_dir(folder: Path) -> None:
    """fsync a directory, so a file created or renamed in it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: a filesystem that cannot sync a directory
            raise
    finally:
        os.close(fd)
