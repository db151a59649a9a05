"""Executing a prepared run: pick the jobs, run the lanes, append to the ledger, summarize.

`run_pending` is the entrance of `run` (and of a judge's run): every job the ledger does not hold
done; `execute` runs the jobs a `wanted` picks (a rerun's failed ones).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.api.provider import BatchProvider, Provider
from harness.config.prices import answer_price
from harness.config.run_config import RetryPolicy
from harness.errors import (
    EXIT_BUDGET,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    InputError,
    LedgerWriteError,
)
from harness.ledger.index import OpenBatch, ResumeIndex
from harness.ledger.writer import LedgerWriter
from harness.prompts.load import Prompt
from harness.run.batch_lane import BatchLane, Reattach, reattachable
from harness.run.caps import Caps, caps_of
from harness.run.jobs import Wanted
from harness.run.lane import Lane, LaneEvents
from harness.run.limits import LaneLimits
from harness.run.prepare import ModelSetup, Prepared
from harness.run.progress import Progress
from harness.run.provenance import new_run_id, run_line
from harness.run.run_ledger import RunLedger
from harness.run.scheduler import LaneWork, batch_events, lane_events, run_lanes
from harness.run.summary import summary_table
from harness.terminal import command_line


async def execute(
    prepared: Prepared,
    *,
    command: str,
    wanted: Wanted,
    console: Console,
    ledger: RunLedger | None = None,
    argv: Sequence[str] = (),
    left: Left | None = None,
) -> int:
    """Run the wanted jobs, append to the ledger, print the summary; return the exit code.

    `ledger` is the run's ledger, opened (and locked) and read (opened here when not given); it
    is closed here, and holds what the run appended (its `index`, for what to say next). `left`
    is what `left_to_do` found `wanted` wants, when the caller has it (found here if not). Keys
    that an open batch of the ledger still owes are never sent again: the batch is collected
    instead (see `harness.run.batch_lane`). A ledger that cannot be written at once raises
    InputError; one that fails mid-run stops the run and raises LedgerWriteError, counting what
    it lost.
    """
    config = prepared.config
    run_id = new_run_id()
    ledger = ledger or RunLedger.open(prepared, fresh=False, console=console)
    writer, index = ledger.writer, ledger.index
    earlier = reattachable(
        index, prepared.variants, prepared.prompts, config.samples, holds=prepared.holds
    )
    if index.awaiting:
        wanted, left = _not_owed(wanted, index.awaiting), None
    if left is None:
        left = left_to_do(prepared, wanted)
    prompts = left.prompts
    line = run_line(
        run_id,
        command,
        config,
        prepared.prompts,
        prepared.variants,
        prepared.totals(),
        argv,
        selection=prepared.selection.as_record(config.seed),
        shard=_shard_record(prepared),
    )
    _write_run_line(writer, line)
    caps = caps_of(prepared, ledger.spent)
    batch_lanes: list[BatchLane] = []
    try:
        todo = dict(left.counts)
        for variant, owed in earlier.jobs_per_variant().items():
            todo[variant] += owed
        progress = Progress(todo, console)
        events = lane_events(writer, progress)
        async with AsyncExitStack() as stack:
            work = []
            for setup in prepared.models:
                provider = setup.provider()
                stack.push_async_callback(provider.aclose)
                reattach = earlier.by_model.get(setup.model.name, [])
                if setup.model.mode == "batch" or reattach:
                    # the model's batches are priced at batch rates, even when it now runs live
                    model = dataclasses.replace(setup.model, mode="batch")
                    price = answer_price(model)
                    batch_lane = BatchLane(
                        setup.model.name,
                        _batch_provider(prepared, setup, provider, reattach),
                        policy=setup.model.batch_policy,
                        retry=config.retry,
                        run_id=run_id,
                        events=batch_events(writer, progress),
                        price=price,
                        budgets=caps.of(model, price),
                        reattach=reattach,
                        known_ids=frozenset(index.batch_ids),
                    )
                    batch_lanes.append(batch_lane)
                    batch_variants = setup.variants if setup.model.mode == "batch" else ()
                    work.append(LaneWork(batch_lane, batch_variants))
                if setup.model.mode == "live":
                    lane = _live_lane(setup, provider, config.retry, run_id, events, caps)
                    work.append(LaneWork(lane, setup.variants))
            with progress:
                interrupted = await run_lanes(
                    work,
                    jobs_of=lambda variants: prepared.jobs(
                        wanted, variants, prompts, index.failed_before
                    ),
                    writer=writer,
                    progress=progress,
                    grace_seconds=config.grace_seconds,
                )
        writer.sync()
    except* LedgerWriteError as group:
        raise _ledger_failure(group, writer.unwritten) from None
    finally:
        writer.close()
    summary = ledger.summary()
    console.print(summary_table(summary, f"{prepared.ledger_path} ({run_id})"))
    still_open = [
        batch_id or label for lane in batch_lanes for label, batch_id in lane.open.items()
    ]
    if still_open or earlier.left:
        console.print(_open_batches_note(still_open, earlier.left, prepared.config.output, command))
    if interrupted:
        console.print("Interrupted: run the same command again to continue.")
        return EXIT_INTERRUPTED
    if caps.stopped():
        console.print(caps.report())
        return EXIT_BUDGET
    failed = sum(t.failed for t in progress.tallies.values())
    return EXIT_FAILED if failed or still_open else EXIT_OK


def _batch_provider(
    prepared: Prepared, setup: ModelSetup, provider: Provider, reattach: Sequence[Reattach]
) -> BatchProvider:
    """The provider of a model with batches to send or collect. A batch-mode model's has a batch
    API (`prepare` checks it); a live model's may not, when the ledger holds an open batch of it
    that owes no record (all came, but not the line that closes it) from another provider."""
    if isinstance(provider, BatchProvider):
        return provider
    sent = reattach[0].batch
    raise InputError(
        f"{prepared.config.path}: model {setup.model.name}: the ledger's open batch {sent.label} "
        f'was sent through provider "{sent.provider}", and "{setup.model.provider}" has no batch '
        f'API to close it: set provider = "{sent.provider}" for one run'
    )


def _live_lane(
    setup: ModelSetup,
    provider: Any,
    retry: RetryPolicy,
    run_id: str,
    events: LaneEvents,
    caps: Caps,
) -> Lane:
    """The live lane of a model: its buckets, concurrency, retries and budgets."""
    model, price = setup.model, answer_price(setup.model)
    return Lane(
        model.name,
        provider,
        limits=LaneLimits(model.requests_per_minute, model.tokens_per_minute),
        concurrency=model.max_concurrency,
        retry=retry,
        run_id=run_id,
        events=events,
        price=price,
        budgets=caps.of(model, price),
    )


def _shard_record(prepared: Prepared) -> dict[str, Any] | None:
    """What the run line says of the run's shard: which one, and every shard's jobs together."""
    if prepared.shard is None:
        return None
    return {**prepared.shard.as_record(), "plan_unsharded": prepared.totals_unsharded()}


def _not_owed(wanted: Wanted, awaiting: Mapping[str, str]) -> Wanted:
    """`wanted`, less the keys an open batch still owes a record (they are never sent twice)."""
    return lambda key, prompt_hash: key not in awaiting and wanted(key, prompt_hash)


def _open_batches_note(
    still_open: Sequence[str], left: Sequence[OpenBatch], output: Path, command: str
) -> str:
    """What the run (`command`: run, rerun) leaves open at the provider, and what to do."""
    lines = []
    if still_open:
        # their jobs have no failure for a rerun to find: a run collects them
        again = (
            "run the same command again to collect their results"
            if command == "run"
            else "`run` with the same config and options collects their results"
        )
        lines.append(
            f"{len(still_open):,} batch(es) still open at the provider, left running there "
            f"({', '.join(still_open)}): {again}."
        )
    if left:
        names = ", ".join(
            f"{b.batch_id or b.label} ({b.model}, {len(b.keys):,} jobs)" for b in left
        )
        lines.append(
            f"{len(left):,} open batch(es) hold jobs this run leaves out (--models, --limit, "
            f"--prompts, samples): {names}. Their jobs are not sent again; run with the options "
            "that sent them to collect them."
        )
    lines.append(f"See them with: {command_line('status', str(output))}")
    lines.append(f"Cancel them with: {command_line('batches', 'cancel', str(output))}")
    return "\n".join(lines)


async def run_pending(
    prepared: Prepared,
    *,
    command: str,
    console: Console,
    argv: Sequence[str] = (),
    ledger: RunLedger | None = None,
    left: Left | None = None,
) -> int | None:
    """Run every job of `prepared` its ledger does not hold done (resuming it), as `run` does;
    the exit code, or None when nothing was left to do (and nothing was appended). `ledger` is
    the run's ledger when the caller opened it (to read it afterwards); it is closed here.
    `left` is what `left_to_do` found `pending` wants, when the caller has it."""
    ledger = ledger or RunLedger.open(prepared, fresh=False, console=console)
    wanted = pending(ledger.index)
    if left is None:
        left = left_to_do(prepared, wanted)
    if left.nothing() and not batches_to_collect(prepared, ledger.index):
        ledger.close()
        return None
    return await execute(
        prepared,
        command=command,
        wanted=wanted,
        console=console,
        ledger=ledger,
        argv=argv,
        left=left,
    )


def batches_to_collect(prepared: Prepared, index: ResumeIndex) -> bool:
    """Whether the ledger holds open batches this run can collect."""
    if not index.batches:
        return False
    config = prepared.config
    return bool(reattachable(index, prepared.variants, prepared.prompts, config.samples).by_model)


def _write_run_line(writer: LedgerWriter, line: dict[str, Any]) -> None:
    """Write the run line at once; a failure is an InputError, as nothing has run yet."""
    writer.append(line)
    try:
        writer.flush()
    except LedgerWriteError as exc:
        writer.close()
        raise InputError(str(exc)) from None


def _ledger_failure(group: BaseExceptionGroup, unwritten: int) -> LedgerWriteError:
    """The one-line error for a ledger that failed mid-run, out of the task group's wrapping."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    lost = f"; {unwritten:,} finished record(s) not written, to run again on resume"
    return LedgerWriteError(f"{error}; stopped the run{lost if unwritten else ''}")


