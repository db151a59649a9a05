"""A model as the config declares it: one `[[models]]` entry (`ModelConfig`), the values every
model takes unless it sets its own (`Defaults`, `[defaults]`) and how a model in batch mode sizes
and polls its batches (`BatchPolicy`, `[models.batch]`). Prices (`harness.config.prices`) and
judge scorers (`harness.config.scorers`) read a model; the run config
(`harness.config.run_config`) reads all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from harness.fields import described, from_table, option


@dataclass(frozen=True)
class BatchPolicy:
    """`[models.batch]` (or `[defaults.batch]`): how a model in batch mode sizes and polls its
    batches. A batch holds at most `max_requests` requests and `max_bytes` of them (each at most
    the provider's own limit, its default); the first poll comes `poll_interval` seconds after
    submission and each later one 1.5 times as long after, up to `max_poll_interval`."""

    max_requests: int | None = option(
        None,
        "requests per batch at most, within the provider's batch limit (unset: that limit)",
        min=1,
        max=10_000_000,
    )
    max_bytes: int | None = option(
        None,
        "request bytes per batch at most, within the provider's batch limit (unset: that limit)",
        min=4096, max=1 << 40,
    )  # fmt: skip
    poll_interval: float = option(
        30.0, "seconds from submitting a batch to its first poll", min=0.001, max=86_400
    )
    max_poll_interval: float = option(
        300.0, "the longest wait between polls (each wait 1.5 times the last)", min=0.001,
        max=86_400,
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Defaults:
    """Values every model takes unless it sets its own."""

    # 2.0 is the highest temperature any API takes.
    temperatures: tuple[float, ...] = option(
        (0.0,), "the temperatures to sweep, none twice: one variant each", min=0, max=2.0,
        nonempty=True, answer=True,
    )  # fmt: skip
    top_p: float = option(1.0, "nucleus sampling's top p", min=0, max=1, answer=True)
    max_tokens: int = option(1024, "output tokens per answer at most", min=1, max=10_000_000,
                             answer=True)  # fmt: skip
    stop: tuple[str, ...] = option((), "strings that end an answer", answer=True)
    max_concurrency: int = option(16, "requests in flight at once", min=1, max=100_000)
    # "batch": the model's jobs go through its provider's batch API (see harness.run.batch_lane);
    # this changes price and waiting, never the answer, so it is not part of the variant id.
    mode: Literal["live", "batch"] = option(
        "live", '"live", or "batch": through the provider\'s batch API, where it has one'
    )
    batch: dict[str, Any] = field(
        default_factory=dict, metadata=described("how batches are sized and polled: [models.batch]")
    )


@dataclass(frozen=True, kw_only=True)
class ModelConfig(Defaults):
    """One `[[models]]` entry: a provider instance, its limits, and the temperatures to sweep."""

    name: str = field(
        metadata=described(
            "the label of the model's variant ids, in ledgers and reports; no '|', '@' or '+'",
            answer=True,
        )
    )
    provider: str = field(
        metadata=described("which provider answers (see: python -m harness options)", answer=True)
    )
    model: str = option("", "the model id sent to the provider (empty: the name)", answer=True)
    requests_per_minute: float | None = option(
        None, "the model's request rate limit (unset: unlimited)", min=0.001, max=1e7
    )
    tokens_per_minute: float | None = option(
        None, "the model's token rate limit (unset: unlimited)", min=1, max=1e11
    )
    options: dict[str, Any] = field(
        default_factory=dict,
        metadata=described(
            "the provider's own options: [models.options]; those marked answer-defining in "
            "`harness options PROVIDER` are part of the variant id"
        ),
    )
    # See harness.config.prices.
    price: dict[str, Any] = field(
        default_factory=dict,
        metadata=described("USD per million tokens, replacing the shipped price: [models.price]"),
    )
    cost_per_gpu_hour: float | None = option(
        None, "USD per hour of the lane's wall time (a local model's GPUs)", min=0, max=1e6
    )
    budget_usd: float | None = option(
        None, "the most this model may spend, in USD, its earlier records included", min=0,
        max=1e9,
    )  # fmt: skip
    unpriced_ok: bool = option(False, "under a budget, count an unpriced model's answers as free")
    # Each adapter is a variant of its own (harness.config.adapters).
    adapters: dict[str, Any] = field(
        default_factory=dict,
        metadata=described('a local model\'s LoRA adapters, name = "folder"', answer=True),
    )

    @property
    def model_id(self) -> str:
        """The model id sent to the provider (the entry's name unless `model` is set)."""
        return self.model or self.name

    @property
    def batch_policy(self) -> BatchPolicy:
        """The model's `[models.batch]` table (checked when the config was loaded)."""
        return from_table(BatchPolicy, self.batch, "batch")
