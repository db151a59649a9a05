"""What a summary of a ledger holds (`Summary`: one `VariantSummary` per variant) and how a
ledger's lines add up to one (`Tally`): the counts of every key's latest record, the cost and
span of every record, and what the run lines say of plans, GPU rates and prices. Shared by the
status summary (`harness.run.summary`) and a run's closing summary
(`harness.run.closing_summary`), which differ in how they find the keys answered more than once.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

import numpy as np

from harness.config.prices import price_for


@dataclass
class Summary:
    """Every variant's summary; how many run lines and result records were read, and how many
    lines could not be read; the config file the last run that named one was run with."""

    variants: list[VariantSummary]
    skipped: int
    runs: int = 0
    records: int = 0
    batch_lines: int = 0
    last_config: str | None = None


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
    latencies: array[float] = field(default_factory=lambda: array("d"))  # live answers'
    batch_seconds: array[float] = field(default_factory=lambda: array("d"))  # batch answers'
    wall_seconds: float = 0.0
    cost_usd: float = 0.0  # every record's cost, superseded ones too: they were paid for
    cost_unknown: bool = False  # some record's cost is unknown (a model without a price)
    # (batch?, latency) of the records `remove`d, until `drop_removed` takes them out
    _removed: list[tuple[bool, float]] = field(default_factory=list, repr=False)

    def latency(self, quantile: float) -> float | None:
        """The latency at `quantile` (0.5 for the median) over successful live records."""
        return _quantile(self.latencies, quantile)

    def batch_time(self, quantile: float) -> float | None:
        """The processing time of the batches that carried its successful batch records, at
        `quantile` over those records."""
        return _quantile(self.batch_seconds, quantile)

    def add(self, kept: Latest) -> None:
        """Count a key's latest record."""
        _, ok, tokens_in, tokens_out, elapsed, retried, batch = kept
        if ok:
            self.ok += 1
            self.input_tokens += tokens_in
            self.output_tokens += tokens_out
            (self.batch_seconds if batch else self.latencies).append(elapsed)
        else:
            self.failed += 1
        self.retried += retried

    def remove(self, kept: Latest) -> None:
        """Take back what `add` counted of a record a later one of its key superseded."""
        _, ok, tokens_in, tokens_out, elapsed, retried, batch = kept
        if ok:
            self.ok -= 1
            self.input_tokens -= tokens_in
            self.output_tokens -= tokens_out
            self._removed.append((batch, elapsed))
        else:
            self.failed -= 1
        self.retried -= retried

    def drop_removed(self) -> None:
        """Take the latencies of the records `remove`d out of the arrays (once, at the end)."""
        for batch in (False, True):
            gone = sorted(elapsed for was_batch, elapsed in self._removed if was_batch == batch)
            if gone:
                values = self.batch_seconds if batch else self.latencies
                kept = np.sort(np.frombuffer(values, np.float64))
                at = np.searchsorted(kept, gone)
                at += np.arange(len(gone)) - np.searchsorted(gone, gone)  # repeats: the next
                values[:] = array("d", np.delete(kept, at).tobytes())
        self._removed.clear()


def _quantile(values: array[float], quantile: float) -> float | None:
    """Linear interpolation between the closest ranks (`statistics.quantiles`' "inclusive")."""
    if not values:
        return None
    return float(np.quantile(np.frombuffer(values, np.float64), quantile))


# What a summary keeps of a key's latest record: variant, ok?, input and output tokens, latency
# (a batch record's: its batch's processing time), retried?, batch?
Latest = tuple[str, bool, int, int, float, bool, bool]


