"""One pass over a ledger for the report: its run lines, every result line's time, retries and
errors (superseded lines too: the timeline is the run's history), and the latest record of every
key, each line parsed once.

The latest records (at `positions`, from `harness.analysis.answers.latest_positions`) become the
statistics' columns (`harness.analysis.columns.ColumnsBuilder`: variant, category, probe flag,
current labels, uncertainty measures) and, beside them, the record browser's rows (prompt,
sample, status, error type, latency, tokens, retries, the answer's text). Memory: a row per key
(its answer cut to `limits.answer_chars`), a few numbers per result line, and the parsed token
logprobs of at most `limits.logprob_answers` answers (see `LogprobSample`).
"""

from __future__ import annotations

import heapq
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import numpy as np

from harness.analysis.answers import Source, Stretch, lines_at
from harness.analysis.columns import AnswerColumns, Codes, ColumnsBuilder, joined_columns
from harness.analysis.labels import Labels
from harness.analysis.parallel import in_workers, report_read, shared
from harness.analysis.positions import flatten
from harness.analysis.reading import Latest
from harness.bulk import collector_paused
from harness.ledger.lines import is_result, parse_line
from harness.ledger.sets import Advance
from harness.prompts.load import Prompt

_BATCH = 256  # latest records turned into columns together (as `answer_columns` does)


@dataclass(frozen=True)
class Limits:
    """What the page keeps of long data: answers and prompts cut to so many characters, token
    logprobs for so many answers (whole prompts: every variant's answer), so many positions each."""

    answer_chars: int = 4000
    prompt_chars: int = 4000
    logprob_answers: int = 1000
    logprob_positions: int = 200


@dataclass
class Rows:
    """What the browser shows of the latest records beyond their columns, one entry per record
    in each list, in the columns' order."""

    prompts: Codes = field(default_factory=Codes)  # prompt ids
    first_row: list[int] = field(default_factory=list)  # per prompt: its first record's row
    prompt_hash: list[str] = field(default_factory=list)  # per prompt: its first record's
    error_types: Codes = field(default_factory=Codes)
    prompt: array[int] = field(default_factory=lambda: array("i"))
    sample: array[int] = field(default_factory=lambda: array("i"))
    live: array[int] = field(default_factory=lambda: array("b"))
    error: array[int] = field(default_factory=lambda: array("i"))  # -1: none
    latency: array[float] = field(default_factory=lambda: array("d"))
    output_tokens: array[int] = field(default_factory=lambda: array("i"))  # -1: unknown
    retries: array[int] = field(default_factory=lambda: array("i"))
    text: list[str] = field(default_factory=list)  # the answer, or the error's message
    cut: int = 0  # texts cut to the limit

    def __len__(self) -> int:
        return len(self.prompt)

    def extend(self, later: Rows) -> None:
        """Append the rows of the records that follow these (read by another worker)."""
        offset = len(self)
        prompts = [self.prompts.code(p) for p in later.prompts]
        for code, first in enumerate(later.first_row):
            if prompts[code] == len(self.first_row):  # a prompt first seen there
                self.first_row.append(offset + first)
                self.prompt_hash.append(later.prompt_hash[code])
        errors = [self.error_types.code(e) for e in later.error_types]
        self.prompt.extend(prompts[p] for p in later.prompt)
        self.error.extend(-1 if e < 0 else errors[e] for e in later.error)
        for name in ("sample", "live", "latency", "output_tokens", "retries", "text"):
            getattr(self, name).extend(getattr(later, name))
        self.cut += later.cut


@dataclass
class Timeline:
    """Every result line with a readable timestamp: when it ended (seconds since the epoch),
    whether it is an answer, how many retries it took; every failed attempt (retried ones and
    final ones) with its error type; each run's last line; the lines left out for a timestamp
    that is missing or not ISO 8601."""

    seconds: array[float] = field(default_factory=lambda: array("d"))
    ok: array[int] = field(default_factory=lambda: array("b"))
    retries: array[int] = field(default_factory=lambda: array("i"))
    error_at: array[float] = field(default_factory=lambda: array("d"))
    error_type: list[str] = field(default_factory=list)
    last: dict[str, tuple[float, str]] = field(default_factory=dict)  # run id: (seconds, stamp)
    unreadable: int = 0

    def extend(self, later: Timeline) -> None:
        """Append the result lines that follow these (read by another worker)."""
        for name in ("seconds", "ok", "retries", "error_at", "error_type"):
            getattr(self, name).extend(getattr(later, name))
        for run_id, ended in later.last.items():
            self.last[run_id] = max(ended, self.last.get(run_id, ended))
        self.unreadable += later.unreadable

    def run_end(self) -> dict[str, str]:
        """Each run's last result line's timestamp, as written."""
        return {run_id: stamp for run_id, (_, stamp) in self.last.items()}


