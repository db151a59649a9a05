"""`harness plan`: what a config's pending jobs will cost and how long they will take, before any
request is sent.

Per variant: the jobs not yet done (counted against the resume index as `run` counts them; the
ledger is read, never locked, never written), their expected input and output tokens, the
expected cost and the worst case (every answer `max_tokens` long), and the wall time of the
variant's lane.

Until the ledger holds answers of a variant, its estimates are assumptions, shown with the table:
one input token per 4 characters of prompt (`harness.config.prices.CHARS_PER_TOKEN`), half of
`max_tokens` per answer, and a latency of 1 s plus 20 ms per output token (`--output-tokens` and
`--latency` set the last two). Once it does, they are calibrated on those answers (see
harness.run.calibration): input tokens per character of prompt, output tokens per answer of each
prompt category (the variant's mean for a category not answered yet), and the median latency.

A lane's wall time is set by the slowest of its concurrency (requests x latency /
max_concurrency), its requests_per_minute and its tokens_per_minute; models that hold the device
run one after another, API lanes alongside them. Retries, waits a server asks for and model
loading are left out. Input is priced uncached; a model with `cost_per_gpu_hour` adds its lane's
wall time; a model with neither price has an unknown cost, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.api.provider import Billing
from harness.config.models import ModelConfig
from harness.config.prices import (
    CHARS_PER_TOKEN,
    Price,
    billable,
    gpu_cost_usd,
    model_price,
)
from harness.config.run_config import Variant
from harness.ledger.index import ResumeIndex
from harness.run.calibration import Calibration, Observed, observe
from harness.run.jobs import job_key
from harness.run.prepare import ModelSetup, Prepared

# Before any answer: seconds a request takes, as a fixed part and a part per output token.
LATENCY_BASE, LATENCY_PER_TOKEN = 1.0, 0.02


@dataclass(frozen=True)
class Assumptions:
    """What a variant without answers is assumed to do: output tokens per answer (None: half of
    max_tokens) and seconds per request (None: LATENCY_BASE + LATENCY_PER_TOKEN per token)."""

    output_tokens: int | None = None
    latency: float | None = None

    def output(self, max_tokens: int) -> float:
        """Output tokens per answer."""
        guess = max_tokens / 2 if self.output_tokens is None else self.output_tokens
        return min(guess, max_tokens)

    def seconds(self, output_tokens: float) -> float:
        """Seconds per request that answers `output_tokens` tokens."""
        if self.latency is not None:
            return self.latency
        return LATENCY_BASE + LATENCY_PER_TOKEN * output_tokens

    def describe(self) -> str:
        """The assumptions, in words."""
        output = (
            "half of max_tokens" if self.output_tokens is None else f"{self.output_tokens:,} tokens"
        )
        latency = (
            f"{LATENCY_BASE:g} s + {LATENCY_PER_TOKEN * 1000:g} ms per output token"
            if self.latency is None
            else f"{self.latency:g} s"
        )
        return (
            f"input: a token per {CHARS_PER_TOKEN} characters of prompt; output: {output} per "
            f"answer; latency: {latency}"
        )


@dataclass(frozen=True)
class VariantPlan:
    """One variant's pending work and what it is expected to take. `calibrated_on` counts the
    answers its estimates come from (0: assumptions); `price` says where its price comes from
    ("table", "config", "gpu", "table+gpu", "config+gpu" or "unknown"). Costs are None when
    unknown; the wall time is its lane's, shared with the model's other variants."""

    variant: str
    model: str
    jobs: int
    pending: int
    input_tokens: int
    output_tokens: int
    worst_output_tokens: int
    latency_seconds: float
    wall_seconds: float
    cost_usd: float | None
    worst_cost_usd: float | None
    calibrated_on: int
    price: str


@dataclass(frozen=True)
class Plan:
    """The plan of every variant of a config, and the run's wall time."""

    config: Path
    ledger: Path
    variants: list[VariantPlan]
    wall_seconds: float
    sampled: bool
    assumptions: Assumptions
    notes: list[str] = field(default_factory=list)

    def total(self, worst: bool = False) -> float | None:
        """The cost of every variant; None when one's is unknown (see `known_total`)."""
        return None if self.unknown else self.known_total(worst)

    def known_total(self, worst: bool = False) -> float:
        """The cost of the variants whose cost is known."""
        costs = (v.worst_cost_usd if worst else v.cost_usd for v in self.variants)
        return sum(cost for cost in costs if cost is not None)

    @property
    def unknown(self) -> list[str]:
        """The variants whose cost is unknown."""
        return [v.variant for v in self.variants if v.cost_usd is None]


