"""Summaries computed from the ledger alone: per variant, what is done, failed and still pending."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich.table import Table

from harness.ledger import iter_lines


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


def summarize(path: Path) -> Summary:
    """One summary per variant, streamed from the ledger: the latest record per key counts, and
    every run adds its span of wall time. Memory holds a few numbers per key, not the records."""
    # key -> (variant, ok?, input tokens, output tokens, latency, retried?) of its latest record
    latest: dict[str, tuple[str, bool, int, int, float, bool]] = {}
    spans: dict[tuple[str, str], list[float]] = {}
    plan: dict[str, int] = {}
    skipped = 0
    for record in iter_lines(path):
        if record is None or (record.get("type") != "run" and "key" not in record):
            skipped += 1
            continue
        if record.get("type") == "run":
            plan = record.get("plan") or {}
            continue
        variant, elapsed = record["variant"], record.get("elapsed_seconds", 0.0)
        tokens = record.get("tokens") or {}
        latest[record["key"]] = (
            variant,
            record["status"] == "ok",
            tokens.get("input", 0),
            tokens.get("output", 0),
            elapsed,
            record.get("retry_count", 0) > 0,
        )
        end = datetime.fromisoformat(record["timestamp"]).timestamp()
        span = spans.setdefault((variant, record["run_id"]), [end - elapsed, end])
        span[0] = min(span[0], end - elapsed)
        span[1] = max(span[1], end)
    variants: dict[str, VariantSummary] = {}
    for variant, ok, tokens_in, tokens_out, elapsed, retried in latest.values():
        summary = variants.setdefault(variant, VariantSummary(variant))
        if ok:
            summary.ok += 1
            summary.input_tokens += tokens_in
            summary.output_tokens += tokens_out
            summary.latencies.append(elapsed)
        else:
            summary.failed += 1
        summary.retried += retried
    for (variant, _run), (start, end) in spans.items():
        variants.setdefault(variant, VariantSummary(variant)).wall_seconds += end - start
    for variant, total in plan.items():
        summary = variants.setdefault(variant, VariantSummary(variant))
        summary.pending = max(0, total - summary.ok - summary.failed)
    return Summary(sorted(variants.values(), key=lambda s: s.variant), skipped)


@dataclass
class Summary:
    """Every variant's summary, and how many ledger lines could not be read."""

    variants: list[VariantSummary]
    skipped: int


def summary_table(summary: Summary, title: str) -> Table:
    """A rich table of the summaries, one row per variant."""
    table = Table(title=title)
    for column in ("variant", "ok", "failed", "pending", "retried", "in tok", "out tok"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for column in ("p50 s", "p95 s", "wall s"):
        table.add_column(column, justify="right")
    for s in summary.variants:
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
