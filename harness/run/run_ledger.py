"""A run's ledger, read once: the lock, the resume index, the spend already recorded and the
closing summary, from one reading of the bytes there when the run starts and from the lines the
run appends (given to `RunLedger` as its writer queues them), so no reader goes over the file
again.

The ledger is opened and locked first (see `harness.ledger.writer.LedgerWriter`), then read: two
runs can never both decide what is left to do. A run that reads only its own ledger (the common
case) reads it once, each line feeding the index, the spend and the summary. A run that reads
several (a shard tree, a shard and its root's merged ledger: see `Prepared.reads`) builds its
index from them read as one (`harness.ledger.sets`), then reads each file once more for its spend
and, its own, for the summary.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from harness.errors import InputError
from harness.input_files import refuse_special
from harness.ledger.index import ResumeIndex, build_index, index_lines
from harness.ledger.sets import Ledgers
from harness.ledger.writer import LedgerWriter
from harness.run.closing_summary import ClosingSummary, count_spend, result_fields
from harness.run.prepare import Prepared
from harness.run.tally import Summary
from harness.terminal import command_line, say

# Lines read in blocks of 4 MiB: a ledger's lines come twice as fast as through the default 8 kB.
_BUFFER = 1 << 22


class RunLedger:
    """The ledger a run holds (locked) and appends to through `writer`, with what the run
    knows of it: `index` (the resume index, kept up to date with the run's failures and batch
    lines: see `ResumeIndex.take_appended`), `spent` (USD per model name, recorded before the
    run), `prompt_sets` (where the prompts of its earlier runs came from) and `summary()` (once
    the writer is closed)."""

    def __init__(self, prepared: Prepared, writer: LedgerWriter) -> None:
        self.path = prepared.ledger_path
        self.writer = writer
        self.index = ResumeIndex()
        self.spent: dict[str, float] = defaultdict(float)
        self.prompt_sets: set[str] = set()
        self._summary = ClosingSummary()
        self._end = 0  # where the next appended line starts in the file
        writer.observe = self._appended

    @classmethod
    def open(
        cls, prepared: Prepared, *, fresh: bool, console: Console, failures: bool = False
    ) -> RunLedger:
        """Open and lock the ledger, then read it and the ledgers it goes with (see
        `open_index` for what is said, and `failures`). When `fresh`, every ledger the run
        would read is set aside first (see `_fresh_along`), each one said."""
        along = _fresh_along(prepared) if fresh else []
        writer = LedgerWriter(prepared.ledger_path, fresh=fresh, along=along)
        if writer.set_aside:
            console.print(f"Started a new ledger; the old one is now {writer.set_aside}")
        for old, aside in writer.set_aside_along:
            say(console, f"Set aside {old}: it is now {aside}")
        ledger = cls(prepared, writer)
        try:
            _check_path(prepared, console)
            ledger._read(prepared)
            ledger.prompt_sets = ledger._summary.prompt_sets  # before the run's own run line
            _say_skipped(prepared, ledger.index, console, failures=failures)
        except BaseException:
            writer.close(discard_empty=True)
            raise
        return ledger

    def close(self) -> None:
        """Flush, fsync and unlock the ledger (once; closing again does nothing); a ledger the
        run created and appended nothing to (nothing to do) is removed: it holds no line."""
        self.writer.close(discard_empty=True)

    def summary(self) -> Summary:
        """The summary of the whole ledger, the run's lines included (after `close`)."""
        return self._summary.finish(self.path)

    def _read(self, prepared: Prepared) -> None:
        reads = prepared.reads()
        keeps = prepared.holds if prepared.shard else None
        own = prepared.ledger_path
        try:
            if reads == [own]:  # one ledger: one pass feeds the index, spend and summary
                self._read_own(own, keeps)
            elif reads:
                self.index = build_index(Ledgers(tuple(reads)), keeps)
                share = 1.0 if prepared.shard is None else 1 / prepared.shard.count
                for path in reads:
                    # a line merged and still in its shard counts twice: caps err on the safe side
                    weight = share if prepared.shard is not None and path != own else 1.0
                    self._read_spend(path, weight, summarize=path == own)
        except OSError as exc:
            raise InputError(f"{exc.filename}: cannot read the ledger: {exc.strerror}") from None

    def _read_own(self, path: Path, keeps: Callable[[str], bool] | None) -> None:
        """Index the run's own ledger, each line counted in the summary and the spend as it
        passes (a line the index found sealed is not checked again)."""
        with path.open("rb", buffering=_BUFFER) as file:
            self._end = self._summary.read_all(index_lines(self.index, file, keeps))
        self.spent.update(self._summary.paid)  # before the run appends a line

    def _read_spend(self, path: Path, weight: float, *, summarize: bool) -> None:
        """Count a ledger's lines in the spend (times `weight`) and, with `summarize`, in the
        summary."""
        spent, read, place = self.spent, self._summary.read, 0
        with path.open("rb", buffering=_BUFFER) as file:
            for line in file:
                count_spend(spent, read(line, place) if summarize else result_fields(line), weight)
                place += len(line)
        if summarize:
            self._end = place

    def _appended(self, line: bytes) -> None:
        """Take a line the run queued for its ledger."""
        self.index.take_appended(line)
        self._summary.read(line, self._end)
        self._end += len(line)


