"""A lane: one provider instance with its own rate limits, concurrency cap and retry policy.

The lane turns a job into exactly one record. It owns everything a provider must not do itself:
waiting for the buckets, the per-attempt timeout, and tenacity's retry loop, which honours a
server's `retry_after` and otherwise backs off exponentially with jitter. Fatal errors end the
series at once. Cancellation propagates and records nothing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from harness.api import Completion, Provider
from harness.config import RetryPolicy
from harness.errors import AttemptTimeout, FatalError, ProviderError, RetryableError
from harness.jobs import Job
from harness.limits import LaneLimits
from harness.record import Record, failure_record, success_record

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class LaneEvents:
    """What a lane reports as it goes: a record finished, a retry is waiting."""

    on_record: Callable[[Record], None]
    on_retry: Callable[[Job, ProviderError, float], None]


class Lane:
    """Runs jobs through one provider under its limits; at most `concurrency` at a time."""

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
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.name = name
        self.provider = provider
        self.limits = limits
        self.concurrency = concurrency
        self.retry = retry
        self.run_id = run_id
        self.events = events
        self._sleep = sleep
        self._backoff = wait_exponential_jitter(initial=retry.initial_wait, max=retry.max_wait)

    async def run(self, jobs: Iterator[Job], stopping: anyio.Event) -> None:
        """Drain `jobs` with `concurrency` workers; stop taking new ones once `stopping` is set."""
        async with anyio.create_task_group() as group:
            for _ in range(self.concurrency):
                group.start_soon(self._worker, jobs, stopping)

    async def _worker(self, jobs: Iterator[Job], stopping: anyio.Event) -> None:
        while not stopping.is_set():
            job = next(jobs, None)
            if job is None:
                return
            self.events.on_record(await self.run_job(job))

    async def run_job(self, job: Job) -> Record:
        """Every attempt one job gets, ending in its one record."""
        attempts = 0
        started = time.perf_counter()
        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=stop_after_attempt(self.retry.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(RetryableError),
            before_sleep=lambda state: self._report_retry(job, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    estimate = job.estimated_tokens()
                    await self.limits.acquire(estimate)
                    started = time.perf_counter()
                    completion = await self._attempt(job, attempts)
                    # A failed attempt keeps its estimate charged: backing off is what we want.
                    usage = completion.usage
                    self.limits.settle(estimate, usage.input + usage.output)
        except ProviderError as error:
            elapsed = time.perf_counter() - started
            return failure_record(self.run_id, job, error, elapsed=elapsed, retries=attempts - 1)
        except Exception as error:  # a provider bug: record it, never retry it, keep the run going
            fatal = FatalError(f"{type(error).__name__}: {error}")
            elapsed = time.perf_counter() - started
            return failure_record(self.run_id, job, fatal, elapsed=elapsed, retries=attempts - 1)
        elapsed = time.perf_counter() - started
        return success_record(self.run_id, job, completion, elapsed=elapsed, retries=attempts - 1)

    async def _attempt(self, job: Job, attempt: int) -> Completion:
        try:
            with anyio.fail_after(self.retry.attempt_timeout):
                return await self.provider.generate(job.request(attempt))
        except TimeoutError:
            raise AttemptTimeout(f"no answer within {self.retry.attempt_timeout:g} s") from None

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ProviderError) and error.retry_after is not None:
            return max(0.0, error.retry_after)
        return self._backoff(state)

    def _report_retry(self, job: Job, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        if isinstance(error, ProviderError):
            self.events.on_retry(job, error, wait)