def make_plan(prepared: Prepared, index: ResumeIndex, assumptions: Assumptions) -> Plan:
    """The plan of a prepared config against its ledger's resume index; sends nothing."""
    categories = sorted({p.category for p in prepared.prompts})
    slots = {category: slot for slot, category in enumerate(categories)}
    rows = [(p.id, p.hash, len(p.text), slots[p.category]) for p in prepared.prompts]
    known = {prompt_id: (prompt_hash, length) for prompt_id, prompt_hash, length, _ in rows}
    variants = {v.id for v in prepared.variants}
    calibration = observe(prepared.reads(), variants, known)
    holds = prepared.holds if prepared.shard is not None else None
    work = _Work(index, rows, categories, prepared.config.samples, prepared.totals(), holds)
    lanes = [_lane(setup, work, calibration, assumptions) for setup in prepared.models]
    live = [lane for lane in lanes if lane.model.mode != "batch"]
    device = sum(lane.wall for lane in live if lane.holds_device)
    alongside = [lane.wall for lane in live if not lane.holds_device]
    notes = [*prepared.notes]
    notes += [
        f"{lane.model.name}: price {lane.price.unconfirmed} ({lane.price.source})"
        for lane in lanes
        if lane.price is not None and lane.price.unconfirmed
    ]
    notes += [
        f"{lane.model.name}: batch mode; its answers come within the provider's batch window "
        "(up to 24 h), left out of the wall time"
        for lane in lanes
        if lane.model.mode == "batch"
    ]
    return Plan(
        config=prepared.config.path,
        ledger=prepared.ledger_path,
        variants=[plan for lane in lanes for plan in lane.variants],
        wall_seconds=max([device, *alongside]),
        sampled=calibration.sampled,
        assumptions=assumptions,
        notes=notes,
    )


@dataclass(frozen=True)
class _Work:
    """The prompts as the counting loop reads them: (id, hash, characters, category slot)."""

    index: ResumeIndex
    rows: list[tuple[str, str, int, int]]
    categories: list[str]
    samples: int
    totals: dict[str, int]  # jobs per variant (in the run's shard)
    holds: Callable[[str], bool] | None  # a shard's test of a key; None: every key

    def pending(self, variant: str, long_chars: float) -> tuple[list[int], list[int]]:
        """A variant's jobs not yet done, and their prompts' characters, by slot: a category's
        slot times two, plus one for prompts longer than `long_chars` characters."""
        counts = [0] * (2 * len(self.categories))
        chars = [0] * (2 * len(self.categories))
        answered = self.index.answered.get  # what `is_done` asks, without a call per job
        holds = self.holds
        for sample in range(self.samples):
            for prompt_id, prompt_hash, length, category in self.rows:
                key = job_key(variant, prompt_id, sample)
                if answered(key) != prompt_hash and (holds is None or holds(key)):
                    at = 2 * category + (length > long_chars)
                    counts[at] += 1
                    chars[at] += length
        return counts, chars


@dataclass
class _Lane:
    model: ModelConfig
    price: Price | None
    holds_device: bool
    wall: float
    variants: list[VariantPlan]


@dataclass(frozen=True)
class _Estimate:
    """A variant's pending work: jobs, tokens, worst output, busy seconds (latency summed over
    its jobs, as expected and at worst) and token costs (None: unpriced)."""

    pending: int
    input: float
    output: float
    worst_output: float
    latency: float
    busy: float
    worst_busy: float
    cost: float | None
    worst_cost: float | None
    calibrated_on: int


def _lane(
    setup: ModelSetup, work: _Work, calibration: Calibration, assumptions: Assumptions
) -> _Lane:
    """Every variant of one model: estimates, then the lane's wall time and GPU cost."""
    model, price = setup.model, model_price(setup.model)
    billing = setup.provider_cls.billing
    estimates = [
        _estimate(v, work, calibration.variants.get(v.id), price, billing, assumptions)
        for v in setup.variants
    ]
    pending, busy = sum(e.pending for e in estimates), sum(e.busy for e in estimates)
    tokens = sum(e.input + e.output for e in estimates)
    worst_tokens = sum(e.input + e.worst_output for e in estimates)
    wall = _wall(model, pending, busy, tokens)
    worst_wall = _wall(model, pending, sum(e.worst_busy for e in estimates), worst_tokens)
    rate = model.cost_per_gpu_hour
    plans = []
    for variant, e in zip(setup.variants, estimates, strict=True):
        share = e.busy / busy if busy else 0.0
        gpu = gpu_cost_usd(rate, wall) * share if rate is not None else None
        worst_gpu = gpu_cost_usd(rate, worst_wall) * share if rate is not None else None
        plans.append(
            VariantPlan(
                variant=variant.id,
                model=model.name,
                jobs=work.totals[variant.id],
                pending=e.pending,
                input_tokens=round(e.input),
                output_tokens=round(e.output),
                worst_output_tokens=round(e.worst_output),
                latency_seconds=e.latency,
                wall_seconds=wall,
                cost_usd=_add(e.cost, gpu, e.pending),
                worst_cost_usd=_add(e.worst_cost, worst_gpu, e.pending),
                calibrated_on=e.calibrated_on,
                price=_price_label(price, rate),
            )
        )
    holds_device = setup.provider_cls.holds_device
    return _Lane(model, price, holds_device, wall, plans)


