"""Several ledgers read as one: a shard tree, or any ledgers named on the command line.

A verb that reads results takes a ledger file, a run's output directory, or several of either.
A directory stands for its `ledger.jsonl` and every `shards/*/ledger.jsonl` under it (see
`harness.ledger.shards`), so `status results/x` sees a sharded run whole, merged or not.

Read as one, the lines of several ledgers come in timestamp order (a result's `timestamp`, a run
line's `started`, a batch line's `timestamp`), each ledger's own lines in their own order (a line
without a readable time keeps its place after the line before it), ties in the order the ledgers
were named, and an exact duplicate of an earlier line left out. That is the file `harness merge`
writes, so a verb over a shard tree reads exactly what it would read from the merged ledger. The
latest line for a key wins, as in one ledger.

A first pass checks that no ledger's times go back (they do not, unless a run moved to a machine
whose clock is behind); then a duplicate has its original's time, and is found among the lines of
that time as they are merged. Otherwise the first pass finds the duplicates from every line's
fingerprint (Python's 64-bit hash of its bytes, fixed within a process, with its CRC-32 and
length), sorted with numpy: a line is left out only when an earlier line has the same
fingerprint, and two different lines of ten million share one by chance with a probability of
about 10^-16 (the birthday bound over 2^96 values), far below that of a disk error going
unnoticed. One ledger alone is read as it is, in one pass.
"""

from __future__ import annotations

import heapq
import zlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import numpy as np

from harness.errors import InputError
from harness.input_files import refuse_special
from harness.ledger.lines import LEDGER_NAME, READ_BUFFER, parse_line, parse_sealed
from harness.ledger.shards import SHARDS_DIR, shard_name_order

Advance = Callable[[int], None]  # called with the bytes read since its last call

_RUN_HEAD, _BATCH_HEAD, _RECORD_HEAD = b'{"type":"run"', b'{"type":"batch"', b'{"key":'
_HEADS = (_RUN_HEAD, _BATCH_HEAD, _RECORD_HEAD)
_STAMP, _STARTED = b',"timestamp":"', b',"started":"'
_STAMP_LENGTH = len(b"2025-11-12T10:01:23.412Z")
_REPORT_EVERY = 1 << 22  # bytes between two calls of `advance`


@dataclass(frozen=True)
class Ledgers:
    """Ledger files read as one (see the module docstring); iterating yields their lines.

    `label` names them in messages: the arguments as given, else a count. `sizes` are the files'
    sizes when they were named: every reading stops there, so two passes read the same lines
    while runs go on appending (a line cut there is an unfinished one)."""

    paths: tuple[Path, ...]
    label: str = ""
    sizes: tuple[int, ...] | None = None

    def __str__(self) -> str:
        if self.label:
            return self.label
        return str(self.paths[0]) if len(self.paths) == 1 else f"{len(self.paths)} ledgers"

    def __iter__(self) -> Iterator[bytes]:
        return self.lines()

    def lines(self, advance: Advance | None = None) -> Iterator[bytes]:
        """Every line, in the order of the module docstring; `advance` is given the bytes read."""
        paths, sizes = self.paths, self.sizes
        if len(paths) == 1:
            return _plain(paths[0], advance, sizes[0] if sizes else None)
        found = None if in_order(paths, advance, sizes) else repeats(paths, advance, sizes)
        return (line for _, line in merged(paths, found, advance, limits=sizes))

    def stamped(
        self, number: int, advance: Advance | None = None
    ) -> Iterator[tuple[bytes, int, bytes]]:
        """The non-blank lines of the ledger at `number` alone, each with its time and place as
        reading them all as one gives them (see `merged`: one after another, its own lines never
        going back in time, ties in the order the ledgers were named, give that reading's order);
        OutOfOrder when its times go back."""
        limit = self.sizes[number] if self.sizes else None
        lines = _plain(self.paths[number], advance, limit)
        return _stamped(number, lines, None, True, [0] * len(self.paths))

    @property
    def size(self) -> int:
        """The files' bytes (as far as every reading reads them)."""
        return sum(self.sizes or (path.stat().st_size for path in self.paths))


