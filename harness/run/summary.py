"""Summaries computed from the ledger alone: per variant, what is done, failed and still pending.

Two passes, so memory holds a few numbers per variant rather than something per key: the first
notes every record's key fingerprint (8 bytes each; see `harness.ledger.sets` for why Python's
hash of a key is safe to compare within a process) and finds the keys with more than one record;
the second adds up every record of a key with one record at once, and keeps the latest of the
others (the few keys answered again) until the end. A fingerprint two keys share only sends both
to the exact path.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import numpy as np
import orjson
from rich.table import Table
from rich.text import Text

from harness.bulk import collector_paused
from harness.config.prices import price_for
from harness.ledger.file import Source, head_key, iter_lines, parse_line, source_lines
from harness.ledger.record import Amount, Count, Mode, Status
from harness.terminal import shown


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

    def add(self, kept: _Latest) -> None:
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

    def remove(self, kept: _Latest) -> None:
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
_Latest = tuple[str, bool, int, int, float, bool, bool]


def summarize(source: Source, keeps: Callable[[dict[str, Any]], bool] | None = None) -> Summary:
    """One summary per variant, streamed from the ledger (a file, or several read as one): the
    latest record per key counts, and every run adds its span of wall time. A variant's pending
    jobs come from the latest run line that planned it (see `_Plans`). Batch lines are passed
    over and counted; lines of any other shape are skipped and counted. With `keeps`, only the
    records it keeps count, and pending jobs are not known."""
    repeated = _repeated_keys(source)
    latest: dict[str, _Latest] = {}  # the keys with more than one record
    tally = _Tally(keeps)
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


class _Tally:
    """What a summary adds up line by line: the counts of every key's latest record (`add`, and
    `remove` for one found superseded later), the cost and span of every record, the run lines'
    plans and prices."""

    def __init__(self, keeps: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.keeps = keeps
        self.variants: dict[str, VariantSummary] = {}
        self.costs: dict[str, float | None] = {}  # per variant; None once one record's is unknown
        self.spans: dict[tuple[str, str], list[float]] = {}
        self.plans = _Plans()
        self.gpu = _GpuTime()
        self.priced = _Priced()
        self.summary = Summary([], skipped=0)

    def read(self, line: dict[str, Any] | None) -> tuple[str, _Latest] | None:
        """Take a parsed line (None: unreadable); a result record's key and what its counts
        would be as its key's latest, for the caller to `add` (None for any other line)."""
        summary = self.summary
        if self.plans.read(line):
            self.gpu.read(line)  # type: ignore[arg-type]
            self.priced.read(line)  # type: ignore[arg-type]
            summary.runs += 1
            return None
        if line is not None and line.get("type") == "batch":
            summary.batch_lines += 1
            return None
        result = _result(line)
        if result is None:
            summary.skipped += 1
            return None
        if self.keeps is not None and not self.keeps(line):  # type: ignore[arg-type]
            return None
        summary.records += 1
        key, kept, run_id, end = result
        variant, elapsed = kept[0], kept[4]
        _add_cost(self.costs, variant, line.get("cost_usd"))  # type: ignore[union-attr]
        span = self.spans.setdefault((variant, run_id), [end - elapsed, end])
        span[0] = min(span[0], end - elapsed)
        span[1] = max(span[1], end)
        return key, kept

    def take_result(self, line: ResultFields) -> str | None:
        """`read` then `add` for a result line parsed by `result_fields` (in a tally that
        `keeps` all), inlined: a run reads a million of them. Returns its key (None: skipped)."""
        timestamp = line.timestamp
        second = (
            _SECONDS.get(timestamp[:19])
            if type(timestamp) is str and len(timestamp) == 24 and timestamp[19] == "."
            else None
        )
        if second is not None and timestamp[23] == "Z" and timestamp[20:23].isdigit():  # type: ignore[index]
            end = second + int(timestamp[20:23]) / 1000  # type: ignore[index]
        else:
            found = _epoch(timestamp)
            if found is None:
                self.summary.skipped += 1
                return None
            end = found
        self.summary.records += 1
        variant, run_id, elapsed, cost = (
            line.variant,
            line.run_id,
            line.elapsed_seconds,
            line.cost_usd,
        )
        costs = self.costs
        if cost is None:
            costs[variant] = None
        else:
            held = costs.get(variant, 0.0)
            if held is not None:
                costs[variant] = held + cost
        start = end - elapsed
        span = self.spans.get((variant, run_id))
        if span is None:
            self.spans[variant, run_id] = [start, end]
        else:
            if start < span[0]:
                span[0] = start
            if end > span[1]:
                span[1] = end
        counts = self.variants.get(variant) or _variant(self.variants, variant)
        if line.status == "ok":
            counts.ok += 1
            tokens = line.tokens
            if tokens:
                counts.input_tokens += tokens.get("input", 0)
                counts.output_tokens += tokens.get("output", 0)
            (counts.batch_seconds if line.mode == "batch" else counts.latencies).append(elapsed)
        else:
            counts.failed += 1
        if line.retry_count:
            counts.retried += 1
        return line.key

    def add(self, kept: _Latest) -> None:
        """Count a key's latest record."""
        _variant(self.variants, kept[0]).add(kept)

    def remove(self, kept: _Latest) -> None:
        """Take back the counts of a record `add`ed that a later one of its key superseded."""
        _variant(self.variants, kept[0]).remove(kept)

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


