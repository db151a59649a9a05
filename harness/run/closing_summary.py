"""The summary a run prints when it ends (`ClosingSummary`), tallied in the run's one reading of
its ledger and from the lines it appends; and the fields of a result line that it and a budget
take (`ResultFields`, read by `result_fields`; `count_spend`). Its tally is `harness.run.tally`'s,
with each result line whose checksum holds taken inline (`_OnePassTally.take_result`).
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, final

import msgspec
import numpy as np

from harness.ledger.lines import head_key, parse_line
from harness.ledger.record import Amount, Count, Mode, Status
from harness.run.tally import (
    EPOCH_SECONDS,
    Latest,
    Summary,
    Tally,
    epoch,
    result_of,
    variant_summary,
)


class ClosingSummary:
    """The summary a run prints when it ends, built from one reading of its ledger and from the
    lines it appends (`read`, each with its place in the file), with no second reading: every
    result counts as its key's latest when it is read; at the end the keys named more than once
    are found from their fingerprints (see `harness.run.summary`), and the counts of the records
    they superseded are taken back, each read again from its place (a few lines: those of the
    jobs a run did again)."""

    def __init__(self) -> None:
        self._tally = _OnePassTally()
        self._fingerprints = array("q")
        self._places = array("q")
        self.paid: dict[str, float] = {}  # USD per model name of every line read (`count_spend`)

    def read_all(self, lines: Iterable[tuple[bytes, bool]]) -> int:
        """`read` a ledger's lines from its start, each with whether its checksum was found to
        hold (see `harness.ledger.index.index_lines`); returns the bytes read. A result whose
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
        elif parsed is None and not line.strip():
            return None  # a blank line: passed over, as `status` passes over it
        else:
            found = self._tally.read(parsed)
            key = None if found is None else found[0]
            if found is not None:
                self._tally.add(found[1])
        if key is not None:
            self._fingerprints.append(hash(key))
            self._places.append(place)
        return parsed

    @property
    def prompt_sets(self) -> set[str]:
        """Where the prompts of every run line read so far came from."""
        return set(self._tally.prompt_sets)

    def finish(self, path: Path) -> Summary:
        """The summary of every line read, those superseded read again from `path`."""
        with path.open("rb") as file:
            for places in self._repeated_places():
                seen: dict[str, Latest] = {}
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


class _OnePassTally(Tally):
    """A tally that also takes a result line parsed by `result_fields` whole, inline."""

    def take_result(self, line: ResultFields) -> str | None:
        """`read` then `add` for a result line parsed by `result_fields` (in a tally that
        `keeps` all), inlined: a run reads a million of them. Returns its key (None: skipped)."""
        timestamp = line.timestamp
        if (
            type(timestamp) is str
            and len(timestamp) == 24
            and timestamp[19] == "."
            and timestamp[23] == "Z"
            and timestamp[20:23].isdigit()
            and (second := EPOCH_SECONDS.get(timestamp[:19])) is not None
        ):
            end = second + int(timestamp[20:23]) / 1000
        else:
            found = epoch(timestamp)
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
        counts = self.variants.get(variant) or variant_summary(self.variants, variant)
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


@final  # so that `type(line) is ResultFields` tells a type checker the other case is a dict
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


def _fields_result(line: ResultFields) -> tuple[str, Latest, str, float] | None:
    """`result_of` of a line parsed by `result_fields` (its fields' types already checked)."""
    tokens = line.tokens
    tokens_in, tokens_out = (tokens.get("input", 0), tokens.get("output", 0)) if tokens else (0, 0)
    end = epoch(line.timestamp)
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
) -> tuple[str, Latest, str, float] | None:
    """`result_of` of a line as `result_fields` parses it."""
    return _fields_result(line) if type(line) is ResultFields else result_of(line)
