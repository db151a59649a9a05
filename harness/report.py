"""Summaries computed from the ledger alone: per variant, what is done, failed and still pending."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from harness.ledger import iter_lines


@dataclass
class VariantSummary:
    """One variant's latest state: counts, tokens, latency and active wall time."""

    variant: str
    ok: int = 0
    failed: int = 0
    pending: int | None = 0  # None: not known (a summary of some prompts' records only)
    retried: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latencies: list[float] = field(default_factory=list)  # live answers' request latency
    batch_seconds: list[float] = field(default_factory=list)  # batch answers' batch time
    wall_seconds: float = 0.0
    cost_usd: float = 0.0  # every record's cost, superseded ones too: they were paid for
    cost_unknown: bool = False  # some record's cost is unknown (a model without a price)

    def latency(self, quantile: float) -> float | None:
        """The latency at `quantile` (0.5 for the median) over successful live records."""
        return _quantile(self.latencies, quantile)

    def batch_time(self, quantile: float) -> float | None:
        """The processing time of the batches that carried its successful batch records, at
        `quantile` over those records."""
        return _quantile(self.batch_seconds, quantile)


def _quantile(values: list[float], quantile: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[round(quantile * 100) - 1]


# What a summary keeps of a key's latest record: variant, ok?, input and output tokens, latency
# (a batch record's: its batch's processing time), retried?, batch?
_Latest = tuple[str, bool, int, int, float, bool, bool]


def summarize(path: Path, keeps: Callable[[dict[str, Any]], bool] | None = None) -> Summary:
    """One summary per variant, streamed from the ledger: the latest record per key counts, and
    every run adds its span of wall time. A variant's pending jobs come from the latest run line
    that planned it. Batch lines are passed over; lines of any other shape are skipped and
    counted. Memory holds a few numbers per key, not the records. With `keeps`, only the records
    it keeps count, and pending jobs are not known."""
    latest: dict[str, _Latest] = {}
    costs: dict[str, float | None] = {}  # per variant; None once one record's is unknown
    spans: dict[tuple[str, str], list[float]] = {}
    plan: dict[str, int] = {}
    gpu = _GpuTime()
    summary = Summary([], skipped=0)
    for line in iter_lines(path):
        planned = _plan(line)
        if planned is not None:
            plan.update(planned)
            gpu.read(line)  # type: ignore[arg-type]
            summary.runs += 1
            continue
        if line is not None and line.get("type") == "batch":
            continue
        result = _result(line)
        if result is None:
            summary.skipped += 1
            continue
        if keeps is not None and not keeps(line):  # type: ignore[arg-type]
            continue
        summary.records += 1
        key, kept, run_id, end = result
        latest[key] = kept
        variant, elapsed = kept[0], kept[4]
        _add_cost(costs, variant, line.get("cost_usd"))  # type: ignore[union-attr]
        span = spans.setdefault((variant, run_id), [end - elapsed, end])
        span[0] = min(span[0], end - elapsed)
        span[1] = max(span[1], end)
    summary.variants = _per_variant(latest, spans, plan if keeps is None else None)
    charged = gpu.charges(spans)
    for variant in summary.variants:
        cost = costs.get(variant.variant, 0.0)
        variant.cost_usd = (cost or 0.0) + charged.get(variant.variant, 0.0)
        variant.cost_unknown = cost is None
    return summary


@dataclass
class _GpuTime:
    """What models on your own GPUs cost: `cost_per_gpu_hour` (from the run lines' resolved
    config) for the wall time of their lane in each run, shared by the variants it ran."""

    rates: dict[str, float] = field(default_factory=dict)  # model name -> USD per hour
    names: dict[str, str] = field(default_factory=dict)  # variant id -> model name

    def read(self, line: dict[str, Any]) -> None:
        """Take a run line's hourly rates and variant names."""
        config = line.get("config_resolved")
        models = config.get("models") if isinstance(config, dict) else None
        for model in models if isinstance(models, list) else ():
            rate = model.get("cost_per_gpu_hour") if isinstance(model, dict) else None
            if _is_number(rate) and isinstance(model.get("name"), str):
                self.rates[model["name"]] = float(rate)
        variants = line.get("variants")
        for variant, identity in (variants if isinstance(variants, dict) else {}).items():
            if isinstance(identity, dict) and isinstance(identity.get("name"), str):
                self.names[variant] = identity["name"]

    def charges(self, spans: dict[tuple[str, str], list[float]]) -> dict[str, float]:
        """Per variant, its share of its lane's GPU time in every run."""
        lanes: dict[tuple[str, str], list[Any]] = {}  # (model, run) -> [start, end, variants]
        for (variant, run), (start, end) in spans.items():
            name = self.names.get(variant)
            if name not in self.rates:
                continue
            lane = lanes.setdefault((name, run), [start, end, []])
            lane[0], lane[1] = min(lane[0], start), max(lane[1], end)
            lane[2].append(variant)
        charged: dict[str, float] = {}
        for (name, _run), (start, end, variants) in lanes.items():
            share = (end - start) / 3600 * self.rates[name] / len(variants)
            for variant in variants:
                charged[variant] = charged.get(variant, 0.0) + share
        return charged


def _add_cost(costs: dict[str, float | None], variant: str, cost: Any) -> None:
    if not _is_number(cost):
        costs[variant] = None
    elif variant not in costs or costs[variant] is not None:
        costs[variant] = (costs.get(variant) or 0.0) + cost


def _plan(line: dict[str, Any] | None) -> dict[str, int] | None:
    """A run line's plan (jobs per variant), or None when the line is not a run line."""
    if line is None or line.get("type") != "run":
        return None
    plan = line.get("plan")
    if not isinstance(plan, dict) or not all(_is_int(total) for total in plan.values()):
        return None
    return plan


def _result(line: dict[str, Any] | None) -> tuple[str, _Latest, str, float] | None:
    """(key, what the summary keeps, run id, end time) of a result line, or None when the line
    is not one."""
    if line is None:
        return None
    key, variant, status = line.get("key"), line.get("variant"), line.get("status")
    run_id, elapsed = line.get("run_id", ""), line.get("elapsed_seconds", 0.0)
    retries, tokens = line.get("retry_count", 0), line.get("tokens") or {}
    if not all(isinstance(text, str) for text in (key, variant, status, run_id)):
        return None
    if not (_is_number(elapsed) and _is_int(retries) and isinstance(tokens, dict)):
        return None
    tokens_in, tokens_out = tokens.get("input", 0), tokens.get("output", 0)
    end = _epoch(line.get("timestamp"))
    if end is None or not (_is_int(tokens_in) and _is_int(tokens_out)):
        return None
    batch = line.get("mode") == "batch"
    kept = (variant, status == "ok", tokens_in, tokens_out, float(elapsed), retries > 0, batch)
    return key, kept, run_id, end


def _per_variant(
    latest: dict[str, _Latest],
    spans: dict[tuple[str, str], list[float]],
    plan: dict[str, int] | None,
) -> list[VariantSummary]:
    variants: dict[str, VariantSummary] = {}
    for variant, ok, tokens_in, tokens_out, elapsed, retried, batch in latest.values():
        summary = variants.setdefault(variant, VariantSummary(variant))
        if ok:
            summary.ok += 1
            summary.input_tokens += tokens_in
            summary.output_tokens += tokens_out
            (summary.batch_seconds if batch else summary.latencies).append(elapsed)
        else:
            summary.failed += 1
        summary.retried += retried
    for (variant, _run), (start, end) in spans.items():
        variants.setdefault(variant, VariantSummary(variant)).wall_seconds += end - start
    if plan is None:
        for summary in variants.values():
            summary.pending = None
        plan = {}
    for variant, total in plan.items():
        summary = variants.setdefault(variant, VariantSummary(variant))
        summary.pending = max(0, total - summary.ok - summary.failed)
    return sorted(variants.values(), key=lambda s: s.variant)


def _epoch(timestamp: Any) -> float | None:
    """Seconds since the epoch of an ISO-8601 timestamp, or None."""
    if not isinstance(timestamp, str):
        return None
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class Summary:
    """Every variant's summary; how many run lines and result records were read, and how many
    lines could not be read."""

    variants: list[VariantSummary]
    skipped: int
    runs: int = 0
    records: int = 0


def summary_table(summary: Summary, title: str) -> Table:
    """A rich table of the summaries, one row per variant: p50 and p95 are live requests'
    latency, `batch s` the median processing time of the batches its batch answers came in."""
    table = Table(title=title)
    for column in ("variant", "ok", "failed", "pending", "retried", "in tok", "out tok"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for column in ("p50 s", "p95 s", "batch s", "wall s", "cost"):
        table.add_column(column, justify="right")
    for s in summary.variants:
        table.add_row(
            s.variant,
            f"{s.ok:,}",
            f"[red]{s.failed:,}" if s.failed else "0",
            "-" if s.pending is None else f"{s.pending:,}",
            f"{s.retried:,}",
            f"{s.input_tokens:,}",
            f"{s.output_tokens:,}",
            _seconds(s.latency(0.5)),
            _seconds(s.latency(0.95)),
            _seconds(s.batch_time(0.5), 1),
            f"{s.wall_seconds:,.1f}",
            "unknown" if s.cost_unknown else f"${s.cost_usd:,.4f}",
        )
    table.caption = _total(summary.variants)
    return table


def _total(variants: list[VariantSummary]) -> str:
    """The ledger's total cost, naming the variants whose cost is unknown."""
    known = sum(s.cost_usd for s in variants if not s.cost_unknown)
    unknown = [s.variant for s in variants if s.cost_unknown]
    if not unknown:
        return f"total cost: ${known:,.4f}"
    if len(unknown) == len(variants):
        return "total cost: unknown (no price: set \\[models.price])"
    return f"total cost: ${known:,.4f}, and unknown for {', '.join(unknown)} (no price)"


def _seconds(value: float | None, decimals: int = 3) -> str:
    return "-" if value is None else f"{value:,.{decimals}f}"
