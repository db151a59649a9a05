"""Adaptive limits on a virtual clock: pause on spent headers, halve on 429 bursts, recover."""

from __future__ import annotations

import logging
import random

import anyio

from harness.errors import RateLimitState
from harness.run.adaptive import AdaptiveConcurrency, Outage, Pacer, Slots
from tests.clock import run_virtual


def test_random_429s_at_a_few_percent_never_lower_concurrency():
    draw = random.Random(5)
    adaptive = AdaptiveConcurrency("lane", 64)
    for _ in range(20_000):
        adaptive.observe(draw.random() < 0.05)
    assert adaptive.limit == 64


def test_a_high_share_of_429s_halves_concurrency_once_per_window(caplog):
    adaptive = AdaptiveConcurrency("lane", 64)
    limits = []
    with caplog.at_level(logging.INFO, logger="harness.lane"):
        for _ in range(4):
            for _ in range(2 * adaptive.limit - 1):
                adaptive.observe(True)
            limits.append(adaptive.limit)  # a window is not over yet: no change
            adaptive.observe(True)
            limits.append(adaptive.limit)
    assert limits == [64, 32, 32, 16, 16, 8, 8, 4]
    assert caplog.records[0].getMessage() == (
        "lane: concurrency 64 -> 32 (100% of recent attempts rate limited)"
    )


def test_concurrency_recovers_in_proportion_once_429s_stop(caplog):
    adaptive = AdaptiveConcurrency("lane", 64, min_window=16)
    while adaptive.limit > 1:
        adaptive.observe(True)
    seen, attempts = [1], 0
    while adaptive.limit < 64:
        adaptive.observe(False)
        attempts += 1
        if adaptive.limit != seen[-1]:
            seen.append(adaptive.limit)
    assert seen == [1, 2, 3, 4, 6, 9, 13, 19, 28, 42, 63, 64]
    assert attempts < 600  # a few hundred answers, not minutes of quiet


def test_pacer_holds_new_requests_until_a_spent_limit_resets(caplog):
    async def main() -> tuple[float, float]:
        pacer = Pacer("lane")
        pacer.observe(RateLimitState(requests_remaining=50, requests_reset_seconds=9), 8, 100)
        start = anyio.current_time()
        await pacer.wait()
        plenty = anyio.current_time() - start
        pacer.observe(RateLimitState(requests_remaining=3, requests_reset_seconds=2.5), 8, 100)
        await pacer.wait()
        return plenty, anyio.current_time() - start

    with caplog.at_level(logging.INFO, logger="harness.lane"):
        plenty, paused = run_virtual(main)
    assert plenty == 0 and 2.5 <= paused < 2.6
    assert "pausing new requests 2.50 s" in caplog.records[0].getMessage()


def test_pacer_watches_tokens_too():
    async def main() -> float:
        pacer = Pacer("lane")
        state = RateLimitState(tokens_remaining=1000, tokens_reset_seconds=4.0)
        pacer.observe(state, in_flight=4, tokens_each=500)
        start = anyio.current_time()
        await pacer.wait()
        return anyio.current_time() - start

    assert 4.0 <= run_virtual(main) < 4.1


def test_slots_cap_concurrency_and_follow_a_resize_while_held():
    async def main() -> list[int]:
        slots = Slots(4)
        peaks: list[int] = []
        active = 0

        async def job() -> None:
            nonlocal active
            async with slots:
                active += 1
                peaks.append(active)
                await anyio.sleep(1)
                active -= 1

        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(job)
            await anyio.sleep(0.5)
            slots.resize(1)  # four are inside: none may start until only zero are left
        return peaks

    peaks = run_virtual(main)
    assert max(peaks[:4]) == 4 and peaks[4:] == [1, 1, 1, 1]


def test_a_cancelled_waiter_gives_its_slot_back():
    async def main() -> int:
        slots = Slots(1)
        async with slots:
            with anyio.move_on_after(1):
                async with slots:
                    raise AssertionError("got a slot that was taken")
        async with slots:  # still usable: the cancelled waiter left nothing behind
            return slots.in_use

    assert run_virtual(main) == 1


def test_a_connection_dropped_now_and_then_starts_no_outage():
    async def main() -> list[bool]:
        outage = Outage("lane", patience=120.0)
        seen = []
        for _ in range(5):
            outage.unreachable()  # one dropped connection...
            seen.append(outage.holding())
            outage.reached()  # ...among answers
        for _ in range(3):  # a server that refuses every connection
            outage.unreachable()
        seen.append(outage.holding())
        return seen

    assert run_virtual(main) == [False] * 5 + [True]