def _estimate(
    variant: Variant,
    work: _Work,
    observed: Observed | None,
    price: Price | None,
    billing: Billing,
    assumptions: Assumptions,
) -> _Estimate:
    """One variant's pending work, calibrated on its answers where the ledger has some."""
    max_tokens = variant.sampling.max_tokens
    fallback = assumptions.output(max_tokens)
    per_char, outputs, latency = _basis(observed, work.categories, billing, fallback)
    long = price.long_context if price is not None else None
    counts, chars = work.pending(variant.id, long.above / per_char if long else math.inf)
    tokens_in = tokens_out = worst_out = cost = worst_cost = 0.0
    for at, count in enumerate(counts):
        if not count:
            continue
        out = outputs[at // 2]
        given, expected, worst = chars[at] * per_char, count * out, count * max(out, max_tokens)
        tokens_in += given
        tokens_out += expected
        worst_out += worst
        if price is not None:
            rates = long.rates if long is not None and at % 2 else price.rates
            cost += rates.usd(input=given, output=expected)
            worst_cost += rates.usd(input=given, output=worst)
    pending = sum(counts)
    if latency is None:
        latency = assumptions.seconds(tokens_out / pending if pending else fallback)
    # A longer answer takes proportionally longer to generate.
    stretch = worst_out / tokens_out if tokens_out else 1.0
    return _Estimate(
        pending=pending,
        input=tokens_in,
        output=tokens_out,
        worst_output=worst_out,
        latency=latency,
        busy=pending * latency,
        worst_busy=pending * latency * stretch,
        cost=cost if price is not None else None,
        worst_cost=worst_cost if price is not None else None,
        calibrated_on=observed.answers if observed is not None else 0,
    )


def _basis(
    observed: Observed | None, categories: Sequence[str], billing: Billing, fallback: float
) -> tuple[float, list[float], float | None]:
    """Input tokens per character, output tokens per answer of each category, and seconds per
    request (None: to be assumed), from a variant's answers where it has some."""
    per_char = 1 / CHARS_PER_TOKEN
    if observed is None or not observed.answers:
        return per_char, [fallback] * len(categories), None
    prompted = billable(observed.prompted.tokens, billing)
    if prompted is not None and observed.prompt_chars:
        per_char = prompted.prompt / observed.prompt_chars
    return per_char, _outputs(observed, categories, billing, fallback), observed.latency_p50()


def _outputs(
    observed: Observed, categories: Sequence[str], billing: Billing, fallback: float
) -> list[float]:
    """Mean output tokens per answer of each category: the category's own, else the variant's."""
    means: dict[str, float] = {}
    total = answers = 0
    for category, tally in observed.by_category.items():
        bill = billable(tally.tokens, billing)
        if bill is None or not tally.answers:
            continue
        means[category] = bill.output / tally.answers
        total += bill.output
        answers += tally.answers
    overall = total / answers if answers else fallback
    return [means.get(category, overall) for category in categories]


def _wall(model: ModelConfig, jobs: int, busy: float, tokens: float) -> float:
    """A lane's wall time: the slowest of its concurrency, requests/min and tokens/min."""
    bounds = [busy / model.max_concurrency]
    if model.requests_per_minute:
        bounds.append(jobs * 60 / model.requests_per_minute)
    if model.tokens_per_minute:
        bounds.append(tokens * 60 / model.tokens_per_minute)
    return max(bounds)


def _add(tokens: float | None, gpu: float | None, pending: int) -> float | None:
    """A variant's cost: its tokens' and its GPU time's; unknown when neither is priced (but
    nothing pending costs nothing)."""
    if not pending:
        return 0.0
    if tokens is None and gpu is None:
        return None
    return (tokens or 0.0) + (gpu or 0.0)


def _price_label(price: Price | None, rate: float | None) -> str:
    parts = [] if price is None else ["config" if price.source == "config" else "table"]
    if rate is not None:
        parts.append("gpu")
    return "+".join(parts) or "unknown"
