"""Batch lanes: a model's jobs through its provider's batch API, crash-safe and resumable.

A model with `mode = "batch"` gets a `BatchLane` in place of a live `Lane`. The lane draws its jobs
in order and packs them into batches up to the provider's limits (`BatchLimits`) or the lower ones
of `[models.batch]`. For each batch:

1. a `submit` line (a fresh label, the model, the provider, every key and the prompt hash it is
   sent with) is appended to the ledger and fsync'd, before anything is sent;
2. the batch is created, retried like a live attempt on a retryable error; before a retry after an
   error that leaves unknown whether the provider created it (a timeout, a cut connection, a 5xx)
   the provider is asked for it by its label first, so it is never paid for twice;
3. a `submitted` line gives the provider's id for it, fsync'd;
4. it is polled, first `poll_interval` seconds after and then 1.5 times longer each time, up to
   `max_poll_interval`; the progress display shows its state and counts;
5. once it ended, its results become one record per job (a request's error classified as a live
   one's; a job it holds no result for gets the batch's reason: cancelled, expired, failed), and a
   `closed` line follows.

A run re-attaches to every batch its ledger leaves open (`ResumeIndex.batches`) and never sends its
keys again: it polls one with an id; one whose creation was never confirmed (the run died between
steps 1 and 3) is looked up by label (Anthropic keeps none: by time and size), followed when found
and created now, under the same label, when not. A batch whose jobs this run does not have (another
`--models`, `--limit` or prompts file) stays open for the run that has them. Ctrl-C stops
submitting and polling at once and leaves every open batch running at the provider.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import anyio
import orjson

from harness.api.provider import BatchProvider, BatchStatus
from harness.api.types import Completion, Request
from harness.config.models import BatchPolicy
from harness.config.prices import Price, cost_usd
from harness.config.run_config import RetryPolicy, Variant
from harness.errors import (
    AttemptTimeout,
    ConnectionFailed,
    FatalError,
    ProviderError,
    RetryableError,
    ServerError,
)
from harness.ledger.index import OpenBatch, ResumeIndex
from harness.ledger.record import Record, utc_timestamp
from harness.prompts.load import Prompt
from harness.run.budget import Budgets
from harness.run.jobs import Job
from harness.run.lane import backoff
from harness.run.records import failure_record, success_record

log = logging.getLogger("harness.batch")

# Room left in a batch's byte limit for what wraps its requests (the JSON around the list).
_ENVELOPE = 4096
_POLL_GROWTH = 1.5
_YIELD_EVERY = 512  # requests packed between two turns of the event loop
# Errors after which a batch may exist though its creation failed: ask before creating it again.
_UNKNOWN_OUTCOME = (AttemptTimeout, ConnectionFailed, ServerError)


@dataclass(frozen=True)
class BatchEvents:
    """What a batch lane reports: a record finished; a batch line to append and fsync before
    going on; a batch's state changed (None: closed), with its model, provider id and jobs."""

    on_record: Callable[[Record], None]
    on_line: Callable[[dict[str, Any]], None]
    on_state: Callable[[str, str, str | None, int, BatchStatus | None], None]


@dataclass
class _Batch:
    """One batch as this run knows it: the jobs it still owes a record by custom id, each one's
    budget reservation (none for a batch an earlier run sent), its requests until created, and
    where it stands."""

    label: str
    jobs: dict[str, Job] = field(default_factory=dict)
    reserved: dict[str, float] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0  # requests packed into it (custom ids 0 .. size - 1)
    batch_id: str | None = None
    sent: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class Reattach:
    """An open batch of the ledger, and the jobs it still owes a record, by custom id."""

    batch: OpenBatch
    jobs: dict[str, Job]


def custom_id(label: str, place: int) -> str:
    """A request's id inside its batch: the batch's label and its place (Anthropic takes
    `[a-zA-Z0-9_-]{1,64}`)."""
    return f"{label}-{place}"


