"""Rate limits on a virtual clock: never above the configured rate, and close to it."""

from __future__ import annotations

import bisect
import itertools

import anyio

from harness.run.limits import Bucket, LaneLimits
from tests.clock import run_virtual


def most_in_any_window(times: list[float], window: float) -> int:
    """The largest number of events inside any half-open window of `window` seconds."""
    times = sorted(times)
    return max(bisect.bisect_left(times, t + window) - i for i, t in enumerate(times))


def acquire_times(per_minute: float, count: int, workers: int = 32) -> list[float]:
    async def main() -> list[float]:
        bucket = Bucket(per_minute)
        times: list[float] = []

        async def worker() -> None:
            while len(times) < count:
                await bucket.take()
                times.append(anyio.current_time())

        async with anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(worker)
        return times[:count]

    return run_virtual(main)


def test_requests_never_exceed_the_rate_in_any_minute():
    times = acquire_times(per_minute=120, count=600)
    assert most_in_any_window(times, 60.0) <= 120
    assert most_in_any_window(times, 0.5) <= 1


def test_requests_run_at_the_configured_rate():
    times = acquire_times(per_minute=600, count=3000)
    achieved_per_minute = (len(times) - 1) / (times[-1] - times[0]) * 60
    assert 0.98 * 600 <= achieved_per_minute <= 600


def test_a_slow_rate_spaces_requests_evenly():
    times = acquire_times(per_minute=6, count=5, workers=3)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(abs(gap - 10.0) < 1e-3 for gap in gaps)


def test_token_estimates_are_settled_against_real_usage():
    async def main() -> tuple[float, float]:
        limits = LaneLimits(None, tokens_per_minute=6000)  # 100 tokens a second
        await limits.acquire(100)  # primes the bucket full, waits for room for 100
        start = anyio.current_time()
        await limits.acquire(100)
        one_wait = anyio.current_time() - start
        limits.settle(100, 0)  # the request used nothing: refund it
        start = anyio.current_time()
        await limits.acquire(100)
        refunded_wait = anyio.current_time() - start
        return one_wait, refunded_wait

    one_wait, refunded_wait = run_virtual(main)
    assert abs(one_wait - 1.0) < 1e-3
    assert refunded_wait < one_wait


def test_a_request_larger_than_the_bucket_waits_then_owes():
    async def main() -> list[float]:
        bucket = Bucket(per_minute=600, capacity=10)  # 10 a second, holds 10
        times = []
        for amount in (25, 1):
            await bucket.take(amount)
            times.append(anyio.current_time())
        return times

    first, second = run_virtual(main)
    assert abs(first - 1.0) < 1e-3  # the primed bucket drains its 10 in 1 s
    assert abs((second - first) - 1.6) < 1e-3  # 15 owed plus 1 taken, at 10 a second
