"""Progress per variant: a rich live display on a terminal, plain timed lines anywhere else.

Lanes only bump counters (cheap at thousands of records a second); a refresh task draws them a few
times a second on a terminal, or prints a line per changed variant every few seconds otherwise.
Each open provider batch has a line of its own under the bars: its model, id, jobs, state and the
provider's counts, printed (off a terminal) whenever it changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

from harness.api.provider import BatchStatus
from harness.errors import ProviderError
from harness.ledger.record import Record
from harness.run.jobs import Job


@dataclass
class Tally:
    """Counts for one variant in this run, and the span of its own work (clock readings)."""

    total: int
    ok: int = 0
    failed: int = 0
    retries: int = 0
    retrying: int = 0
    started: float | None = None  # when its earliest finished job began
    last: float = 0.0  # when its latest record came
    waiting_until: float = 0.0  # the end of the longest server-given wait ahead of a retry

    @property
    def finished(self) -> int:
        """Jobs that have their record."""
        return self.ok + self.failed


# A server-given wait at least this long is shown, so a lane that looks idle says why.
LONG_WAIT = 10.0


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f}/s" if speed else "-/s", style="cyan")


class _Bars(RichProgress):
    """The bars, with a line per open batch under them."""

    def __init__(self, *columns: ProgressColumn, batches: Mapping[str, str], **kwargs: Any) -> None:
        # Set before rich's __init__: rich 15's Live asks for the renderables while it is made.
        self.batches = batches
        super().__init__(*columns, **kwargs)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        for line in self.batches.values():
            yield Text(line, style="magenta")


def batch_line(model: str, batch_id: str | None, jobs: int, status: BatchStatus) -> str:
    """One open batch as the progress display shows it."""
    counts = ", ".join(f"{name} {n:,}" for name, n in (status.counts or {}).items() if n)
    counts = f" ({counts})" if counts else ""
    return f"batch {batch_id or '(creating)'} of {model}, {jobs:,} jobs: {status.state}{counts}"


class Progress:
    """Counts records and retries per variant and shows them (those with jobs in this run: a
    rerun's variants without a failed job show nothing)."""

    def __init__(
        self,
        totals: Mapping[str, int],
        console: Console | None = None,
        plain_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console or Console()
        self.plain_interval = plain_interval
        self._clock = clock
        self.tallies = {variant: Tally(total) for variant, total in totals.items()}
        # Keys of jobs now between a failed attempt and their record: the "retrying" count.
        self._retrying: set[str] = set()
        self._live = self.console.is_terminal
        self._bars: RichProgress | None = None
        self._task_ids: dict[str, TaskID] = {}
        self._printed: dict[str, tuple[int, int, str]] = {}  # finished, failed, retrying
        self.batches: dict[str, str] = {}  # open batch label -> its line

    def on_record(self, record: Record) -> None:
        """Count one finished job."""
        tally = self.tallies[record.variant]
        tally.last = self._clock()
        began = tally.last - record.elapsed_seconds
        tally.started = began if tally.started is None else min(tally.started, began)
        if record.status == "ok":
            tally.ok += 1
        else:
            tally.failed += 1
        tally.retries += record.retry_count
        if record.retry_count and record.key in self._retrying:
            self._retrying.discard(record.key)
            tally.retrying -= 1

    def on_retry(self, job: Job, error: ProviderError, wait: float) -> None:
        """Count a job that is waiting to try again; note a long wait, so it shows."""
        tally = self.tallies[job.variant.id]
        if job.key not in self._retrying:
            self._retrying.add(job.key)
            tally.retrying += 1
        if wait >= LONG_WAIT:
            tally.waiting_until = max(tally.waiting_until, self._clock() + wait)

    def on_batch(
        self, label: str, model: str, batch_id: str | None, jobs: int, status: BatchStatus | None
    ) -> None:
        """Show a batch's state (None: it closed, and its line goes)."""
        if status is None:
            self.batches.pop(label, None)
            return
        line = batch_line(model, batch_id, jobs, status)
        if self.batches.get(label) != line and not self._live:
            self.console.print(line, highlight=False, soft_wrap=True)
        self.batches[label] = line

    def __enter__(self) -> Progress:
        if self._live:
            self._bars = _Bars(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(),
                TimeRemainingColumn(),
                TextColumn("failed {task.fields[failed]}", style="red", markup=False),
                TextColumn("retrying {task.fields[retrying]}", style="yellow", markup=False),
                console=self.console,
                refresh_per_second=4,
                batches=self.batches,
            )
            for variant, tally in self._shown():
                self._task_ids[variant] = self._bars.add_task(
                    variant, total=tally.total, failed=0, retrying=0
                )
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.draw(final=True)
        if self._bars is not None:
            self._bars.stop()

    async def refresh(self) -> None:
        """Redraw until cancelled: four times a second live, every few seconds as plain lines."""
        while True:
            await anyio.sleep(0.25 if self._live else self.plain_interval)
            self.draw()

    def draw(self, *, final: bool = False) -> None:
        """Push the counts to the live display, or print a line per variant that changed."""
        for variant, tally in self._shown():
            if self._bars is not None:
                self._bars.update(
                    self._task_ids[variant],
                    completed=tally.finished,
                    failed=tally.failed,
                    retrying=self._retrying_text(tally),
                )
                continue
            state = (tally.finished, tally.failed, self._retrying_text(tally))
            if self._printed.get(variant) == state and not final:
                continue
            self._printed[variant] = state
            self.console.print(self._line(variant, tally), highlight=False, soft_wrap=True)

    def _shown(self) -> list[tuple[str, Tally]]:
        return [(variant, tally) for variant, tally in self.tallies.items() if tally.total]

    def _line(self, variant: str, tally: Tally) -> str:
        rate = self._rate(tally)
        remaining = tally.total - tally.finished
        eta = f"{remaining / rate:,.0f}s" if rate and remaining else "-"
        return (
            f"{variant}: {tally.finished}/{tally.total} ok {tally.ok} failed {tally.failed} "
            f"retrying {self._retrying_text(tally)} {rate:,.1f}/s eta {eta}"
        )

    def _retrying_text(self, tally: Tally) -> str:
        """How many jobs wait to retry, and how long the longest server-given wait has left."""
        left = tally.waiting_until - self._clock()
        if left < 1:
            return str(tally.retrying)
        return f"{tally.retrying} (one waits {left:,.0f}s more, as the server asked)"

    def _rate(self, tally: Tally) -> float:
        """Jobs a second over the variant's own time: from its first job's start to its latest
        record once it is finished, to now while it runs."""
        if tally.started is None:
            return 0.0
        end = tally.last if tally.finished >= tally.total else self._clock()
        return tally.finished / max(end - tally.started, 1e-9)


@contextmanager
def reading_bar(console: Console, what: str, total: int) -> Iterator[Callable[[int], None]]:
    """A transient bar over `total` bytes read, on a terminal only (elsewhere reading is
    silent); yields the callable that advances it by the bytes just read."""
    if not console.is_terminal:
        yield lambda count: None
        return
    columns = (
        TextColumn(what, markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with RichProgress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda count: bar.advance(task, count)