def tree(output: Path) -> list[Path]:
    """The ledgers of a run's output directory: its own, then each shard's (2-of-8 before
    10-of-16: by N, then K). InputError when one is a FIFO, a device or a link to nothing, or
    the folder cannot be read."""
    try:
        shards = sorted((output / SHARDS_DIR).glob("*"), key=shard_name_order)
        found = [output / LEDGER_NAME, *(folder / LEDGER_NAME for folder in shards)]
        for path in found:
            refuse_special(path)  # a FIFO is no missing ledger: say what it is
        return [path for path in found if path.is_file()]
    except OSError as exc:
        raise InputError(f"{exc.filename or output}: cannot read: {exc.strerror or exc}") from None


def ledgers_of(arguments: Sequence[str | Path]) -> Ledgers:
    """The ledgers that command-line arguments name: a file is itself, a directory is its tree.
    InputError when an argument names no ledger; a file named twice is read once."""
    paths: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        refuse_special(path)
        if path.is_dir():
            found = tree(path)
            if not found:  # neither its own ledger nor a shard's
                raise InputError(f"{path / LEDGER_NAME}: no such ledger")
        elif path.is_file():
            found = [path]
        else:
            raise InputError(f"{path}: no such ledger")
        paths += found
    label = " ".join(str(a) for a in arguments) if len(arguments) <= 3 else ""
    unique = _unique(paths)
    return Ledgers(tuple(unique), label, tuple(path.stat().st_size for path in unique))


