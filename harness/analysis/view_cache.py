"""Verified snapshots of a view: what `open_view` made of a ledger and its scores file, kept as
a DuckDB file in `OUTPUT/.harness-cache/` and taken again while the files are as they were, so
that `stats`, `report` and `export` on an unchanged run read a snapshot instead of every line.

A snapshot is taken again only when every file it was made of has the same size and the same
64-bit XXH3 digest of each 64 MiB stretch (checked on the cores: 0.2 s for 1.8 GB on 2, against
0.4 s for zlib's CRC-32): a line changed anywhere, even in place, and the view is made afresh. A
file that grew (a run still writing, new scores) is read afresh too. A snapshot is kept only when
the digests taken before the view was made agree with those taken after (nothing changed while
it was read). It holds the view's tables (`latest`, `scores`, `score_lines`, `every_line`) and
what reading left out (`View.skipped`, `View.labels`); it is named after what it was made for
(the files, the fields asked for, the scorers kept), which its manifest says too, written whole
and renamed into place once the verb is done, and the folder keeps the `_KEPT` used last. Delete
the folder at any time; `HARNESS_VIEW_CACHE=0` turns snapshots off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import os
import re
import stat
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import orjson
import xxhash

from harness.ledger.sets import Advance
from harness.whole import discard, remove_stale, temporary_path

FOLDER = ".harness-cache"
_VERSION = 4  # bumped whenever a snapshot holds otherwise what a view is made of
_CHUNK = 64 << 20
_KEPT = 8  # snapshots kept in the folder, those used last
_TABLES = ("latest", "scores", "score_lines", "every_line")
_ODD = -1  # the size of a file that is no regular one (a folder, a FIFO): never snapshotted


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Where the snapshot of a view made of `files` (the ledger's, then the scores file) for
    what `key` says (the files, the fields and scorers asked for, `_VERSION`) is kept, the
    temporary it is written to, the files' sizes before it was made (None: missing), and the
    paths the view reads them by (a ledger held open: its descriptor's)."""

    path: Path
    temporary: Path
    key: str
    files: tuple[Path, ...]
    sizes: tuple[int | None, ...]
    read: tuple[Path, ...]


_NAMED = re.compile(r"[0-9a-f]{20}\.duckdb")  # a snapshot's name: nothing else is pruned


def snapshot_for(
    ledgers: Sequence[Path],
    held: Sequence[Path],
    scores: Path,
    fields: Collection[str],
    scorers: Collection[str],
) -> Snapshot | None:
    """The snapshot of the view of `ledgers` (read by `held`) and `scores` (None when snapshots
    are off); what earlier writers of it killed left is removed."""
    if os.environ.get("HARNESS_VIEW_CACHE", "1") == "0":
        return None
    files = (*(p.resolve() for p in ledgers), scores.resolve())
    key = orjson.dumps([_VERSION, [str(f) for f in files], sorted(fields), sorted(scorers)])
    name = hashlib.sha256(key).hexdigest()[:20] + ".duckdb"
    folder = scores.parent
    with contextlib.suppress(OSError):  # what a verb killed while writing it left
        remove_stale(folder, name)
        for log in folder.glob(f".{glob.escape(name)}.*.snapshot.wal"):
            if not log.with_suffix("").exists():  # its writer is gone
                log.unlink()
    return Snapshot(
        folder / FOLDER / name,
        temporary_path(folder, name, "snapshot"),
        key.decode(),
        files,
        tuple(_size(f) for f in files),
        (*held, scores),
    )


def checksums(snapshot: Snapshot, threads: int) -> list[list[int] | None] | None:
    """The digests of every file as the view reads it, taken before it is made and again after
    (a snapshot is kept only when the two agree); None when a file is no regular one."""
    if _ODD in snapshot.sizes:
        return None
    try:
        return [
            None if size is None else _digests(path, size, threads, None)
            for path, size in zip(snapshot.read, snapshot.sizes, strict=True)
        ]
    except OSError:
        return None


