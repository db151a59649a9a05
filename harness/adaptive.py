"""Adaptive limits: a lane slows down before the server makes it, and backs off when it does not.

- `Pacer`: when a response's headers say the remaining requests (or tokens) would not cover the
  requests in flight, no new attempt starts until that limit resets.
- `AdaptiveConcurrency`: a burst of 429s halves the lane's concurrency (at most once per
  `cooldown`); after `quiet` seconds without one it grows back a step at a time to the configured
  cap. Both log every change.
"""

from __future__ import annotations

import logging
import math
from collections import deque

import anyio

from harness.api import RateLimitState

log = logging.getLogger("harness.lane")


class Pacer:
    """Holds new attempts back until a limit the server says is nearly spent has reset."""

    __slots__ = ("_name", "_resume_at")

    def __init__(self, name: str) -> None:
        self._name = name
        self._resume_at = 0.0

    async def wait(self) -> None:
        """Sleep until the lane may start another attempt."""
        delay = self._resume_at - anyio.current_time()
        if delay > 0:
            await anyio.sleep(delay)

    def observe(self, state: RateLimitState | None, in_flight: int, tokens_each: int) -> None:
        """Read one response's rate-limit state; pause when the rest would overrun it."""
        if state is None:
            return
        pause = 0.0
        if _short(state.requests_remaining, in_flight) and state.requests_reset_seconds:
            pause = state.requests_reset_seconds
        if _short(state.tokens_remaining, in_flight * tokens_each) and state.tokens_reset_seconds:
            pause = max(pause, state.tokens_reset_seconds)
        resume_at = anyio.current_time() + pause
        if pause and resume_at > self._resume_at + 0.05:
            self._resume_at = resume_at
            log.info(
                "%s: server reports %s requests / %s tokens left; pausing new requests %.2f s",
                self._name,
                state.requests_remaining,
                state.tokens_remaining,
                pause,
            )


def _short(remaining: int | None, needed: int) -> bool:
    return remaining is not None and remaining < max(needed, 1)


class Slots:
    """A semaphore whose size can change while tasks hold it. Taking a free slot neither waits
    nor yields to the event loop (anyio's CapacityLimiter yields twice per use, which showed in
    the latency benchmark); waiters are served first come, first served."""

    __slots__ = ("_waiters", "in_use", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_use = 0
        # Events of tasks waiting for a slot, oldest first; a slot is handed over before `set`.
        self._waiters: deque[anyio.Event] = deque()

    async def __aenter__(self) -> None:
        if self.in_use < self.total and not self._waiters:
            self.in_use += 1
            return
        granted = anyio.Event()
        self._waiters.append(granted)
        try:
            await granted.wait()
        except BaseException:
            if granted.is_set():  # handed a slot while being cancelled: give it back
                self.release()
            else:
                self._waiters.remove(granted)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Give a slot back and hand free slots to waiters."""
        self.in_use -= 1
        self.resize(self.total)

    def resize(self, total: int) -> None:
        """Change the number of slots; waiters get any that are free now."""
        self.total = total
        while self._waiters and self.in_use < self.total:
            self.in_use += 1
            self._waiters.popleft().set()


class AdaptiveConcurrency:
    """Slots whose number halves on rate limiting and recovers when things are quiet."""

    __slots__ = ("_last_change", "_last_limited", "_name", "cap", "cooldown", "quiet", "slots")

    def __init__(self, name: str, cap: int, *, cooldown: float = 1.0, quiet: float = 10.0) -> None:
        self._name = name
        self.cap = cap
        self.cooldown = cooldown
        self.quiet = quiet
        self.slots = Slots(cap)
        self._last_limited = -math.inf
        self._last_change = -math.inf

    @property
    def limit(self) -> int:
        """How many attempts may be in flight now."""
        return self.slots.total

    def rate_limited(self) -> None:
        """A 429 arrived: halve the limit unless it was just lowered."""
        now = anyio.current_time()
        self._last_limited = now
        if self.limit > 1 and now - self._last_change >= self.cooldown:
            self._set(max(1, self.limit // 2), now, "rate limited")

    def succeeded(self) -> None:
        """An attempt succeeded: after a quiet period, grow the limit by a step."""
        now = anyio.current_time()
        if self.limit < self.cap and now - max(self._last_limited, self._last_change) >= self.quiet:
            step = max(1, self.cap // 8)
            self._set(min(self.cap, self.limit + step), now, "quiet")

    def _set(self, limit: int, now: float, why: str) -> None:
        log.info("%s: concurrency %d -> %d (%s)", self._name, self.limit, limit, why)
        self.slots.resize(limit)
        self._last_change = now
