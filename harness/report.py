"""Summaries computed from the ledger alone: per variant, what is done, failed and still pending."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.table import Table

from harness.ledger import LedgerContents


@dataclass
class VariantSummary:
    """One variant's latest state: counts, tokens, latency and active wall time."""

    variant: str
    ok: int = 0
    failed: int = 0
    pending: int = 0
    retried: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latencies: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0

    def latency(self, quantile: float) -> float | None:
        """The latency at `quantile` (0.5 for the median) over successful records."""
        if not self.latencies:
            return None
        if len(self.latencies) == 1:
            return self.latencies[0]
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[round(quantile * 100) - 1]


def summarize(contents: LedgerContents) -> list[VariantSummary]:
    """One summary per variant; the latest record per key counts, every run adds wall time."""
    latest: dict[str, dict[str, Any]] = {}
    spans: dict[tuple[str, str], list[float]] = {}
    for record in contents.records:
        latest[record["key"]] = record
        end = datetime.fromisoformat(record["timestamp"]).timestamp()
        span = spans.setdefault((record["variant"], record["run_id"]), [end, end])
        span[0] = min(span[0], end - record.get("elapsed_seconds", 0.0))
        span[1] = max(span[1], end)
    summaries: dict[str, VariantSummary] = defaultdict(lambda: VariantSummary(""))
    for record in latest.values():
        summary = summaries[record["variant"]]
        summary.variant = record["variant"]
        if record["status"] == "ok":
            summary.ok += 1
            tokens = record.get("tokens") or {}
            summary.input_tokens += tokens.get("input", 0)
            summary.output_tokens += tokens.get("output", 0)
            summary.latencies.append(record.get("elapsed_seconds", 0.0))
        else:
            summary.failed += 1
        summary.retried += record.get("retry_count", 0) > 0
    for (variant, _run), (start, end) in spans.items():
        summaries[variant].wall_seconds += end - start
    plan = contents.runs[-1].get("plan", {}) if contents.runs else {}
    for variant, total in plan.items():
        summary = summaries[variant]
        summary.variant = variant
        summary.pending = max(0, total - summary.ok - summary.failed)
    return sorted(summaries.values(), key=lambda s: s.variant)


def summary_table(summaries: list[VariantSummary], title: str) -> Table:
    """A rich table of the summaries, one row per variant."""
    table = Table(title=title)
    for column in ("variant", "ok", "failed", "pending", "retried", "in tok", "out tok"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for column in ("p50 s", "p95 s", "wall s"):
        table.add_column(column, justify="right")
    for s in summaries:
        table.add_row(
            s.variant,
            f"{s.ok:,}",
            f"[red]{s.failed:,}" if s.failed else "0",
            f"{s.pending:,}",
            f"{s.retried:,}",
            f"{s.input_tokens:,}",
            f"{s.output_tokens:,}",
            _seconds(s.latency(0.5)),
            _seconds(s.latency(0.95)),
            f"{s.wall_seconds:,.1f}",
        )
    return table


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