def _unique(paths: list[Path]) -> list[Path]:
    """Each file once, however it was reached (a symlink, `a/../a`)."""
    seen: set[tuple[int, int]] = set()
    unique = []
    for path in paths:
        stat = path.stat()
        if (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            unique.append(path)
    return unique


class OutOfOrder(Exception):
    """A ledger's times went back (its run moved to a machine whose clock is behind): duplicates
    cannot be found within equal times; read it again with `repeats`."""


# Where each file's reading stops (None: at its end), as `Ledgers.sizes`.
Limits = Sequence[int | None] | None


def in_order(paths: Sequence[Path], advance: Advance | None = None, limits: Limits = None) -> bool:
    """Whether every ledger's line times never go back (the first pass before reading several)."""
    for number, path in enumerate(paths):
        stamp = b""
        for line in _plain(path, advance, limits[number] if limits else None):
            now = line_time(line) if not blank(line) else None
            if now is not None:
                if now < stamp:
                    return False
                stamp = now
    return True


def repeats(
    paths: Sequence[Path], advance: Advance | None = None, limits: Limits = None
) -> list[np.ndarray]:
    """Per ledger, the numbers of its non-blank lines that repeat an earlier line (of any of the
    ledgers) exactly, ascending: found from every line's fingerprint (see the module docstring),
    for ledgers whose times go back."""
    first, second = array("q"), array("q")
    counts = []
    for number, path in enumerate(paths):
        count = 0
        for line in _plain(path, advance, limits[number] if limits else None):
            if not blank(line):
                first.append(hash(line))
                second.append(zlib.crc32(line) | len(line) << 32)
                count += 1
        counts.append(count)
    repeated = _repeats(np.frombuffer(first, np.int64), np.frombuffer(second, np.int64))
    edges = np.cumsum([0, *counts])
    cuts = np.searchsorted(repeated, edges)
    return [repeated[cuts[i] : cuts[i + 1]] - edges[i] for i in range(len(counts))]


def _repeats(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The places whose fingerprint an earlier place has, ascending (a stable sort keeps equal
    fingerprints in place order, so each group's first is the one kept)."""
    if first.size < 2:
        return np.zeros(0, np.int64)
    order = np.lexsort((second, first))
    a, b = first[order], second[order]
    same = (a[1:] == a[:-1]) & (b[1:] == b[:-1])
    return np.sort(order[1:][same])


LEDGER_PLACE = 1 << 40  # a place is its ledger's number times this, plus its line's number


def merged(
    paths: Sequence[Path],
    repeated: Sequence[np.ndarray] | None = None,
    advance: Advance | None = None,
    *,
    strict: bool = False,
    counts: list[int] | None = None,
    limits: Limits = None,
) -> Iterator[tuple[int, bytes]]:
    """Every line of `paths` in timestamp order (see the module docstring), each with its place
    (its ledger's number times LEDGER_PLACE plus its number there), exact duplicates once.
    Without `repeated` (from `repeats`), every ledger's times must never go back: a duplicate then
    has the time of its original, and is found among the lines of that time; with `strict`,
    OutOfOrder is raised at the first time that goes back (else such a ledger's duplicates may be
    read twice). `counts`, when given, gets each ledger's count of non-blank lines read,
    duplicates included; `limits` say where each file's reading stops."""
    counts = counts if counts is not None else [0] * len(paths)
    streams = [
        _stamped(
            number,
            _plain(path, advance, limits[number] if limits else None),
            None if repeated is None else repeated[number],
            strict,
            counts,
        )
        for number, path in enumerate(paths)
    ]
    if repeated is not None:
        for _, place, line in heapq.merge(*streams, key=itemgetter(0)):
            yield place, line
        return
    stamp: bytes = b""
    seen: set[bytes] = set()  # the lines of the time `stamp`
    for now, place, line in heapq.merge(*streams, key=itemgetter(0)):
        if now != stamp:
            stamp = now
            seen.clear()
        elif line in seen:
            continue
        seen.add(line)
        yield place, line


def _stamped(
    number: int,
    lines: Iterator[bytes],
    repeated: np.ndarray | None,
    strict: bool,
    counts: list[int],
) -> Iterator[tuple[bytes, int, bytes]]:
    """A ledger's non-blank lines (less its `repeated` ones), each with its time and place,
    counted in `counts`; with `strict`, OutOfOrder when a time goes back."""
    skip = iter(repeated.tolist() if repeated is not None else ())
    next_skip = next(skip, -1)
    stamp = b""
    count = 0
    base = number * LEDGER_PLACE
    for line in lines:
        if blank(line):
            continue
        if count == next_skip:
            next_skip = next(skip, -1)
        else:
            now = line_time(line)
            if now is not None:
                if now < stamp and strict:
                    raise OutOfOrder(number)
                stamp = now
            yield stamp, base + count, line
        count += 1
        counts[number] = count


def success_key(line: bytes) -> bytes | None:
    """The JSON-encoded key of a line whose head says it is a success, else None (unchecked:
    the line may be damaged)."""
    mark = line.find(b',"status":"', len(_RECORD_HEAD))
    if mark < 0 or not line.startswith(b'ok"', mark + 11):
        return None
    return line[len(_RECORD_HEAD) : mark]


def is_ledger_line(line: bytes) -> bool:
    """Whether a line is one a ledger holds (a record, run or batch line), by its head or else
    parsed."""
    return line.startswith(_HEADS) or parse_line(line) is not None


def blank(line: bytes) -> bool:
    """Whether a line holds nothing but white space (a ledger line starts with its brace, so
    this is one comparison for nearly every line)."""
    return line[:1] != b"{" and not line.strip()


def line_time(line: bytes) -> bytes | None:
    """When a line was written, as its ISO-8601 text: read from its head for the lines the
    harness writes, else from the parsed line; None when it has none."""
    if line.startswith((_RECORD_HEAD, _BATCH_HEAD)):
        at = line.find(_STAMP)
        at = at + len(_STAMP) if at > 0 else -1
    elif line.startswith(_RUN_HEAD):
        at = line.find(_STARTED)
        at = at + len(_STARTED) if at > 0 else -1
    else:
        at = -1
    if at > 0 and line[at + _STAMP_LENGTH - 1 : at + _STAMP_LENGTH] == b"Z":
        return line[at : at + _STAMP_LENGTH]
    obj = parse_sealed(line)
    stamp = obj.get("timestamp", obj.get("started")) if obj is not None else None
    return stamp.encode() if isinstance(stamp, str) else None


def _plain(path: Path, advance: Advance | None, limit: int | None = None) -> Iterator[bytes]:
    """A file's lines up to `limit` bytes (a line cut there ends without its newline), reporting
    the bytes read to `advance` every few MiB."""
    read = unreported = 0
    with path.open("rb", buffering=READ_BUFFER) as file:
        if limit is None and advance is None:
            yield from file
            return
        for line in file:
            if limit is not None and read + len(line) > limit:
                line = line[: limit - read]
                if not line:
                    break
            read += len(line)
            if advance is not None:
                unreported += len(line)
                if unreported >= _REPORT_EVERY:
                    advance(unreported)
                    unreported = 0
            yield line
            if limit is not None and read >= limit:
                break
    if advance is not None and unreported:
        advance(unreported)
