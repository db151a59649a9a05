"""A lane: one provider instance with its own rate limits, concurrency cap and retry policy.

The lane turns a job into exactly one record. It owns everything a provider must not do itself:
waiting for the buckets, the per-attempt timeout, and the retry loop. Fatal errors end the series
at once. Cancellation propagates and records nothing.

How long a failed attempt waits before the next:
- a server's `retry_after` is honoured as given, never shortened (up to `max_retry_after`; a
  longer wait is recorded as a failure to rerun later);
- otherwise it depends on the lane's recent error share (`harness.run.adaptive.ErrorShare`, a
  sliding window of its last attempts). While the lane is healthy, its errors are the server's
  noise, not overload: the job is retried promptly, with full jitter up to `quick_wait` doubled per
  attempt but never past `initial_wait` (0-0.25 s, 0-0.5 s, then 0-1 s by default). Once more than
  half the window failed, the lane is overloaded: exponential backoff from `initial_wait` with
  jitter (1-2 s, 2-4 s, ...) until at most a quarter of it fails. A job that draws four 500s in a
  row on a healthy lane thus waits at most 2.75 s in all, not 15-30 s. The concurrency cuts for
  pushback stay with `AdaptiveConcurrency`; the window is twice the lane's concurrency, at least
  16 attempts.

The loop is a plain `for`: with tenacity's `AsyncRetrying` in its place, 20,000 simulated jobs
took 3.7 s instead of 1.0 s.

A job waiting to retry holds no slot and no worker: the worker that ran its first attempt parks it
in a task of its own and takes the next job, so a retry-after delays only the job that got it.
What the server says about the whole lane (a spent limit in its headers, a high share of 429s)
is handled by `harness.run.adaptive`.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup

from harness.api.provider import Provider
from harness.api.types import Completion
from harness.config.prices import Price, cost_usd
from harness.config.run_config import RetryPolicy
from harness.errors import (
    AttemptTimeout,
    ConnectionFailed,
    FatalError,
    ProviderError,
    RetryableError,
)
from harness.ledger.record import Record
from harness.run.adaptive import AdaptiveConcurrency, ErrorShare, Outage, Pacer
from harness.run.budget import Budgets
from harness.run.jobs import Job
from harness.run.limits import LaneLimits
from harness.run.records import failure_record, success_record

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class LaneEvents:
    """What a lane reports as it goes: a record finished, a retry is waiting."""

    on_record: Callable[[Record], None]
    on_retry: Callable[[Job, ProviderError, float], None]


@dataclass
class _Series:
    """One job's attempts so far: the error of every failed one, and how many of those failed
    during a server outage (they count against no attempt limit)."""

    job: Job
    errors: list[ProviderError] = field(default_factory=list)
    spared: int = 0

    @property
    def counted(self) -> int:
        """Failed attempts that count against `max_attempts`."""
        return len(self.errors) - self.spared


class Lane:
    """Runs jobs through one provider under its limits; at most `concurrency` at a time, fewer
    while the server is rate limiting (see `harness.run.adaptive`)."""

    def __init__(
        self,
        name: str,
        provider: Provider,
        *,
        limits: LaneLimits,
        concurrency: int,
        retry: RetryPolicy,
        run_id: str,
        events: LaneEvents,
        price: Price | None = None,
        budgets: Budgets | None = None,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.name = name
        self.provider = provider
        self.limits = limits
        self.concurrency = AdaptiveConcurrency(name, concurrency)
        self.pacer = Pacer(name, max_pause=retry.max_retry_after)
        self.outage = Outage(name, retry.server_down_wait)
        self.errors = ErrorShare(name, max(16, 2 * concurrency))
        self.retry = retry
        self.run_id = run_id
        self.events = events
        self.price = price  # what each answer costs (None: unknown)
        self.budgets = budgets  # the caps this lane answers to, if any
        self._sleep = sleep
        # Jobs waiting out a retry in a task of their own; past the bound a worker waits itself,
        # so a storm of 429s cannot pull every job of a huge run into memory.
        self._parked = 0
        self._max_parked = 4 * concurrency

    async def run(self, jobs: Iterator[Job], stopping: anyio.Event) -> None:
        """Start the provider (a local model loads here, outside any attempt's timeout), then
        drain `jobs` with `concurrency` workers; stop taking new ones once `stopping` is set."""
        try:
            await self.provider.start()
        except ProviderError as error:
            for job in jobs:  # nothing can run: every job gets the reason
                self.events.on_record(self._failed(_Series(job), error, time.perf_counter()))
            return
        with _loaded_out_of_sight(self.provider.holds_device):
            async with anyio.create_task_group() as group:
                for _ in range(self.concurrency.cap):
                    group.start_soon(self._worker, jobs, stopping, group)

    async def run_job(self, job: Job) -> Record | None:
        """Every attempt one job gets, ending in its one record (None: a budget stopped it)."""
        series = _Series(job)
        while True:
            outcome = await self._attempt(series)
            if outcome is None or isinstance(outcome, Record):
                return outcome
            await self._sleep(outcome)

    async def _worker(self, jobs: Iterator[Job], stopping: anyio.Event, group: TaskGroup) -> None:
        while not stopping.is_set():
            job = next(jobs, None)
            if job is None:
                return
            series = _Series(job)
            outcome = await self._attempt(series)
            if outcome is None:  # over a budget: this job and the rest stay pending
                return
            if isinstance(outcome, Record):
                self.events.on_record(outcome)
            elif self._parked < self._max_parked:
                self._parked += 1
                group.start_soon(self._parked_retries, series, outcome, stopping)
            else:
                await self._retries(series, outcome, stopping)

    async def _parked_retries(self, series: _Series, wait: float, stopping: anyio.Event) -> None:
        try:
            await self._retries(series, wait, stopping)
        finally:
            self._parked -= 1

    async def _retries(self, series: _Series, wait: float, stopping: anyio.Event) -> None:
        """Wait, try again, until the series ends; a stop while waiting leaves the job pending."""
        while True:
            await self._sleep(wait)
            if stopping.is_set():
                return
            outcome = await self._attempt(series)
            if outcome is None or isinstance(outcome, Record):
                if outcome is not None:
                    self.events.on_record(outcome)
                return
            wait = outcome

    async def _attempt(self, series: _Series) -> Record | float | None:
        """One attempt: the series' record when it ends here, the wait before the next, or None
        when a budget cap leaves no room for it (the job stays pending)."""
        job, attempt = series.job, len(series.errors) + 1
        estimate = job.estimated_tokens()
        started = time.perf_counter()
        reserved: float | None = None  # this attempt's share of its budget caps
        cost: float | None = None
        try:
            async with self.outage.gate(), self.concurrency.slots:
                await self.pacer.wait()
                await self.limits.acquire(estimate)
                if self.budgets is not None:
                    most = job.variant.sampling.max_tokens
                    reserved = self.budgets.reserve_now(estimate - most, most)
                    if reserved is None:
                        reserved = await self.budgets.reserve(estimate - most, most)
                    if reserved is None:
                        return None
                started = time.perf_counter()
                completion = await self._generate(job, attempt)
            if self.price is not None:
                cost = cost_usd(self.price, completion.usage.as_record(), self.provider.billing)
        except ConnectionFailed as error:
            self.errors.observe(True)
            self.outage.unreachable()
            if self.outage.holding():  # the server is down: wait for it, spend no attempt
                series.errors.append(error)
                series.spared += 1
                self.events.on_retry(job, error, 0.0)
                return 0.0
            return self._retry_or_fail(series, error, started)
        except RetryableError as error:
            self.outage.reached()
            self.errors.observe(True)
            # A failed attempt keeps its estimate charged: backing off is what we want.
            self._pushed_back(error, estimate)
            return self._retry_or_fail(series, error, started)
        except ProviderError as error:  # fatal: the request's fault, not the server's load
            self.outage.reached()
            self.errors.observe(False)
            self.concurrency.observe(False)
            return self._failed(series, error, started)
        except Exception as error:  # a provider bug: record it, never retry it, keep going
            fatal = FatalError(f"{type(error).__name__}: {error}")
            return self._failed(series, fatal, started)
        finally:
            if reserved is not None and self.budgets is not None:
                self.budgets.settle(reserved, cost)
        elapsed = time.perf_counter() - started
        self.outage.reached()
        usage = completion.usage
        self.limits.settle(estimate, usage.input + usage.output)
        self.errors.observe(False)
        self.concurrency.observe(False)
        self.pacer.observe(completion.rate_limit, self.concurrency.slots.in_use + 1, estimate)
        return success_record(
            self.run_id, job, completion, elapsed=elapsed, attempt_errors=series.errors, cost=cost
        )

    def _retry_or_fail(
        self, series: _Series, error: RetryableError, started: float
    ) -> Record | float:
        """The failed series' record when it is out of attempts or the server's wait is too
        long, else the wait before the next attempt."""
        policy = self.retry
        wait = self._wait(error, series.counted + 1)
        too_long = error.retry_after is not None and wait > policy.max_retry_after
        if series.counted + 1 >= policy.max_attempts or too_long:
            return self._failed(series, self._final(error, wait), started)
        series.errors.append(error)
        self.events.on_retry(series.job, error, wait)
        return wait

    def _pushed_back(self, error: RetryableError, estimate: int) -> None:
        """Feed a retryable failure to the lane's adaptive limits."""
        pushed = self.provider.pushed_back(error)
        self.concurrency.observe(pushed)
        if error.rate_limit is not None:  # a 429 saying the limit is spent pauses the lane
            self.pacer.observe(error.rate_limit, self.concurrency.slots.in_use + 1, estimate)

    def _final(self, error: RetryableError, wait: float) -> RetryableError:
        """The error to record; one whose wait is past `max_retry_after` says so."""
        cap = self.retry.max_retry_after
        if error.retry_after is None or wait <= cap:
            return error
        note = (
            f"{error.message} (the server asked to wait {wait:,.0f} s, more than "
            f"[retry] max_retry_after = {cap:g} s: rerun later)"
        )
        return type(error)(note, status=error.status, retry_after=error.retry_after)

    def _failed(self, series: _Series, error: ProviderError, started: float) -> Record:
        elapsed = time.perf_counter() - started
        return failure_record(
            self.run_id,
            series.job,
            error,
            elapsed=elapsed,
            attempt_errors=series.errors,
            cost=None if self.price is None else 0.0,
        )

    async def _generate(self, job: Job, attempt: int) -> Completion:
        try:
            with anyio.fail_after(self.retry.attempt_timeout):
                return await self.provider.generate(job.request(attempt))
        except TimeoutError:
            raise AttemptTimeout(f"no answer within {self.retry.attempt_timeout:g} s") from None

    def _wait(self, error: RetryableError, attempt: int) -> float:
        return backoff(self.retry, error, attempt, healthy=not self.errors.overloaded)


@contextmanager
def _loaded_out_of_sight(holds_device: bool) -> Iterator[None]:
    """Within, for a lane of a local model: what is loaded (the libraries, the model, its
    tokenizer) out of the cyclic collector's sight, so that the full collections the records
    set off do not stall the run scanning it (0.1-0.2 s each); garbage collected first, so
    none is kept. Such lanes run one after another (they share the device), so the process-wide
    freeze is theirs alone; it is undone before the provider is closed, which frees the model."""
    if not holds_device:
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def backoff(
    policy: RetryPolicy, error: RetryableError, attempt: int, *, healthy: bool = False
) -> float:
    """The wait before attempt `attempt + 1`: the server's retry-after when it gave one, as
    given; else, for a healthy lane, full jitter up to `quick_wait` doubled per attempt, never
    past `initial_wait` (a healthy lane's longest wait is an overloaded one's shortest); else
    exponential backoff from `initial_wait` with jitter. Our own waits stop at `max_wait`."""
    if error.retry_after is not None:
        return max(0.0, error.retry_after)
    growth: int = 2 ** (attempt - 1)  # attempt >= 1: a whole number
    if healthy:
        most = min(policy.quick_wait * growth, policy.initial_wait, policy.max_wait)
        return random.uniform(0, most)
    base = min(policy.max_wait, policy.initial_wait * growth)
    return min(policy.max_wait, base + random.uniform(0, base))
