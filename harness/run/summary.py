"""The status summary (`status`, the `report` page's overview): per variant, what is done,
failed and still pending, computed from the ledger alone, and its table (also the one a run
prints when it ends: see `harness.run.closing_summary`). What a summary holds and how a line
adds to it is `harness.run.tally`.

Two passes, so memory holds a few numbers per variant rather than something per key: the first
notes every record's key fingerprint (8 bytes each; see `harness.ledger.sets` for why Python's
hash of a key is safe to compare within a process) and finds the keys with more than one record;
the second adds up every record of a key with one record at once, and keeps the latest of the
others (the few keys answered again) until the end. A fingerprint two keys share only sends both
to the exact path.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from rich.table import Table
from rich.text import Text

from harness.bulk import collector_paused
from harness.ledger.lines import Source, iter_lines, source_lines
from harness.run.tally import Latest, Summary, Tally, VariantSummary
from harness.terminal import shown


def summarize(source: Source, keeps: Callable[[dict[str, Any]], bool] | None = None) -> Summary:
    """One summary per variant, streamed from the ledger (a file, or several read as one): the
    latest record per key counts, and every run adds its span of wall time. A variant's pending
    jobs come from the latest run line that planned it (see `harness.run.tally`). Batch lines
    are passed over and counted; blank lines are passed over; lines of any other shape are
    skipped and counted. With `keeps`, only the records it keeps count, and pending jobs are not
    known."""
    repeated = _repeated_keys(source)
    latest: dict[str, Latest] = {}  # the keys with more than one record
    tally = Tally(keeps)
    with collector_paused():
        for line in iter_lines(source):
            found = tally.read(line)
            if found is None:
                continue
            key, kept = found
            if hash(key) in repeated:
                latest[key] = kept
            else:
                tally.add(kept)
    for kept in latest.values():
        tally.add(kept)
    return tally.finish()


def _repeated_keys(source: Source) -> set[int]:
    """The fingerprints of the keys that more than one line names (see the module docstring):
    a success or failure read from its head, any other line parsed."""
    seen = array("q")
    loads = orjson.loads
    for line in source_lines(source):
        mark = line.find(b',"status":"') if line.startswith(b'{"key":') else -1
        try:
            key = loads(line[7:mark]) if mark > 0 else _key(line)
        except orjson.JSONDecodeError:
            key = _key(line)
        if isinstance(key, str):
            seen.append(hash(key))
    fingerprints = np.frombuffer(seen, np.int64)  # a view of `seen`: sorted in place
    fingerprints.sort()
    return set(fingerprints[1:][fingerprints[1:] == fingerprints[:-1]].tolist())


def _key(line: bytes) -> Any:
    """The key of a line parsed whole (None for a line that has none)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return obj.get("key") if isinstance(obj, dict) else None


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
            shown(s.variant),
            f"{s.ok:,}",
            Text(f"{s.failed:,}", style="red") if s.failed else "0",
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
        return "total cost: unknown (no price: set [models.price])"
    return f"total cost: ${known:,.4f}, and unknown for {', '.join(unknown)} (no price)"


def _seconds(value: float | None, decimals: int = 3) -> str:
    return "-" if value is None else f"{value:,.{decimals}f}"
