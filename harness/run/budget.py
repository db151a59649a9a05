"""Budget caps: a run never spends more than `budget_usd`, for the whole ledger or one model.

Before each attempt its worst case (`reservation`) is reserved against every cap that applies;
after it, the reservation is settled with what the attempt really cost (nothing for a failed one:
APIs bill answers, not errors). When a reservation would pass a cap, the attempt waits for those
in flight to settle (they usually cost less than their worst case); when none is left in flight
and it still does not fit, the lane stops taking jobs: the rest stay pending, and raising the cap
and running again continues. What the ledger already holds counts as spent, so a resumed run
cannot overspend.

The worst case prices `max_tokens` of output and twice the estimated input plus 32 tokens (chat
templates and tokenizers of other languages run denser than four characters a token), so a cap is
held even when the estimate of a prompt's tokens is low.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from harness.config.prices import Price, worst_case_usd


@dataclass
class Budget:
    """One cap: what the ledger held when the run began, what this run spent, what is reserved
    for attempts in flight."""

    name: str
    cap: float
    held: float = 0.0
    spent: float = 0.0
    reserved: float = 0.0
    in_flight: int = 0  # reservations not yet settled (counted: float sums leave residues)
    waiting: int = 0  # reservations waiting for room
    # Set (and replaced) when a reservation is settled while others wait for room.
    settled: anyio.Event = field(default_factory=anyio.Event, repr=False)

    @property
    def total(self) -> float:
        """Everything spent against this cap, the ledger's earlier records included."""
        return self.held + self.spent

    def fits(self, amount: float) -> bool:
        """Whether `amount` more can be reserved without passing the cap."""
        return self.total + self.reserved + amount <= self.cap

    def settle(self, reserved: float, cost: float | None) -> None:
        """Replace a reservation by what the attempt cost, and wake the waiting reservations."""
        self.reserved -= reserved
        self.in_flight -= 1
        self.spent += cost or 0.0
        if self.waiting:
            self.settled.set()
            self.settled = anyio.Event()


@dataclass
class Budgets:
    """The caps one lane answers to (the ledger's and its model's), reserved all or none."""

    caps: Sequence[Budget]
    price: Price | None
    exhausted: bool = False
    # The worst case per (estimated input tokens, max_tokens): prompts of one length share it,
    # and pricing it again for each attempt showed in the jobs/s benchmark.
    _worst: dict[tuple[int, int], float] = field(default_factory=dict)

    def reservation(self, input_tokens: int, max_tokens: int) -> float:
        """The most one attempt can cost, from its estimated input tokens and `max_tokens`."""
        key = (input_tokens, max_tokens)
        worst = self._worst.get(key)
        if worst is None:
            worst = worst_case_usd(self.price, 2 * input_tokens + 32, max_tokens) or 0.0
            self._worst[key] = worst
        return worst

    def reserve_now(self, input_tokens: int, max_tokens: int) -> float | None:
        """Reserve an attempt's worst case at once when every cap has room for it (the common
        case, kept free of awaits); None when one has not, and `reserve` must wait."""
        amount = self.reservation(input_tokens, max_tokens)
        caps = self.caps
        if self.exhausted or any(c.total + c.reserved + amount > c.cap for c in caps):
            return None
        for cap in caps:
            cap.reserved += amount
            cap.in_flight += 1
        return amount

    async def reserve(self, input_tokens: int, max_tokens: int) -> float | None:
        """Reserve an attempt's worst case on every cap, waiting while attempts in flight may
        free room; None (and `exhausted`) once a cap would be passed with none in flight."""
        amount = self.reservation(input_tokens, max_tokens)
        while not self.exhausted:
            blocking = [cap for cap in self.caps if not cap.fits(amount)]
            if not blocking:
                for cap in self.caps:
                    cap.reserved += amount
                    cap.in_flight += 1
                return amount
            if all(cap.in_flight == 0 for cap in blocking):
                self.exhausted = True
            else:
                await _room(blocking[0])
        return None

    def settle(self, reserved: float, cost: float | None) -> None:
        """Replace a reservation by what the attempt cost."""
        for cap in self.caps:
            cap.settle(reserved, cost)

    def charge(self, cost: float | None) -> None:
        """Count a cost nothing was reserved for: an answer of a batch an earlier run sent."""
        for cap in self.caps:
            cap.spent += cost or 0.0


async def _room(cap: Budget) -> None:
    """Wait for a reservation on `cap` to be settled."""
    cap.waiting += 1
    try:
        await cap.settled.wait()
    finally:
        cap.waiting -= 1