@dataclasses.dataclass(frozen=True)
class Left:
    """What a run has left to do, found in one pass over its plan's keys (no job made): the
    wanted jobs per variant, the prompts that have one, in plan order (the lanes read no other),
    and how many of them were answered from other prompt content than they have now."""

    counts: dict[str, int]
    prompts: list[Prompt]
    changed: int = 0

    def nothing(self) -> bool:
        """True when no job of the plan is wanted (for `run`: every one is done)."""
        return not any(self.counts.values())


def left_to_do(prepared: Prepared, wanted: Wanted, answered: Container[str] = ()) -> Left:
    """What `wanted` wants of the plan; a wanted job whose key `answered` holds (a resume
    index's: an answer of other prompt content, see `pending`) counts as changed."""
    counts = dict.fromkeys((v.id for v in prepared.variants), 0)
    prompts: list[Prompt] = []
    changed = 0
    for prompt, variant, _, key in prepared.keys(wanted):
        counts[variant.id] += 1
        changed += key in answered
        if not prompts or prompts[-1] is not prompt:
            prompts.append(prompt)
    return Left(counts, prompts, changed)


def pending(index: ResumeIndex) -> Wanted:
    """For `run`: every job not yet done from its prompt's current content."""
    answered = index.answered.get  # `not index.is_done(...)`, without a call per job
    return lambda key, prompt_hash: answered(key, False) != prompt_hash
