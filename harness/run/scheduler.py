"""The scheduler: every lane at once in one task group, records to the ledger, a clean stop.

Jobs are drawn lazily from one iterator per lane, so nothing is made for a job before a worker is
free for it. Lanes whose provider `holds_device` (local models on one GPU) run one after another,
each closed before the next loads; all other lanes run alongside them.

On the first SIGINT/SIGTERM no new job starts, in-flight attempts get a grace period
to finish and be recorded, then whatever is left is cancelled and records nothing; a second signal
cancels at once. The signal handlers the lanes take over are given back when they end.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from harness.config.run_config import Variant
from harness.ledger.record import Record
from harness.ledger.writer import LedgerWriter
from harness.run.batch_lane import BatchEvents, BatchLane
from harness.run.jobs import Job
from harness.run.lane import Lane, LaneEvents
from harness.run.progress import Progress

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class LaneWork:
    """A lane (live or batch) and the variants whose jobs it runs."""

    lane: Lane | BatchLane
    variants: Sequence[Variant]


# The wanted jobs of some variants, made lazily (see `harness.run.prepare.Prepared.jobs`).
JobsOf = Callable[[Sequence[Variant]], Iterator[Job]]


async def run_lanes(
    work: Sequence[LaneWork],
    *,
    jobs_of: JobsOf,
    writer: LedgerWriter,
    progress: Progress,
    grace_seconds: float,
    sync_seconds: float = 1.0,
) -> bool:
    """Run every wanted job of every lane; True when a signal stopped the run early."""
    stopping = anyio.Event()
    async with anyio.create_task_group() as background:
        background.start_soon(writer.sync_every, sync_seconds)
        background.start_soon(progress.refresh)
        with anyio.CancelScope() as work_scope:
            background.start_soon(_stop_on_signal, stopping, work_scope, grace_seconds)
            async with anyio.create_task_group() as lanes:
                one_device = [item for item in work if _holds_device(item)]
                for item in work:
                    if item not in one_device:
                        lanes.start_soon(item.lane.run, jobs_of(item.variants), stopping)
                if one_device:
                    lanes.start_soon(_one_after_another, one_device, jobs_of, stopping)
        background.cancel_scope.cancel()
    return stopping.is_set()


def _holds_device(item: LaneWork) -> bool:
    return item.lane.provider.holds_device


async def _one_after_another(
    work: Sequence[LaneWork], jobs_of: JobsOf, stopping: anyio.Event
) -> None:
    """Local models share one device: each loads, runs all its jobs and frees it for the next."""
    for item in work:
        if stopping.is_set():
            return
        try:
            await item.lane.run(jobs_of(item.variants), stopping)
        finally:
            with anyio.CancelScope(shield=True):
                await item.lane.provider.aclose()


def lane_events(writer: LedgerWriter, progress: Progress) -> LaneEvents:
    """Send each record to the ledger first, then to the progress counts."""

    def on_record(record: Record) -> None:
        writer.append(record)
        progress.on_record(record)

    return LaneEvents(on_record=on_record, on_retry=progress.on_retry)


def batch_events(writer: LedgerWriter, progress: Progress) -> BatchEvents:
    """Records as a live lane's go; a batch line reaches the disk (fsync'd) before the lane goes
    on, so no batch is created, or waited on, that the ledger does not know of."""

    def on_line(line: dict[str, Any]) -> None:
        writer.append(line)
        writer.sync()

    return BatchEvents(
        on_record=lane_events(writer, progress).on_record,
        on_line=on_line,
        on_state=progress.on_batch,
    )


async def _stop_on_signal(
    stopping: anyio.Event, work_scope: anyio.CancelScope, grace_seconds: float
) -> None:
    # asyncio resets a signal to its default when its receiver closes; put back what was there.
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    try:
        with anyio.open_signal_receiver(*_SIGNALS) as signals:
            async for _ in signals:
                if stopping.is_set():
                    work_scope.cancel()
                    return
                stopping.set()
                work_scope.deadline = anyio.current_time() + grace_seconds
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
