"""Rate limits: aiolimiter leaky buckets for requests/min and tokens/min.

A minute-sized bucket would let a lane send twice its rate in its first minute, and providers
enforce per-minute limits over shorter intervals anyway. So the request bucket holds a single
request (requests go out evenly spaced, and no window of any length sees more than the rate
allows) and the token bucket holds one second's worth. Both start full, so there is no opening
burst. Token estimates are settled against real usage afterwards.
"""

from __future__ import annotations

from aiolimiter import AsyncLimiter


class Bucket(AsyncLimiter):
    """An AsyncLimiter that starts full and can settle an estimate after the fact."""

    __slots__ = ("_primed",)

    def __init__(self, per_minute: float, capacity: float = 1.0) -> None:
        super().__init__(capacity, capacity * 60.0 / per_minute)
        self._primed = False

    async def take(self, amount: float = 1.0) -> None:
        """Wait until `amount` fits; more than the capacity waits for a full bucket, then owes."""
        if not self._primed:
            self._primed = True
            await self.acquire(self.max_rate)
        part = min(amount, self.max_rate)
        await self.acquire(part)
        if amount > part:
            self.settle(amount - part)

    def settle(self, delta: float) -> None:
        """Add (or, negative, refund) capacity used beyond what was taken, without waiting."""
        # aiolimiter has no public way to adjust the level; `_leak` brings it up to date first.
        self._leak()
        self._level = max(0.0, self._level + delta)
        self._wake_next()


class LaneLimits:
    """The request and token buckets of one lane; either may be absent (no limit)."""

    __slots__ = ("requests", "tokens")

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None) -> None:
        self.requests = Bucket(requests_per_minute) if requests_per_minute else None
        self.tokens = (
            Bucket(tokens_per_minute, capacity=max(1.0, tokens_per_minute / 60))
            if tokens_per_minute
            else None
        )

    async def acquire(self, estimated_tokens: int) -> None:
        """Wait for one request's slot and its estimated tokens."""
        if self.requests is not None:
            await self.requests.take()
        if self.tokens is not None:
            await self.tokens.take(estimated_tokens)

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Correct the token bucket once the real usage is known."""
        if self.tokens is not None and actual_tokens != estimated_tokens:
            self.tokens.settle(actual_tokens - estimated_tokens)