class ClosingSummary:
    """The summary a run prints when it ends, built from one reading of its ledger and from the
    lines it appends (`read`, each with its place in the file), with no second reading: every
    result counts as its key's latest when it is read; at the end the keys named more than once
    are found from their fingerprints (see the module docstring), and the counts of the records
    they superseded are taken back, each read again from its place (a few lines: those of the
    jobs a run did again)."""

    def __init__(self) -> None:
        self._tally = _Tally()
        self._fingerprints = array("q")
        self._places = array("q")
        self.paid: dict[str, float] = {}  # USD per model name of every line read (`count_spend`)

    def read_all(self, lines: Iterable[tuple[bytes, bool]]) -> int:
        """`read` a ledger's lines from its start, each with whether its checksum was found to
        hold (see `harness.ledger.file.index_lines`); returns the bytes read. A result whose
        checksum holds, nearly every line, is taken inline: a run reads a million of them."""
        decode, take, paid = _RESULT_FIELDS.decode, self._tally.take_result, self.paid
        fingerprint, at = self._fingerprints.append, self._places.append
        place = 0
        for line, checked in lines:
            if not checked:
                self.read(line, place)
                place += len(line)
                continue
            try:
                fields = decode(line)
            except msgspec.DecodeError:
                self._tally.summary.skipped += 1  # as `read` counts it
                place += len(line)
                continue
            cost = fields.cost_usd
            if cost:
                name = model_name(fields.key)
                paid[name] = paid.get(name, 0.0) + cost
            key = take(fields)
            if key is not None:
                fingerprint(hash(key))
                at(place)
            place += len(line)
        return place

    def read(
        self, line: bytes, place: int, checked: bool = False
    ) -> ResultFields | dict[str, Any] | None:
        """Take a ledger line found at `place` (`checked`: see `result_fields`); returns it
        parsed."""
        parsed = result_fields(line, checked)
        count_spend(self.paid, parsed)
        if type(parsed) is ResultFields:
            key = self._tally.take_result(parsed)
        else:
            found = self._tally.read(parsed)  # type: ignore[arg-type]  # a dict or None
            key = None if found is None else found[0]
            if found is not None:
                self._tally.add(found[1])
        if key is not None:
            self._fingerprints.append(hash(key))
            self._places.append(place)
        return parsed

    def finish(self, path: Path) -> Summary:
        """The summary of every line read, those superseded read again from `path`."""
        with path.open("rb") as file:
            for places in self._repeated_places():
                seen: dict[str, _Latest] = {}
                for place in places:
                    result = _any_result(result_fields(_line_at(file, place)))
                    if result is None:  # the file changed under the run: count it as read
                        continue
                    key, kept = result[0], result[1]
                    if key in seen:
                        self._tally.remove(seen[key])
                    seen[key] = kept
        return self._tally.finish()

    def _repeated_places(self) -> list[list[int]]:
        """The places of the results whose key's fingerprint more than one result has, grouped
        by fingerprint, each group in file order."""
        fingerprints = np.frombuffer(self._fingerprints, np.int64)
        if fingerprints.size < 2:
            return []
        order = np.argsort(fingerprints, kind="stable")
        ordered = fingerprints[order]
        same = ordered[1:] == ordered[:-1]
        if not same.any():
            return []
        places = np.frombuffer(self._places, np.int64)
        groups: dict[int, list[int]] = {}
        for at in np.flatnonzero(same).tolist():
            for i in (order[at], order[at + 1]):
                group = groups.setdefault(int(fingerprints[i]), [])
                if int(places[i]) not in group:
                    group.append(int(places[i]))
        return [sorted(group) for group in groups.values()]


def _line_at(file: BinaryIO, place: int) -> bytes:
    """The line that starts at byte `place` of a file, read alone (a record is a kB or two)."""
    line, size = b"", 2048
    while True:
        chunk = os.pread(file.fileno(), size, place + len(line))
        end = chunk.find(b"\n")
        if end >= 0 or not chunk:
            return line + chunk[: end + 1] if end >= 0 else line
        line += chunk
        size *= 2


class ResultFields(msgspec.Struct, frozen=True, gc=False):
    """A result line as the summary and a budget read it: the fields they take, checked as
    `RecordLine` checks them (a field left out reads as `RecordLine`'s reader finds it missing).
    Untracked by the cycle collector (`gc=False`: it holds no cycle), a quarter faster to make."""

    key: str
    status: Status
    variant: str
    prompt_id: str
    sample: Count
    run_id: str = ""
    tokens: dict[str, Count] | None = None
    cost_usd: Amount | None = None
    timestamp: str | msgspec.UnsetType = msgspec.UNSET
    elapsed_seconds: Amount = 0.0
    retry_count: Count = 0
    mode: Mode | msgspec.UnsetType = msgspec.UNSET


