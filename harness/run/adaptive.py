"""Adaptive limits: a lane slows down before the server makes it, and backs off when it does not.

- `Pacer`: when a response's headers say the remaining requests (or tokens) would not cover the
  requests in flight, no new attempt starts until that limit resets.
- `AdaptiveConcurrency`: when the share of 429s among recent attempts is high, the lane's
  concurrency halves; when it is low again, it grows back in proportion to where it is. Single or
  random 429s never move it: only a measured rate does.
- `ErrorShare`: the share of failed attempts among the lane's recent ones says whether its
  errors are the server's noise (retry promptly) or overload (back off long; see
  `harness.run.lane`).
- `Outage`: when the server cannot be reached at all (a restart, a crash), the lane holds its
  jobs and sends one probe a second, up to `patience` seconds, instead of spending every job's
  attempts in a few seconds; failed connections meanwhile count against no job.

All of them log every change.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from harness.errors import RateLimitState

log = logging.getLogger("harness.lane")


class Pacer:
    """Holds new attempts back until a limit the server says is nearly spent has reset."""

    __slots__ = ("_name", "_resume_at", "max_pause")

    def __init__(self, name: str, max_pause: float = float("inf")) -> None:
        self._name = name
        self.max_pause = max_pause  # a reset hours away must not stall the lane for hours
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
        pause = min(pause, self.max_pause)
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
    """Slots whose number follows the share of pushback (429, overloaded) among recent attempts.

    A decision is taken once per window of attempts (twice the current limit, at least
    `min_window`), so it rests on a measured share rather than on single answers: above
    `threshold` the limit halves; at or below half of it the limit grows by half, up to the cap.
    Random, load-independent 429s (a few percent) never cross the threshold, so they cost only
    the retries of the requests that got them; a server that rejects most requests brings the
    limit down within a few windows, and it comes back as fast once the server accepts again.
    """

    __slots__ = ("_name", "_pushed", "_seen", "cap", "min_window", "slots", "threshold")

    def __init__(
        self, name: str, cap: int, *, threshold: float = 0.2, min_window: int = 16
    ) -> None:
        self._name = name
        self.cap = cap
        self.threshold = threshold
        self.min_window = min_window
        self.slots = Slots(cap)
        # Attempts seen since the last decision, and how many of them were pushed back.
        self._seen = 0
        self._pushed = 0

    @property
    def limit(self) -> int:
        """How many attempts may be in flight now."""
        return self.slots.total

    def observe(self, pushed_back: bool) -> None:
        """Count one finished attempt; at the end of a window, adjust the limit."""
        self._seen += 1
        self._pushed += pushed_back
        if self._seen < max(self.min_window, 2 * self.limit):
            return
        share = self._pushed / self._seen
        self._seen = self._pushed = 0
        if share > self.threshold and self.limit > 1:
            self._set(max(1, self.limit // 2), f"{share:.0%} of recent attempts rate limited")
        elif share <= self.threshold / 2 and self.limit < self.cap:
            self._set(min(self.cap, self.limit + max(1, self.limit // 2)), "recovering")

    def _set(self, limit: int, why: str) -> None:
        log.info("%s: concurrency %d -> %d (%s)", self._name, self.limit, limit, why)
        self.slots.resize(limit)


class ErrorShare:
    """Whether the lane is overloaded, from the share of retryable failures among its last
    `size` attempts (a sliding window).

    It turns overloaded once the window is full and more than `threshold` of it failed, and
    healthy again once at most half the threshold fails, so a share near the threshold does not
    flap. Until the window first fills, the lane counts as healthy: the burst of failures a run
    can meet in its first round of requests is no measure of the server's load.
    """

    __slots__ = ("_failed", "_name", "_size", "_window", "overloaded", "threshold")

    def __init__(self, name: str, size: int, threshold: float = 0.5) -> None:
        self._name = name
        self._size = size
        self.threshold = threshold
        self.overloaded = False
        # The outcome of each recent attempt (True: it failed), oldest first, and how many failed.
        self._window: deque[bool] = deque(maxlen=size)
        self._failed = 0

    def observe(self, failed: bool) -> None:
        """Count one finished attempt; turn overloaded or healthy when the share says so."""
        window = self._window
        if len(window) == self._size:
            self._failed -= window[0]
        window.append(failed)
        self._failed += failed
        if len(window) < self._size:
            return
        share = self._failed / len(window)
        if not self.overloaded and share > self.threshold:
            self._turn(True, share)
        elif self.overloaded and share <= self.threshold / 2:
            self._turn(False, share)

    def _turn(self, overloaded: bool, share: float) -> None:
        self.overloaded = overloaded
        what = "overloaded: long backoff" if overloaded else "healthy again: prompt retries"
        log.info("%s: %.0f%% of recent attempts failed; %s", self._name, 100 * share, what)


class Outage:
    """The lane's server stopped answering: hold attempts back, one probe at a time, for at most
    `patience` seconds from the first failed connection; any answer ends it. It takes `failures`
    failed connections in a row, with no answer between them, to start one: a connection dropped
    now and then among answers is retried like any other failure."""

    __slots__ = ("_failures", "_gap", "_in_row", "_name", "_probe", "_since", "patience")

    def __init__(self, name: str, patience: float, gap: float = 1.0, failures: int = 3) -> None:
        self._name = name
        self.patience = patience
        self._gap = gap  # between probes
        self._failures = failures
        self._in_row = 0  # failed connections since the last answer
        self._since: float | None = None  # when this outage started
        self._probe = anyio.Lock()

    def holding(self) -> bool:
        """True while an outage is within its patience: attempts wait, failures are not counted."""
        return self._since is not None and anyio.current_time() - self._since < self.patience

    def unreachable(self) -> None:
        """A connection failed: start an outage when enough have failed in a row."""
        self._in_row += 1
        if self._since is None and self.patience > 0 and self._in_row >= self._failures:
            self._since = anyio.current_time()
            log.warning(
                "%s: server unreachable; holding requests up to %.0f s, one probe every %.0f s",
                self._name,
                self.patience,
                self._gap,
            )

    def reached(self) -> None:
        """The server answered (with anything): the outage is over."""
        self._in_row = 0
        if self._since is not None:
            log.info(
                "%s: server answers again after %.1f s",
                self._name,
                anyio.current_time() - self._since,
            )
            self._since = None

    @asynccontextmanager
    async def gate(self) -> AsyncIterator[None]:
        """Around each attempt: free while the server answers; during an outage, one attempt at
        a time goes, a probe every `gap` seconds."""
        if not self.holding():
            yield
            return
        await self._probe.acquire()
        if not self.holding():  # the server came back while this one queued
            self._probe.release()
            yield
            return
        try:
            await anyio.sleep(self._gap)
            yield
        finally:
            self._probe.release()
