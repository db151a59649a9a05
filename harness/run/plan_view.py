"""How a plan is shown: a rich table with its totals and assumptions, or JSON for scripts."""

from __future__ import annotations

from dataclasses import asdict

import orjson
from rich.console import Console
from rich.table import Table

from harness.config.prices import CHARS_PER_TOKEN
from harness.run.plan import Plan
from harness.terminal import shown


def show_plan(plan: Plan, console: Console) -> None:
    """Print the plan as a table, with its assumptions and totals."""
    table = Table(title=f"plan: {plan.config} (ledger {plan.ledger})")
    for column in ("variant", "pending", "in tok", "out tok", "worst out", "cost", "worst"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for column in ("wall", "estimated from", "price"):
        table.add_column(column, justify="right" if column == "wall" else "left")
    sampled = " sampled" if plan.sampled else ""
    for v in plan.variants:
        table.add_row(
            shown(v.variant),
            f"{v.pending:,}",
            f"{v.input_tokens:,}",
            f"{v.output_tokens:,}",
            f"{v.worst_output_tokens:,}",
            _usd(v.cost_usd),
            _usd(v.worst_cost_usd),
            _duration(v.wall_seconds),
            f"{v.calibrated_on:,}{sampled} answers" if v.calibrated_on else "assumptions",
            "none" if v.price == "unknown" else v.price,
        )
    console.print(table)
    for line in _summary(plan):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _summary(plan: Plan) -> list[str]:
    """The lines under the table: totals, how the figures were made, what they leave out."""
    expected, worst = _usd(plan.known_total()), _usd(plan.known_total(worst=True))
    wall = f"wall time about {_duration(plan.wall_seconds)}"
    if plan.unknown:
        unpriced = dict.fromkeys(v.model for v in plan.variants if v.cost_usd is None)
        total = (
            f"total: unknown ({', '.join(unpriced)}: no price; set [models.price] or "
            f"cost_per_gpu_hour); the rest {expected} expected, {worst} at worst; {wall}"
        )
    else:
        total = f"total: {expected} expected, {worst} at worst; {wall}"
    lines = [total]
    if any(v.pending and not v.calibrated_on for v in plan.variants):
        lines.append(f"assumed (no answers yet): {plan.assumptions.describe()}")
    if any(v.calibrated_on for v in plan.variants):
        lines.append(
            "calibrated on a variant's answers in the ledger: input tokens per character, "
            "output tokens per answer of each prompt category, median latency"
        )
    lines.append("left out: retries, waits a server asks for, model loading; input priced uncached")
    return lines + plan.notes


def plan_json(plan: Plan) -> str:
    """The plan as JSON, for scripts."""
    data = {
        "config": str(plan.config),
        "ledger": str(plan.ledger),
        "sampled": plan.sampled,
        "assumptions": {
            "chars_per_token": CHARS_PER_TOKEN,
            "output_tokens": plan.assumptions.output_tokens,
            "latency_seconds": plan.assumptions.latency,
            "described": plan.assumptions.describe(),
        },
        "variants": [asdict(v) for v in plan.variants],
        "total": {
            "pending": sum(v.pending for v in plan.variants),
            "cost_usd": plan.total(),
            "worst_cost_usd": plan.total(worst=True),
            "known_cost_usd": plan.known_total(),
            "known_worst_cost_usd": plan.known_total(worst=True),
            "unknown_cost": plan.unknown,
            "wall_seconds": plan.wall_seconds,
        },
        "notes": plan.notes,
    }
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def _usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:.4f}" if 0 < value < 1 else f"${value:,.2f}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"