_RESULT_FIELDS = msgspec.json.Decoder(ResultFields)


def result_fields(line: bytes, checked: bool = False) -> ResultFields | dict[str, Any] | None:
    """A ledger line parsed for a summary and a budget: a result line whose checksum holds (one
    the harness wrote; `checked`: its reader found it so, as `head_key` does), only the fields
    they take (a line whose other fields have the wrong shape is trusted on its checksum, as the
    resume index trusts it); any other line as `parse_line` parses it."""
    if checked or head_key(line) is not None:
        try:
            return _RESULT_FIELDS.decode(line)
        except msgspec.DecodeError:
            return None
    return parse_line(line) if line.strip() else None


def count_spend(
    spent: dict[str, float], fields: ResultFields | dict[str, Any] | None, weight: float = 1.0
) -> None:
    """Count a line's cost (times `weight`), parsed by `result_fields`, as its model's spend
    (see `model_name`)."""
    if isinstance(fields, ResultFields):
        if fields.cost_usd:
            name = model_name(fields.key)
            spent[name] = spent.get(name, 0.0) + fields.cost_usd * weight
    elif fields is not None and fields.get("cost_usd") and "key" in fields:
        name = model_name(fields["key"])
        spent[name] = spent.get(name, 0.0) + fields["cost_usd"] * weight


def model_name(key: str) -> str:
    """The model a result's key names: its variant's label up to an adapter (`name+adapter`)."""
    return key.partition("@")[0].partition("+")[0]


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


def _variant(variants: dict[str, VariantSummary], variant: str) -> VariantSummary:
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
    shards: set[tuple[int, int] | None] = field(default_factory=set)

    def read(self, line: dict[str, Any] | None) -> bool:
        """Take a run line's plans; False when the line is not a run line."""
        if line is None or line.get("type") != "run":
            return False
        plan = line.get("plan")
        if not _is_plan(plan):
            return False
        shard = line.get("shard")
        unsharded = shard.get("plan_unsharded") if isinstance(shard, dict) else None
        if isinstance(shard, dict) and _is_plan(unsharded):
            self.shards.add((shard.get("index"), shard.get("count")))  # type: ignore[arg-type]
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


def _is_plan(plan: Any) -> bool:
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


def _fields_result(line: ResultFields) -> tuple[str, _Latest, str, float] | None:
    """`_result` of a line parsed by `result_fields` (its fields' types already checked)."""
    tokens = line.tokens
    tokens_in, tokens_out = (tokens.get("input", 0), tokens.get("output", 0)) if tokens else (0, 0)
    end = _epoch(line.timestamp)
    if end is None:
        return None
    elapsed, status = line.elapsed_seconds, line.status
    kept = (
        line.variant,
        status == "ok",
        tokens_in,
        tokens_out,
        elapsed,
        line.retry_count > 0,
        line.mode == "batch",
    )
    return line.key, kept, line.run_id, end


def _any_result(
    line: ResultFields | dict[str, Any] | None,
) -> tuple[str, _Latest, str, float] | None:
    """`_result` of a line as `result_fields` parses it."""
    return _fields_result(line) if type(line) is ResultFields else _result(line)  # type: ignore[arg-type]


def _result(line: dict[str, Any] | None) -> tuple[str, _Latest, str, float] | None:
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
    end = _epoch(get("timestamp"))
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
        _variant(variants, variant).wall_seconds += end - start
    if plan is None:
        for summary in variants.values():
            summary.pending = None
        plan = {}
    for variant, total in plan.items():
        summary = _variant(variants, variant)
        summary.pending = max(0, total - summary.ok - summary.failed)
    return sorted(variants.values(), key=lambda s: s.variant)


def _epoch(timestamp: Any) -> float | None:
    """Seconds since the epoch of an ISO-8601 timestamp, or None. The harness's own form
    (`2025-11-12T10:01:23.412Z`) is read through a cache of whole seconds: a million records
    share a few hundred of them."""
    if not isinstance(timestamp, str):
        return None
    ours = len(timestamp) == 24 and timestamp[19] == "." and timestamp[23] == "Z"
    if ours and timestamp[20:23].isdigit():
        second = _SECONDS.get(timestamp[:19])
        if second is not None:
            return second + int(timestamp[20:23]) / 1000
    try:
        moment = datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None
    if ours:
        if len(_SECONDS) > 100_000:
            _SECONDS.clear()
        _SECONDS[timestamp[:19]] = datetime.fromisoformat(timestamp[:19] + "Z").timestamp()
    return moment


_SECONDS: dict[str, float] = {}  # "2025-11-12T10:01:23" -> its epoch seconds


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
    batch_lines: int = 0


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