def restore(
    connection: duckdb.DuckDBPyConnection,
    snapshot: Snapshot,
    threads: int,
    advance: Advance | None,
) -> dict[str, Any] | None:
    """Make the view's tables in `connection` views of its snapshot (attached, read-only, until
    the connection closes) when there is one and every file is as it was then; what `save` was
    given to keep with them (None: no snapshot)."""
    try:
        if _ODD in snapshot.sizes or not snapshot.path.is_file():
            return None
        connection.execute(f"ATTACH '{_quoted(snapshot.path)}' AS snapshot (READ_ONLY)")
    except (OSError, duckdb.Error):
        return None
    try:
        kept = _taken(connection, snapshot, threads, advance)
    except (OSError, duckdb.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        kept = None
    if kept is None:
        for table in _TABLES:
            connection.execute(f"DROP VIEW IF EXISTS {table}")
        connection.execute("DETACH snapshot")
    return kept


def _taken(
    connection: duckdb.DuckDBPyConnection,
    snapshot: Snapshot,
    threads: int,
    advance: Advance | None,
) -> dict[str, Any] | None:
    """The views of the snapshot attached as `snapshot`, when every file is as it was then."""
    (manifest,) = connection.execute("SELECT manifest FROM snapshot.manifest").fetchone() or ("",)
    made = orjson.loads(manifest)
    if made["key"] != snapshot.key:  # another view's snapshot under this name
        return None
    files = [(Path(f["path"]), f["size"], f["digests"]) for f in made["files"]]
    if [(p, s) for p, s, _ in files] != list(zip(snapshot.files, snapshot.sizes, strict=True)):
        return None
    for (_, size, digests), path in zip(files, snapshot.read, strict=True):  # as the view reads
        if size is not None and _digests(path, size, threads, advance) != digests:
            return None
    kept = dict(made["kept"])
    for table in made["tables"]:
        connection.execute(f"CREATE VIEW {table} AS SELECT * FROM snapshot.{table}")
    with contextlib.suppress(OSError):  # the folder keeps the snapshots used last
        os.utime(snapshot.path)
    return kept


def save(
    connection: duckdb.DuckDBPyConnection,
    snapshot: Snapshot,
    kept: dict[str, Any],
    before: list[list[int] | None],
    threads: int,
) -> bool:
    """Write the view's tables in `connection`, and `kept` (JSON), as its snapshot, to its
    temporary, which `keep` puts in place once the verb is done; False (no snapshot) when a
    file changed while the view was made (its size, or its digests against `before`), or the
    folder cannot be written."""
    if tuple(_size(f) for f in snapshot.files) != snapshot.sizes:
        return False  # a file grew meanwhile: what was read of it is not known to the byte
    if checksums(snapshot, threads) != before:
        return False  # changed in place, or replaced, while it was read
    files = [
        {"path": str(f), "size": s, "digests": digests}
        for f, s, digests in zip(snapshot.files, snapshot.sizes, before, strict=True)
    ]
    tables = [
        name
        for (name,) in connection.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'memory'"
        ).fetchall()
        if name in _TABLES
    ]
    manifest = {"key": snapshot.key, "files": files, "tables": tables, "kept": kept}
    temporary = snapshot.temporary
    try:
        connection.execute(f"ATTACH '{_quoted(temporary)}' AS snapshot")
        try:
            connection.execute("SET preserve_insertion_order = true")  # `latest` in line order
            for table in tables:
                connection.execute(f"CREATE TABLE snapshot.{table} AS SELECT * FROM {table}")
            connection.execute("CREATE TABLE snapshot.manifest (manifest VARCHAR)")
            connection.execute(
                "INSERT INTO snapshot.manifest VALUES (?)", [orjson.dumps(manifest).decode()]
            )
        finally:
            connection.execute("SET preserve_insertion_order = false")
            connection.execute("DETACH snapshot")
    except (OSError, duckdb.Error):
        forget(snapshot)
        return False
    return True


def keep(snapshot: Snapshot) -> None:
    """Put the snapshot written to its temporary in place, and the folder's oldest away (not
    in a folder that is a link: its files may be anything)."""
    try:
        snapshot.path.parent.mkdir(exist_ok=True)
        if snapshot.path.parent.is_symlink():
            raise OSError("a link")
        os.replace(snapshot.temporary, snapshot.path)
    except OSError:
        forget(snapshot)
        return
    _prune(snapshot.path.parent)


def forget(snapshot: Snapshot) -> None:
    """Remove the snapshot's temporary and DuckDB's log of it, if they are there."""
    discard(snapshot.temporary)
    discard(snapshot.temporary.with_name(snapshot.temporary.name + ".wal"))


def _digests(path: Path, size: int, threads: int, advance: Advance | None) -> list[int]:
    """The XXH3 digest of each `_CHUNK` of the file's first `size` bytes, on `threads` threads
    (xxhash lets go of the GIL), each reading into one buffer of its own (1.4x as fast as a new
    one for each chunk: no fresh pages to fault in)."""
    starts = range(0, size, _CHUNK)
    spread = max(1, min(threads, len(starts)))
    fd = os.open(path, os.O_RDONLY)
    try:

        def some(share: range) -> list[int]:
            buffer = memoryview(bytearray(min(_CHUNK, size)))
            found = []
            for start in share:
                read = os.preadv(fd, [buffer[: min(_CHUNK, size - start)]], start)
                if advance is not None:
                    advance(read)
                found.append(xxhash.xxh3_64_intdigest(buffer[:read]))
            return found

        with ThreadPoolExecutor(spread) as pool:
            shares = pool.map(some, (starts[n::spread] for n in range(spread)))
            found = [0] * len(starts)
            for n, digests in enumerate(shares):
                found[n::spread] = digests
            return found
    finally:
        os.close(fd)


def _size(path: Path) -> int | None:
    """A file's size; None when it is missing, -1 when it is no regular file (never read)."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_size if stat.S_ISREG(found.st_mode) else _ODD


def _prune(folder: Path) -> None:
    """Keep the `_KEPT` newest snapshots."""
    try:
        found = [p for p in folder.iterdir() if _NAMED.fullmatch(p.name)]
        found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in found[_KEPT:]:
            old.unlink(missing_ok=True)
    except OSError:
        return


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
