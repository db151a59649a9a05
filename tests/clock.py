"""A virtual clock for asyncio: time jumps ahead whenever the loop would otherwise wait.

Timers fire in order and instantly, so tests of rate limits and backoff run in milliseconds and
say exactly what happened when, as aiolimiter's own tests do with a fake loop clock. Like a real
clock, every turn of the loop also moves time by a microsecond, so code that re-arms a timer for
"now" after a rounding error still makes progress.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")
TICK = 1e-6


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.clock = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        self.clock += max(timeout or 0.0, TICK)
        return super().select(0)


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose `time()` is virtual and jumps to the next timer when idle."""

    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(selector=self._jumping)

    def time(self) -> float:
        return self._jumping.clock


def run_virtual(func: Callable[[], Awaitable[T]]) -> T:
    """Run `func` under anyio on a virtual-clock loop."""
    return anyio.run(func, backend_options={"loop_factory": VirtualClockLoop})
