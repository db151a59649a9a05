"""One pass over a ledger for the report: its run lines, every result line's time, retries and
errors (superseded lines too: the timeline is the run's history), and the latest record of every
key (the record browser's rows, with each answer's current labels and uncertainty measures).

The latest records are the ones at `positions` (`harness.analysis.answers.latest_positions`);
every other line is parsed once and let go. Memory: a row per key (its answer cut to
`limits.answer_chars`), a few numbers per result line, and the token logprobs of at most
`limits.logprob_answers` answers (see `LogprobSample`).
"""

from __future__ import annotations

import heapq
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.analysis.answers import Advance, Source, lines_at
from harness.analysis.labels import Labels
from harness.analysis.positions import MalformedLogprobs
from harness.analysis.scores import answer_digest
from harness.analysis.uncertainty import MEASURES, measure
from harness.bulk import collector_paused
from harness.errors import InputError
from harness.ledger import is_record, parse_line
from harness.prompts import Prompt

_BATCH = 256  # latest records measured together (as `harness.analysis.columns` does)


@dataclass(frozen=True)
class Limits:
    """What the page keeps of long data: answers and prompts cut to so many characters, token
    logprobs for so many answers (whole prompts: every variant's answer), so many positions each."""

    answer_chars: int = 4000
    prompt_chars: int = 4000
    logprob_answers: int = 2000
    logprob_positions: int = 200


class _Codes(dict[Any, int]):
    """Distinct values numbered in order of first sight."""

    def code(self, value: Any) -> int:
        found = self.get(value)
        if found is None:
            found = self[value] = len(self)
        return found


@dataclass
class Rows:
    """The latest record of every key, one entry per record in each list."""

    variants: _Codes = field(default_factory=_Codes)
    categories: _Codes = field(default_factory=_Codes)
    error_types: _Codes = field(default_factory=_Codes)
    prompts: _Codes = field(default_factory=_Codes)  # prompt ids
    prompt_category: dict[int, int] = field(default_factory=dict)
    prompt_probe: dict[int, bool] = field(default_factory=dict)
    prompt_hash: dict[int, str] = field(default_factory=dict)  # of its first answer
    variant: array[int] = field(default_factory=lambda: array("i"))
    prompt: array[int] = field(default_factory=lambda: array("i"))
    sample: array[int] = field(default_factory=lambda: array("i"))
    ok: array[int] = field(default_factory=lambda: array("b"))
    live: array[int] = field(default_factory=lambda: array("b"))
    error: array[int] = field(default_factory=lambda: array("i"))  # -1: none
    latency: array[float] = field(default_factory=lambda: array("d"))
    output_tokens: array[int] = field(default_factory=lambda: array("i"))  # -1: unknown
    retries: array[int] = field(default_factory=lambda: array("i"))
    text: list[str] = field(default_factory=list)  # the answer, or the error's message
    cut: int = 0  # texts cut to the limit
    label: dict[str, array[int]] = field(default_factory=dict)  # per scorer; -1: none current
    labels: dict[str, _Codes] = field(default_factory=dict)
    unsure: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.variant)

    def measures(self) -> dict[str, np.ndarray]:
        """Each answer's uncertainty measures (NaN where unknown)."""
        return {
            m: np.concatenate(parts) if parts else np.empty(0) for m, parts in self.unsure.items()
        }


@dataclass
class Timeline:
    """Every result line: when it ended, whether it is an answer, how many retries it took; and
    every failed attempt (retried ones and final ones) with its error type."""

    seconds: list[str] = field(default_factory=list)  # ISO timestamps
    ok: array[int] = field(default_factory=lambda: array("b"))
    retries: array[int] = field(default_factory=lambda: array("i"))
    error_at: list[str] = field(default_factory=list)
    error_type: list[str] = field(default_factory=list)
    run_end: dict[str, str] = field(default_factory=dict)  # each run's last result line's time