def epoch_seconds(stamp: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 timestamp (`2026-11-24T00:27:59.196Z`; one without
    a zone is UTC); None for anything else."""
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class LogprobSample:
    """The token logprobs the page keeps: those of the answers to the prompts that come first in
    a hash of the prompt id (crc32), at most `size` answers, so a prompt's answers from every
    variant are kept together. A bounded heap holds the parsed logprobs of the first `size` seen
    so far; they are encoded once, at the end."""

    def __init__(self, size: int, positions: int) -> None:
        self.size, self.positions = size, positions
        self.heap: list[tuple[int, int, list[dict[str, Any]]]] = []  # (-rank, -row, logprobs)
        self.total = 0  # answers with token logprobs

    def offer(self, row: int, prompt_id: str, logprobs: list[dict[str, Any]]) -> None:
        self.total += 1
        item = (-zlib.crc32(prompt_id.encode()), -row, logprobs)
        if len(self.heap) < self.size:
            heapq.heappush(self.heap, item)
        elif item[:2] > self.heap[0][:2]:
            heapq.heapreplace(self.heap, item)

    def extend(self, later: LogprobSample, offset: int) -> None:
        """Take in the sample of the records that follow these (read by another worker, its
        rows numbered from `offset` here): the same answers as one sample of them all."""
        moved = [(rank, row - offset, logprobs) for rank, row, logprobs in later.heap]
        self.heap = heapq.nlargest(self.size, self.heap + moved, key=lambda item: item[:2])
        heapq.heapify(self.heap)
        self.total += later.total

    @property
    def cut(self) -> int:
        """Kept answers with more than `positions` positions (cut to them)."""
        return sum(len(logprobs) > self.positions for _, _, logprobs in self.heap)

    def kept(self) -> dict[int, dict[str, list[Any]]]:
        """Each kept answer's tokens, their logprobs (3 decimals) and top alternatives, as
        parallel lists (`t`, `p`, `a`, `q`), by row."""
        rows = sorted(-row for _, row, _ in self.heap)
        answers = {-row: logprobs for _, row, logprobs in self.heap}
        batch = [answers[row][: self.positions] for row in rows]
        flat = flatten(batch)
        tokens = [_token(t, i) for t, i in zip(flat.token, flat.token_id, strict=True)]
        chosen = _rounded(flat.logprob)
        alternatives = [_token(t, None) for t in flat.top_tokens]
        alternative_logprobs = _rounded(flat.top_logprobs)
        kept: dict[int, dict[str, list[Any]]] = {}
        at = top = 0
        for row, count in zip(rows, flat.counts, strict=True):
            widths = flat.widths[at : at + count]
            starts = np.cumsum([top, *widths]).tolist()
            kept[row] = {
                "t": tokens[at : at + count],
                "p": chosen[at : at + count],
                "a": [alternatives[a:b] for a, b in pairwise(starts)],
                "q": [alternative_logprobs[a:b] for a, b in pairwise(starts)],
            }
            at, top = at + count, starts[-1]
        return kept


def _token(text: Any, token_id: Any) -> str:
    if isinstance(text, str):
        return text
    return f"#{token_id}" if isinstance(token_id, int) else "?"


def _rounded(values: list[Any]) -> list[float | None]:
    """Logprobs to 3 decimals; one not given (or not a number) as None."""
    numbers = np.array([v if isinstance(v, int | float) else np.nan for v in values], dtype=float)
    rounded = np.round(numbers, 3)
    return [None if v != v else v for v in rounded.tolist()]


@dataclass
class Reading:
    """What the pass found."""

    runs: list[dict[str, Any]]
    columns: AnswerColumns
    rows: Rows
    timeline: Timeline
    logprobs: LogprobSample
    skipped: int = 0  # lines torn, damaged, or of no known shape


def read_in_workers(
    ledger: Any,
    latest: Latest,
    limits: Limits,
    variants: set[str] | None,
    advance: Advance | None = None,
) -> Reading:
    """`report_reading` of the file `latest` was read from (`Latest.source`), one stretch of it
    per worker process (see `harness.analysis.parallel`), the parts joined in order: the same
    reading."""
    stretches = latest.stretches()
    stretches[0] = (stretches[0][0], 0, stretches[0][2])  # the lines before the first too
    sharing = (ledger, latest.source, latest.labels, limits, variants)
    with in_workers(latest.workers, sharing, advance) as pool:
        parts = pool.map(_read_stretch, stretches)
    whole: Reading = parts[0]
    for part in parts[1:]:
        whole.logprobs.extend(part.logprobs, len(whole.rows))
        whole.rows.extend(part.rows)
        whole.timeline.extend(part.timeline)
        whole.runs += part.runs
        whole.skipped += part.skipped
    whole.columns = joined_columns([part.columns for part in parts])
    return whole


def _read_stretch(positions: Sequence[int], start: int, end: int) -> Reading:
    """In a worker: `report_reading` of the bytes `start` to `end` of the ledger file held open."""
    ledger, file, labels, limits, variants = shared()
    stretch = Stretch(file, start, end)
    return report_reading(ledger, stretch, positions, labels, limits, variants, report_read)


def report_reading(
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
    reader = _Reader(ColumnsBuilder(ledger, labels), limits)
    wanted = iter(positions)
    next_wanted = next(wanted, -1)
    skipped = 0
    with collector_paused():
        for offset, line in lines_at(source, advance):
            latest = offset == next_wanted
            if latest:
                next_wanted = next(wanted, -1)
            obj = parse_line(line) if line.strip() else None
            if obj is None:
                skipped += bool(line.strip())
                continue
            if obj.get("type") == "run":
                reader.runs.append(obj)
            elif is_result(obj) and (variants is None or obj["variant"] in variants):
                reader.history(obj)
                if latest:
                    reader.latest(obj)
        reader.flush()
    columns = reader.columns.columns()
    return Reading(reader.runs, columns, reader.rows, reader.timeline, reader.sample, skipped)


class _Reader:
    def __init__(self, columns: ColumnsBuilder, limits: Limits) -> None:
        self.columns, self.limits = columns, limits
        self.runs: list[dict[str, Any]] = []
        self.rows, self.timeline = Rows(), Timeline()
        self.sample = LogprobSample(limits.logprob_answers, limits.logprob_positions)
        self.batch: list[dict[str, Any]] = []

    def history(self, record: dict[str, Any]) -> None:
        timeline = self.timeline
        stamp = record.get("timestamp")
        seconds = epoch_seconds(stamp)
        if seconds is None:
            timeline.unreadable += 1
            return
        timeline.seconds.append(seconds)
        run_id = str(record.get("run_id"))
        ended = (seconds, str(stamp))  # a str: it has its seconds
        timeline.last[run_id] = max(ended, timeline.last.get(run_id, ended))
        timeline.ok.append(record["status"] == "ok")
        retries = record.get("retry_count")
        timeline.retries.append(retries if isinstance(retries, int) else 0)
        failures = record.get("attempt_errors") or []
        if record["status"] != "ok":
            failures = [*failures, record.get("error")]
        for failure in failures:
            timeline.error_at.append(seconds)
            timeline.error_type.append(_error_type(failure))

    def latest(self, record: dict[str, Any]) -> None:
        rows, get = self.rows, record.get
        ok = record["status"] == "ok"
        prompt = rows.prompts.code(record["prompt_id"])
        if prompt == len(rows.first_row):
            rows.first_row.append(len(rows))
            rows.prompt_hash.append(str(get("prompt_hash") or ""))
        rows.prompt.append(prompt)
        sample = get("sample")
        rows.sample.append(sample if isinstance(sample, int) else 0)
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
        logprobs = get("token_logprobs") if ok else None
        if isinstance(logprobs, list) and logprobs:
            self.sample.offer(len(rows) - 1, record["prompt_id"], logprobs)
        self.batch.append(record)
        if len(self.batch) == _BATCH:
            self.flush()

    def flush(self) -> None:
        """Turn the records read since the last flush into columns."""
        self.columns.add(self.batch)
        self.batch = []

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