class Tally:
    """What a summary adds up line by line: the counts of every key's latest record (`add`, and
    `remove` for one found superseded later), the cost and span of every record, the run lines'
    plans and prices, and the prompt sets they sent (`prompt_sets`: where each was read)."""

    def __init__(self, keeps: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.keeps = keeps
        self.variants: dict[str, VariantSummary] = {}
        self.costs: dict[str, float | None] = {}  # per variant; None once one record's is unknown
        self.spans: dict[tuple[str, str], list[float]] = {}
        self.plans = _Plans()
        self.prompt_sets: set[str] = set()
        self.gpu = _GpuTime()
        self.priced = _Priced()
        self.summary = Summary([], skipped=0)

    def read(self, line: dict[str, Any] | None) -> tuple[str, Latest] | None:
        """Take a parsed line (None: unreadable); a result record's key and what its counts
        would be as its key's latest, for the caller to `add` (None for any other line)."""
        summary = self.summary
        if line is None:
            summary.skipped += 1
            return None
        if self.plans.read(line):
            self.gpu.read(line)
            self.priced.read(line)
            prompts = line.get("prompts")
            if isinstance(prompts, dict) and isinstance(prompts.get("path"), str):
                self.prompt_sets.add(prompts["path"])
            summary.runs += 1
            if isinstance(line.get("config_path"), str):
                summary.last_config = line["config_path"]
            return None
        if line.get("type") == "batch":
            summary.batch_lines += 1
            return None
        result = result_of(line)
        if result is None:
            summary.skipped += 1
            return None
        if self.keeps is not None and not self.keeps(line):
            return None
        summary.records += 1
        key, kept, run_id, end = result
        variant, elapsed = kept[0], kept[4]
        _add_cost(self.costs, variant, line.get("cost_usd"))
        span = self.spans.setdefault((variant, run_id), [end - elapsed, end])
        span[0] = min(span[0], end - elapsed)
        span[1] = max(span[1], end)
        return key, kept

    def add(self, kept: Latest) -> None:
        """Count a key's latest record."""
        variant_summary(self.variants, kept[0]).add(kept)

    def remove(self, kept: Latest) -> None:
        """Take back the counts of a record `add`ed that a later one of its key superseded."""
        variant_summary(self.variants, kept[0]).remove(kept)

    def finish(self) -> Summary:
        """The summary of every line taken."""
        summary = self.summary
        base = self.plans.pending_base() if self.keeps is None else None
        summary.variants = _per_variant(self.variants, self.spans, base)
        charged = self.gpu.charges(self.spans)
        for variant in summary.variants:
            variant.drop_removed()
            name = variant.variant
            # no record yet: $0 when its model has a price, else as unknown as its records will be
            cost = self.costs.get(name, 0.0 if self.priced.variants.get(name, True) else None)
            variant.cost_usd = (cost or 0.0) + charged.get(name, 0.0)
            variant.cost_unknown = cost is None
        return summary


def variant_summary(variants: dict[str, VariantSummary], variant: str) -> VariantSummary:
    """The summary of `variant` in `variants`, added when it has none yet."""
    found = variants.get(variant)
    if found is None:
        found = variants[variant] = VariantSummary(variant)
    return found


@dataclass
class _Plans:
    """What the run lines planned, per variant: the latest plan of the jobs a run ran (its
    shard's, for a sharded run) and the latest plan of all jobs (every shard's together).
    Pending jobs are counted against a shard's plan when every run line read is of that one
    shard (its own ledger), else against all jobs (a shard tree, or a merged ledger)."""

    own: dict[str, int] = field(default_factory=dict)
    whole: dict[str, int] = field(default_factory=dict)
    # (index, count) of each shard whose run lines were read; None: unsharded, or a shard whose
    # index or count is not an integer (its jobs are counted against all jobs)
    shards: set[tuple[int, int] | None] = field(default_factory=set)

    def read(self, line: dict[str, Any]) -> bool:
        """Take a run line's plans; False when the line is not a run line."""
        if line.get("type") != "run":
            return False
        plan = line.get("plan")
        if not _is_plan(plan):
            return False
        shard = line.get("shard")
        unsharded = shard.get("plan_unsharded") if isinstance(shard, dict) else None
        if isinstance(shard, dict) and _is_plan(unsharded):
            index, count = shard.get("index"), shard.get("count")
            self.shards.add((index, count) if _is_int(index) and _is_int(count) else None)
            self.whole.update(unsharded)
        else:
            self.shards.add(None)
            self.whole.update(plan)
        self.own.update(plan)
        return True

    def pending_base(self) -> dict[str, int]:
        """The jobs per variant that pending jobs are counted against."""
        one_shard = len(self.shards) == 1 and None not in self.shards
        return self.own if one_shard else self.whole


def _is_plan(plan: object) -> TypeGuard[dict[str, int]]:
    """Whether a run line's plan is one: jobs per variant (a JSON object's keys are strings)."""
    return isinstance(plan, dict) and all(_is_int(total) for total in plan.values())


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


@dataclass
class _Priced:
    """Whether each variant a run line planned has a price (its model's `[models.price]`, the
    shipped table's, or a `cost_per_gpu_hour`), as the latest run line's config says: the cost
    of a variant with no record yet is $0 when it has, unknown (never $0) when it has not."""

    variants: dict[str, bool] = field(default_factory=dict)

    def read(self, line: dict[str, Any]) -> None:
        """Take a run line's variants and whether their models are priced."""
        config = line.get("config_resolved")
        models = config.get("models") if isinstance(config, dict) else None
        by_name = {
            model["name"]: model
            for model in (models if isinstance(models, list) else ())
            if isinstance(model, dict) and isinstance(model.get("name"), str)
        }
        variants = line.get("variants")
        for variant, identity in (variants if isinstance(variants, dict) else {}).items():
            if isinstance(identity, dict):
                self.variants[variant] = _has_price(identity, by_name.get(identity.get("name")))


def _has_price(identity: dict[str, Any], model: dict[str, Any] | None) -> bool:
    """Whether a variant's model (its run line's config entry, if found) has a price."""
    model = model or {}
    if model.get("price") or _is_number(model.get("cost_per_gpu_hour")):
        return True
    provider, model_id = identity.get("provider"), identity.get("model")
    if not (isinstance(provider, str) and isinstance(model_id, str)):
        return False
    return price_for(provider, model_id) is not None


def _add_cost(costs: dict[str, float | None], variant: str, cost: Any) -> None:
    if not _is_number(cost):
        costs[variant] = None
    elif variant not in costs or costs[variant] is not None:
        costs[variant] = (costs.get(variant) or 0.0) + cost


def result_of(line: dict[str, Any] | None) -> tuple[str, Latest, str, float] | None:
    """(key, what the summary keeps, run id, end time) of a result line, or None when the line
    is not one."""
    if line is None:
        return None
    get = line.get
    key, variant, status, run_id = get("key"), get("variant"), get("status"), get("run_id", "")
    elapsed, retries, tokens = get("elapsed_seconds", 0.0), get("retry_count", 0), get("tokens")
    if tokens is None:
        tokens = {}
    if not (type(key) is str and type(variant) is str and type(status) is str):
        return None
    if not (type(run_id) is str and type(elapsed) in _NUMBER and type(retries) is int):
        return None
    if type(tokens) is not dict:
        return None
    tokens_in, tokens_out = tokens.get("input", 0), tokens.get("output", 0)
    end = epoch(get("timestamp"))
    if end is None or not (type(tokens_in) is int and type(tokens_out) is int):
        return None
    batch = get("mode") == "batch"
    kept = (variant, status == "ok", tokens_in, tokens_out, float(elapsed), retries > 0, batch)
    return key, kept, run_id, end


_NUMBER = frozenset((int, float))  # exact types: a JSON true is no number here


def _per_variant(
    variants: dict[str, VariantSummary],
    spans: dict[tuple[str, str], list[float]],
    plan: dict[str, int] | None,
) -> list[VariantSummary]:
    for (variant, _run), (start, end) in spans.items():
        variant_summary(variants, variant).wall_seconds += end - start
    if plan is None:
        for summary in variants.values():
            summary.pending = None
        plan = {}
    for variant, total in plan.items():
        summary = variant_summary(variants, variant)
        summary.pending = max(0, total - summary.ok - summary.failed)
    return sorted(variants.values(), key=lambda s: s.variant)


def epoch(timestamp: Any) -> float | None:
    """Seconds since the epoch of an ISO-8601 timestamp, or None. The harness's own form
    (`2025-11-12T10:01:23.412Z`) is read through a cache of whole seconds: a million records
    share a few hundred of them."""
    if not isinstance(timestamp, str):
        return None
    ours = len(timestamp) == 24 and timestamp[19] == "." and timestamp[23] == "Z"
    if ours and timestamp[20:23].isdigit():
        second = EPOCH_SECONDS.get(timestamp[:19])
        if second is not None:
            return second + int(timestamp[20:23]) / 1000
    try:
        moment = datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None
    if ours:
        if len(EPOCH_SECONDS) > 100_000:
            EPOCH_SECONDS.clear()
        EPOCH_SECONDS[timestamp[:19]] = datetime.fromisoformat(timestamp[:19] + "Z").timestamp()
    return moment


# "2025-11-12T10:01:23" -> its epoch seconds: `epoch`'s cache, which the closing summary's tally
# reads inline (cleared, never replaced, so that every importer holds the one dict)
EPOCH_SECONDS: dict[str, float] = {}


def _is_int(value: object) -> TypeGuard[int]:
    """Whether a JSON value is an integer (true and false are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    """Whether a JSON value is a number (true and false are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
