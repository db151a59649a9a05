"""A progress bar over the bytes an analysis verb reads (its passes through the ledger and the
scores), drawn on a terminal only; elsewhere reading is silent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from harness.analysis.answers import Advance


@contextmanager
def reading(console: Console, what: str, total: int) -> Iterator[Advance]:
    """A bar for reading `total` bytes in all; yields the callable that advances it."""
    if not console.is_terminal:
        yield _nothing
        return
    columns = (
        TextColumn(what),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda count: bar.advance(task, count)


def _nothing(count: int) -> None:
    return None
