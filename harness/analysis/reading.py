"""What `stats` and `export` start from: where each key's latest record is, and every current
label, read at once on two cores; then the latest records cut into one stretch of the ledger per
worker process (see `harness.analysis.parallel`).

The first pass over the ledger runs in a worker while this process reads the scores file. A
shard tree (`Ledgers`: lines merged from several files) is read in this process alone, as are
ledgers too small for a second process to pay (`PARALLEL_BYTES`).
"""

from __future__ import annotations

from array import array
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.analysis.answers import Source, Stretch, file_size, scanned_positions
from harness.analysis.labels import Labels, read_labels
from harness.analysis.parallel import (
    in_workers,
    may_spread,
    report_read,
    shared,
    split,
    worker_count,
)
from harness.ledger.sets import Advance, Ledgers

PARALLEL_BYTES = 32 << 20  # a smaller ledger is read in one process unless workers are asked for


@dataclass
class Latest:
    """The positions of the latest records (ascending), the ledger's lines skipped (torn,
    damaged, of no known shape), the labels, and how many processes should read the records
    (1: this one)."""

    source: Source
    positions: Sequence[int]
    skipped: int
    labels: Labels
    workers: int
    end: int = 0  # a single file's bytes that the first pass read: no stretch goes past them

    def stretches(self, per_worker: int = 1) -> list[tuple[Sequence[int], int, int]]:
        """The positions cut into `per_worker` runs per worker, each with the bytes of the file
        from its first record up to the next run's (see `Stretch`)."""
        runs = [run for run in split(self.positions, self.workers * per_worker) if len(run)]
        ends = [run[0] for run in runs[1:]] + [self.end]
        return [(run, run[0], end) for run, end in zip(runs, ends, strict=True)]


def read_latest(
    source: Source,
    scores: Path,
    scorers: Collection[str] = (),
    advance: Advance | None = None,
    workers: int | None = None,
) -> Latest:
    """The latest positions of `source` (a ledger file held open, or a shard tree) and the
    labels of `scores` (`scorers` only, when named); `workers`: processes for the records
    (None: one per core when the ledger is big enough)."""
    if (
        isinstance(source, Path | Ledgers | Stretch)  # read in this process
        or not may_spread(workers)
        or (workers is None and file_size(source) < PARALLEL_BYTES)
    ):
        positions, skipped = scanned_positions(source, advance)  # keys go before labels come
        labels = read_labels(scores, scorers, advance)
        return Latest(source, positions, skipped, labels, 1)
    end = file_size(source)
    with in_workers(1, source, advance) as pool:
        positions_read = pool.submit(_scanned_positions, end)
        labels = read_labels(scores, scorers, advance)
        positions, skipped = positions_read()
    workers = worker_count(workers, len(positions))
    return Latest(source, positions, skipped, labels, workers, end)


def _scanned_positions(end: int) -> tuple[array[int], int]:
    """In a worker: the latest positions of the held ledger file's first `end` bytes, and the
    lines skipped."""
    return scanned_positions(Stretch(shared(), 0, end), report_read)
