"""A run's budget caps: the ledger's and each model's, with what the ledgers it reads already hold
counted as spent (see `harness.run.budget` for how a lane keeps to them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from harness.config.models import ModelConfig
from harness.config.prices import Price
from harness.run.budget import Budget, Budgets
from harness.run.prepare import Prepared


@dataclass
class Caps:
    """The run's budget caps: the ledger's, and each model's, with what the ledger already holds
    counted as spent; the lanes' `Budgets` share them."""

    ledger: Budget | None
    models: dict[str, Budget]
    lanes: list[Budgets] = dataclasses.field(default_factory=list)

    def of(self, model: ModelConfig, price: Price | None) -> Budgets | None:
        """The caps a model's lane answers to, or None when there are none."""
        caps = [c for c in (self.ledger, self.models.get(model.name)) if c is not None]
        if not caps:
            return None
        budgets = Budgets(caps, price)
        self.lanes.append(budgets)
        return budgets

    def stopped(self) -> bool:
        """Whether a cap stopped a lane with jobs left."""
        return any(budgets.exhausted for budgets in self.lanes)

    def report(self) -> str:
        """What was spent of what, and what to do next."""
        spent = [c for c in (self.ledger, *self.models.values()) if c is not None]
        figures = "; ".join(f"{c.name}: ${c.total:,.4f} of ${c.cap:,.2f}" for c in spent)
        return (
            f"Stopped at the budget ({figures}): the jobs left stay pending. "
            "Raise budget_usd and run the same command again to continue."
        )


def caps_of(prepared: Prepared, spent: Mapping[str, float]) -> Caps:
    """The run's caps, with `spent` (per model name, what the ledgers the run reads hold: see
    `harness.run.run_ledger`) counted as spent. A shard of N gets 1/N of each cap (shards are the
    same size, give or take)."""
    config = prepared.config
    budgets = {
        s.model.name: s.model.budget_usd for s in prepared.models if s.model.budget_usd is not None
    }
    if config.budget_usd is None and not budgets:
        return Caps(None, {})
    share = 1.0 if prepared.shard is None else 1 / prepared.shard.count
    ledger = (
        Budget("ledger", config.budget_usd * share, held=sum(spent.values()))
        if config.budget_usd is not None
        else None
    )
    caps = {
        name: Budget(name, budget * share, held=spent.get(name, 0.0))
        for name, budget in budgets.items()
    }
    return Caps(ledger, caps)