@dataclass
class Reattachable:
    """The ledger's open batches as this run finds them: those it can collect, by model name,
    and those whose jobs it does not have (left open, their keys never sent again)."""

    by_model: dict[str, list[Reattach]] = field(default_factory=dict)
    left: list[OpenBatch] = field(default_factory=list)

    def jobs_per_variant(self) -> dict[str, int]:
        """How many records the batches to collect owe, per variant."""
        counts: dict[str, int] = {}
        for batches in self.by_model.values():
            for batch in batches:
                for job in batch.jobs.values():
                    counts[job.variant.id] = counts.get(job.variant.id, 0) + 1
        return counts


def reattachable(
    index: ResumeIndex,
    variants: Sequence[Variant],
    prompts: Sequence[Prompt],
    samples: int,
    holds: Callable[[str], bool] | None = None,
) -> Reattachable:
    """Sort the index's open batches into those this run's variants and prompts (and shard:
    `holds`) can collect and those they cannot; a batch of another shard's jobs alone is none of
    this run's business, and left out of both."""
    found = Reattachable()
    if not index.batches:  # the usual ledger: no prompt looked up
        return found
    by_id = {variant.id: variant for variant in variants}
    by_prompt = {prompt.id: prompt for prompt in prompts}
    for batch in index.batches.values():
        owed = index.owed(batch)
        ours = len(owed) if holds is None else sum(holds(batch.keys[p]) for p in owed)
        if not ours and owed:
            continue
        jobs = (
            _owed_jobs(batch, owed, by_id, by_prompt, samples, index.failed_before)
            if ours == len(owed)
            else None
        )
        if jobs is None:
            found.left.append(batch)
        else:
            found.by_model.setdefault(batch.model, []).append(Reattach(batch, jobs))
    return found


def _owed_jobs(
    batch: OpenBatch,
    owed: Sequence[int],
    variants: Mapping[str, Variant],
    prompts: Mapping[str, Prompt],
    samples: int,
    failed_before: Mapping[str, int],
) -> dict[str, Job] | None:
    """The jobs an open batch still owes, by custom id, made from this run's variants and
    prompts (each with the prompt hash it was sent with, and its failure records as when it was
    sent: it has none since); None when one is not in this run."""
    jobs = {}
    for place in owed:
        variant_id, prompt_id, sample = _split(batch.keys[place])
        variant, prompt = variants.get(variant_id), prompts.get(prompt_id)
        if variant is None or prompt is None or not 0 <= sample < samples:
            return None
        if variant.model.name != batch.model:
            return None
        if prompt.hash != batch.hashes[place]:  # edited since: the answer is the old content's
            prompt = replace(prompt, hash=batch.hashes[place])
        key = batch.keys[place]
        jobs[custom_id(batch.label, place)] = Job(
            key, variant, prompt, sample, failed_before.get(key, 0)
        )
    return jobs


def _split(key: str) -> tuple[str, str, int]:
    variant, _, rest = key.partition("|")
    prompt_id, _, sample = rest.rpartition("|")
    return variant, prompt_id, int(sample) if sample.isdigit() else -1