def _fresh_along(prepared: Prepared) -> list[Path]:
    """The ledgers besides its own that a fresh run sets aside: every one it would read (a
    run's shards'), so that it counts no job done. InputError for a shard's run when its root's
    merged ledger is there: it holds every shard's results, not this run's to set aside."""
    own = prepared.ledger_path.resolve()
    others = [path for path in prepared.reads() if path.resolve() != own]
    if prepared.shard is not None and others:
        raise InputError(
            f"{others[0]}: the merged ledger holds the jobs of every shard, so --fresh with "
            "--shard cannot set it aside; move it aside first, or start the whole output anew "
            "with --fresh without --shard"
        )
    return others


def _check_path(prepared: Prepared, console: Console) -> None:
    """InputError when the ledger path is a directory or a special file; a note for each shard
    folder cut another way (its jobs are not read as done)."""
    path = prepared.ledger_path
    if path.is_dir():
        raise InputError(f"{path}: the ledger path is a directory, not a file")
    refuse_special(path)  # a device could be read forever
    for folder in prepared.other_shards():
        root = str(folder.parent.parent)
        console.print(
            f"{folder}: a shard cut another way; its jobs are not skipped here until merged "
            f"({command_line('merge', root, '--into', root)})",
            markup=False,
        )


def _say_skipped(
    prepared: Prepared, index: ResumeIndex, console: Console, *, failures: bool
) -> None:
    """With `failures`, parse the latest failures first (a rerun reads them), so those of no
    known shape count too; then say how many unreadable lines the index skipped."""
    if failures:
        index.read_failures()
    if index.skipped:
        console.print(f"{_read_source(prepared)}: skipped {index.skipped} unreadable line(s)")


def open_index(prepared: Prepared, console: Console) -> ResumeIndex:
    """The resume index of the ledgers a run reads (see `Prepared.reads`), not locked (`plan`),
    saying how many unreadable lines it skipped; a shard's holds its own jobs only."""
    _check_path(prepared, console)
    try:
        index = build_index(_read_source(prepared), prepared.holds if prepared.shard else None)
    except OSError as exc:
        raise InputError(f"{exc.filename}: cannot read the ledger: {exc.strerror}") from None
    _say_skipped(prepared, index, console, failures=False)
    return index


def _read_source(prepared: Prepared) -> Ledgers | Path:
    reads = prepared.reads()
    return Ledgers(tuple(reads)) if reads else prepared.ledger_path