class LogprobSample:
    """The token logprobs the page keeps: those of the answers to the prompts that come first in
    a hash of the prompt id (crc32), at most `size` answers, so a prompt's answers from every
    variant are kept together. A bounded heap: an answer's logprobs are encoded only while it is
    among the first `size` seen so far."""

    def __init__(self, size: int, positions: int) -> None:
        self.size, self.positions = size, positions
        self.heap: list[tuple[int, int, dict[str, list[Any]]]] = []  # (-rank, -row, encoded)
        self.total = 0  # answers with token logprobs
        self.cut = 0  # kept answers cut to `positions`

    def offer(self, row: int, prompt_id: str, logprobs: Sequence[dict[str, Any]]) -> None:
        self.total += 1
        rank = (-zlib.crc32(prompt_id.encode()), -row)
        if len(self.heap) >= self.size and rank <= self.heap[0][:2]:
            return
        item = (*rank, self._encoded(logprobs))
        if len(self.heap) < self.size:
            heapq.heappush(self.heap, item)
        else:
            heapq.heapreplace(self.heap, item)

    def kept(self) -> dict[int, dict[str, list[Any]]]:
        """Each kept answer's encoded logprobs, by row."""
        return {-row: encoded for _, row, encoded in self.heap}

    def _encoded(self, logprobs: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
        """Tokens, their logprobs (3 decimals) and their top alternatives, as parallel lists."""
        if len(logprobs) > self.positions:
            self.cut += 1
            logprobs = logprobs[: self.positions]
        return {
            "t": [_token(p.get("token"), p.get("token_id")) for p in logprobs],
            "p": [_rounded(p.get("logprob")) for p in logprobs],
            "a": [[_token(t, None) for t, _ in p.get("top") or ()] for p in logprobs],
            "q": [[_rounded(lp) for _, lp in p.get("top") or ()] for p in logprobs],
        }


def _token(text: Any, token_id: Any) -> str:
    if isinstance(text, str):
        return text
    return f"#{token_id}" if isinstance(token_id, int) else "?"


def _rounded(value: Any) -> float | None:
    return round(value, 3) if isinstance(value, int | float) and value == value else None


@dataclass
class Reading:
    """What the pass found."""

    runs: list[dict[str, Any]]
    rows: Rows
    timeline: Timeline
    logprobs: LogprobSample


def read_ledger(
    ledger: Any,
    source: Source,
    positions: Sequence[int],
    labels: Labels,
    limits: Limits,
    variants: set[str] | None = None,
    advance: Advance | None = None,
) -> Reading:
    """Read `source` (the ledger `ledger` names in messages) once; `positions` are its latest
    records' (ascending), `labels` the current scores; `variants`: only their records."""
    reader = _Reader(ledger, labels, limits)
    wanted = iter(positions)
    next_wanted = next(wanted, -1)
    with collector_paused():
        for offset, line in lines_at(source, advance):
            latest = offset == next_wanted
            if latest:
                next_wanted = next(wanted, -1)
            obj = parse_line(line) if line.strip() else None
            if obj is None:
                continue
            if obj.get("type") == "run":
                reader.runs.append(obj)
            elif is_record(obj) and (variants is None or obj["variant"] in variants):
                reader.history(obj)
                if latest:
                    reader.latest(obj)
        reader.flush()
    return Reading(reader.runs, reader.rows, reader.timeline, reader.sample)


class _Reader:
    def __init__(self, ledger: Any, labels: Labels, limits: Limits) -> None:
        self.ledger, self.scorers, self.limits = ledger, labels.scorers, limits
        self.runs: list[dict[str, Any]] = []
        self.rows, self.timeline = Rows(), Timeline()
        self.sample = LogprobSample(limits.logprob_answers, limits.logprob_positions)
        self.rows.unsure = {name: [] for name in MEASURES}
        for name, scorer in self.scorers.items():
            self.rows.label[name] = array("i")
            self.rows.labels[name] = _Codes()
            for label in scorer.labels():
                self.rows.labels[name].code(label)
        self.batch: list[dict[str, Any]] = []

    def history(self, record: dict[str, Any]) -> None:
        timeline = self.timeline
        stamp = record.get("timestamp")
        if not isinstance(stamp, str):
            return
        timeline.seconds.append(stamp)
        run_id = str(record.get("run_id"))
        timeline.run_end[run_id] = max(stamp, timeline.run_end.get(run_id, stamp))
        timeline.ok.append(record["status"] == "ok")
        retries = record.get("retry_count")
        timeline.retries.append(retries if isinstance(retries, int) else 0)
        failures = record.get("attempt_errors") or []
        if record["status"] != "ok":
            failures = [*failures, record.get("error")]
        for failure in failures:
            timeline.error_at.append(stamp)
            timeline.error_type.append(_error_type(failure))

    def latest(self, record: dict[str, Any]) -> None:
        rows, get = self.rows, record.get
        ok = record["status"] == "ok"
        prompt = rows.prompts.code(record["prompt_id"])
        if prompt not in rows.prompt_category:
            rows.prompt_category[prompt] = rows.categories.code(str(get("prompt_category")))
            rows.prompt_probe[prompt] = get("is_synthetic_probe") is True
            rows.prompt_hash[prompt] = str(get("prompt_hash") or "")
        rows.variant.append(rows.variants.code(record["variant"]))
        rows.prompt.append(prompt)
        sample = get("sample")
        rows.sample.append(sample if isinstance(sample, int) else 0)
        rows.ok.append(ok)
        rows.live.append(get("mode") != "batch")
        rows.error.append(-1 if ok else rows.error_types.code(_error_type(get("error"))))
        elapsed = get("elapsed_seconds")
        rows.latency.append(float(elapsed) if isinstance(elapsed, int | float) else np.nan)
        tokens = get("tokens")
        output = tokens.get("output") if isinstance(tokens, dict) else None
        rows.output_tokens.append(output if isinstance(output, int) else -1)
        retries = get("retry_count")
        rows.retries.append(retries if isinstance(retries, int) else 0)
        rows.text.append(self._text(record, ok))
        self._label(record, ok)
        logprobs = get("token_logprobs") if ok else None
        if isinstance(logprobs, list) and logprobs:
            self.sample.offer(len(rows) - 1, record["prompt_id"], logprobs)
        self.batch.append(record)
        if len(self.batch) == _BATCH:
            self.flush()

    def flush(self) -> None:
        """Measure the uncertainty of the records read since the last flush."""
        batch, self.batch = self.batch, []
        if not batch:
            return
        logprobs = [r.get("token_logprobs") if r["status"] == "ok" else None for r in batch]
        try:
            measured = measure(logprobs)
        except MalformedLogprobs as exc:
            key = batch[exc.index]["key"]
            raise InputError(f"{self.ledger}: record {key!r}: token_logprobs: {exc}") from None
        for name in MEASURES:
            self.rows.unsure[name].append(measured[name])

    def _text(self, record: dict[str, Any], ok: bool) -> str:
        if ok:
            text = record.get("full_response") or ""
        else:
            error = record.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            text = str(message or "")
        if len(text) > self.limits.answer_chars:
            self.rows.cut += 1
            return text[: self.limits.answer_chars]
        return text

    def _label(self, record: dict[str, Any], ok: bool) -> None:
        if not self.scorers:
            return
        digest = answer_digest(record) if ok else ""
        for name, scorer in self.scorers.items():
            given = scorer.label_of(record["key"], digest) if ok else None
            code = (
                -1 if given is None or given[0] is None else self.rows.labels[name].code(given[0])
            )
            self.rows.label[name].append(code)


def _error_type(error: Any) -> str:
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else "unknown"


def prompt_texts(
    rows: Rows, prompts: dict[str, Prompt] | None, limit: int
) -> tuple[list[str | None], int, int]:
    """Each prompt's text, cut to `limit` characters (None: not at hand, or changed since its
    answers were made); how many were not at hand and how many were cut."""
    texts: list[str | None] = []
    missing = cut = 0
    for prompt_id, code in rows.prompts.items():
        prompt = None if prompts is None else prompts.get(prompt_id)
        if prompt is None or prompt.hash != rows.prompt_hash[code]:
            texts.append(None)
            missing += 1
            continue
        text = prompt.text
        if len(text) > limit:
            cut += 1
            text = text[:limit]
        texts.append(text)
    return texts, missing, cut