class BatchLane:
    """Runs one model's jobs through its provider's batch API (see the module docstring);
    `open` names the batches still open when `run` returns."""

    def __init__(
        self,
        name: str,
        provider: BatchProvider,
        *,
        policy: BatchPolicy,
        retry: RetryPolicy,
        run_id: str,
        events: BatchEvents,
        price: Price | None = None,
        budgets: Budgets | None = None,
        reattach: Sequence[Reattach] = (),
        known_ids: frozenset[str] = frozenset(),
    ) -> None:
        self.name = name
        self.provider = provider
        limits = provider.batch_limits
        self.max_requests = min(policy.max_requests or limits.requests, limits.requests)
        self.max_bytes = min(policy.max_bytes or limits.bytes, limits.bytes)
        self.policy = policy
        self.retry = retry
        self.run_id = run_id
        self.events = events
        self.price = price
        self.budgets = budgets
        self._reattach = reattach
        self._known_ids = set(known_ids)  # batch ids the ledger has: never adopted by a lookup
        self._next: Job | None = None  # a job drawn that the last batch had no room for
        self.open: dict[str, str] = {}  # label -> provider id ("" until known)

    async def run(self, jobs: Iterator[Job], stopping: anyio.Event) -> None:
        """Follow the batches to re-attach to, and pack, submit and follow new ones until
        `jobs` is drained or `stopping` is set."""
        await self.provider.start()
        async with anyio.create_task_group() as group:
            for earlier in self._reattach:
                batch = _Batch(earlier.batch.label, jobs=dict(earlier.jobs))
                batch.batch_id = earlier.batch.batch_id
                batch.sent = datetime.fromisoformat(earlier.batch.submitted)
                self.open[batch.label] = batch.batch_id or ""
                group.start_soon(self._follow, batch, stopping)
            while not stopping.is_set():
                packed = await self._pack(jobs)
                if packed is None:
                    break
                if await self._submit(packed, stopping):
                    group.start_soon(self._follow, packed, stopping)

    async def _pack(self, jobs: Iterator[Job]) -> _Batch | None:
        """The next batch: jobs until a limit would be passed or a budget has no room for more;
        None when no job is left (or a budget is spent)."""
        batch = _Batch(f"hb-{secrets.token_hex(6)}")
        used = _ENVELOPE
        while batch.size < self.max_requests:
            job, self._next = self._next or next(jobs, None), None
            if job is None:
                break
            if batch.size % _YIELD_EVERY == _YIELD_EVERY - 1:
                await anyio.sleep(0)  # packing 100,000 requests takes seconds: let others run
            cid = custom_id(batch.label, batch.size)
            item = self.provider.batch_item(job.request(1), cid)
            size = len(orjson.dumps(item)) + 1
            if size + _ENVELOPE > self.max_bytes:
                message = (
                    f"the request is {size:,} bytes, more than a batch holds ({self.max_bytes:,})"
                )
                self.events.on_record(self._failure(job, FatalError(message), 0.0, None))
                continue
            if used + size > self.max_bytes:
                self._next = job
                break
            reserved = await self._reserve(job, waiting=not batch.jobs)
            if reserved is None:
                if self.budgets is not None and not self.budgets.exhausted:
                    self._next = job  # no room until this batch's jobs settle: send it now
                break
            batch.jobs[cid] = job
            batch.items.append(item)
            if self.budgets is not None:  # settled when its result is recorded
                batch.reserved[cid] = reserved
            batch.size += 1
            used += size
        return batch if batch.jobs else None

    async def _reserve(self, job: Job, *, waiting: bool) -> float | None:
        """A job's worst case, reserved on its budgets (0.0 without any); None when there is no
        room: at once when others in this batch could go first (`waiting` false), else once a
        budget is spent."""
        if self.budgets is None:
            return 0.0
        estimate, most = job.estimated_tokens(), job.variant.sampling.max_tokens
        reserved = self.budgets.reserve_now(estimate - most, most)
        if reserved is None and waiting:
            reserved = await self.budgets.reserve(estimate - most, most)
        return reserved

    async def _submit(self, batch: _Batch, stopping: anyio.Event) -> bool:
        """Write the batch's `submit` line, create it, write its `submitted` line; False when it
        could not be created (its jobs are then recorded as failed) or a stop came first."""
        self.events.on_line(
            {
                "type": "batch",
                "event": "submit",
                "batch": batch.label,
                "run_id": self.run_id,
                "model": self.name,
                "provider": batch_provider_name(batch),
                "timestamp": utc_timestamp(),
                "keys": [job.key for job in batch.jobs.values()],
                "hashes": [job.prompt.hash for job in batch.jobs.values()],
            }
        )
        self.open[batch.label] = ""
        return await self._create(batch, stopping)

    async def _create(self, batch: _Batch, stopping: anyio.Event) -> bool:
        outcome = await self._create_or_find(batch, stopping)
        batch.items = []
        if isinstance(outcome, str):
            self._confirm(batch, outcome)
            return True
        if outcome is not None:  # it could not be created: its jobs fail with the reason
            for cid, job in list(batch.jobs.items()):
                self._settle(batch, cid, job, outcome, None, 0.0)
            self._close(batch, f"not created: {outcome.message}")
        return False

    async def _create_or_find(
        self, batch: _Batch, stopping: anyio.Event
    ) -> str | ProviderError | None:
        """The new batch's id; the error it could not be created with; None on a stop."""
        self.events.on_state(batch.label, self.name, None, len(batch.jobs), _SENDING)
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                return await self.provider.submit_batch(batch.items, batch.label)
            except RetryableError as error:
                log.warning("%s: creating batch %s failed: %s", self.name, batch.label, error)
                found = await self._find(batch) if isinstance(error, _UNKNOWN_OUTCOME) else None
                if found is not None:
                    return found
                if attempt == self.retry.max_attempts:
                    return error
                if await _stopped_during(backoff(self.retry, error, attempt), stopping):
                    return None
            except ProviderError as error:
                return error
            except Exception as error:  # a provider bug: its jobs fail, the lane goes on
                return FatalError(f"{type(error).__name__}: {error}")
        raise AssertionError("unreachable")  # the loop returns on its last attempt

    async def _find(self, batch: _Batch) -> str | None:
        """The id of the batch the provider holds under this label, if it holds one we do not
        know yet."""
        try:
            found = await self.provider.find_batches(batch.label, batch.sent, len(batch.jobs))
        except ProviderError as error:
            log.warning("%s: looking for batch %s failed: %s", self.name, batch.label, error)
            return None
        return next((batch_id for batch_id in found if batch_id not in self._known_ids), None)

    def _confirm(self, batch: _Batch, batch_id: str) -> None:
        batch.batch_id = batch_id
        self._known_ids.add(batch_id)
        self.open[batch.label] = batch_id
        self.events.on_line(
            {
                "type": "batch",
                "event": "submitted",
                "batch": batch.label,
                "batch_id": batch_id,
                "timestamp": utc_timestamp(),
            }
        )

    async def _follow(self, batch: _Batch, stopping: anyio.Event) -> None:
        """Poll a batch until it ends, then record its results; on a stop, leave it open."""
        if not batch.jobs:  # an earlier run recorded all it held, and died before closing it
            self._close(batch, "collected")
            return
        if batch.batch_id is None and not await self._recover(batch, stopping):
            return
        wait = self.policy.poll_interval
        while True:
            status = await self._poll(batch, stopping)
            if status is None:
                return
            self.events.on_state(batch.label, self.name, batch.batch_id, len(batch.jobs), status)
            if status.ended:
                break
            if await _stopped_during(wait, stopping):
                return
            wait = min(wait * _POLL_GROWTH, self.policy.max_poll_interval)
        await self._collect(batch, status, stopping)

    async def _recover(self, batch: _Batch, stopping: anyio.Event) -> bool:
        """For a batch whose creation an earlier run never saw confirmed: adopt the one the
        provider holds, or create it now (same label and custom ids)."""
        found = await self._find(batch)
        if found is not None:
            self._confirm(batch, found)
            return True
        batch.items = [
            self.provider.batch_item(job.request(1), cid) for cid, job in batch.jobs.items()
        ]
        batch.sent = datetime.now(UTC)
        return await self._create(batch, stopping)

    async def _poll(self, batch: _Batch, stopping: anyio.Event) -> BatchStatus | None:
        """The batch's status, asking again after a retryable error; None on a stop or an error
        that polling again cannot mend (the batch stays open, for a later run)."""
        attempt = 0
        while True:
            try:
                return await self.provider.batch_status(batch.batch_id or "")
            except RetryableError as error:
                attempt += 1
                log.warning("%s: polling batch %s failed: %s", self.name, batch.batch_id, error)
                if await _stopped_during(backoff(self.retry, error, attempt), stopping):
                    return None
            except Exception as error:  # a 404, a key refused, a provider bug
                log.error(
                    "%s: cannot poll batch %s (%s): left open", self.name, batch.batch_id, error
                )
                return None

    async def _collect(self, batch: _Batch, status: BatchStatus, stopping: anyio.Event) -> None:
        """One record per job from an ended batch's results; a job it has no result for fails
        with the batch's reason. Reading is retried after a retryable error, from the start
        (jobs recorded already are skipped)."""
        batch_id = batch.batch_id or ""
        elapsed = (
            status.seconds if status.seconds is not None else time.time() - batch.sent.timestamp()
        )

        def request_of(cid: str) -> Request | None:
            job = batch.jobs.get(cid)
            return job.request(1) if job is not None else None

        attempt = 0
        while True:
            try:
                async for cid, outcome in self.provider.batch_results(batch_id, request_of):
                    job = batch.jobs.get(cid)
                    if job is not None:
                        self._settle(batch, cid, job, outcome, batch_id, elapsed)
                break
            except RetryableError as error:
                attempt += 1
                log.warning("%s: reading batch %s failed: %s", self.name, batch_id, error)
                if attempt >= self.retry.max_attempts or await _stopped_during(
                    backoff(self.retry, error, attempt), stopping
                ):
                    return
            except Exception as error:  # a key refused, results gone, a provider bug
                log.error("%s: cannot read batch %s (%s): left open", self.name, batch_id, error)
                return
        missing = status.error or ServerError(f"batch {batch_id} ended without this request")
        for cid, job in list(batch.jobs.items()):
            self._settle(batch, cid, job, missing, batch_id, elapsed)
        self._close(batch, status.state)

    def _settle(
        self,
        batch: _Batch,
        cid: str,
        job: Job,
        outcome: Completion | ProviderError,
        batch_id: str | None,
        elapsed: float,
    ) -> None:
        """Record one job's outcome and settle its budget reservation."""
        del batch.jobs[cid]
        reserved = batch.reserved.pop(cid, None)
        if isinstance(outcome, ProviderError):
            record, cost = self._failure(job, outcome, elapsed, batch_id), None
        else:
            usage, billing = outcome.usage.as_record(), self.provider.billing
            cost = cost_usd(self.price, usage, billing) if self.price else None
            record = success_record(
                self.run_id,
                job,
                outcome,
                elapsed=elapsed,
                cost=cost,
                mode="batch",
                batch_id=batch_id,
            )
        if self.budgets is not None:
            if reserved is None:
                self.budgets.charge(cost)
            else:
                self.budgets.settle(reserved, cost)
        self.events.on_record(record)

    def _failure(
        self, job: Job, error: ProviderError, elapsed: float, batch_id: str | None
    ) -> Record:
        cost = None if self.price is None else 0.0
        return failure_record(
            self.run_id, job, error, elapsed=elapsed, cost=cost, mode="batch", batch_id=batch_id
        )

    def _close(self, batch: _Batch, state: str) -> None:
        self.events.on_line(
            {
                "type": "batch",
                "event": "closed",
                "batch": batch.label,
                "batch_id": batch.batch_id,
                "state": state,
                "timestamp": utc_timestamp(),
            }
        )
        self.open.pop(batch.label, None)
        self.events.on_state(batch.label, self.name, batch.batch_id, 0, None)


_SENDING = BatchStatus(state="sending", ended=False)


def batch_provider_name(batch: _Batch) -> str:
    """The provider name of a batch's jobs (every job of a lane has the same)."""
    job = next(iter(batch.jobs.values()))
    return job.variant.model.provider


async def _stopped_during(seconds: float, stopping: anyio.Event) -> bool:
    """Wait `seconds`, or less if `stopping` is set meanwhile; whether it was."""
    with anyio.move_on_after(seconds):
        await stopping.wait()
    return stopping.is_set()
