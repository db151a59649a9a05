"""What the report reads of a ledger, as queries on the analysis's view of it
(`harness.analysis.view`): the latest record of every key becomes the statistics' columns
(`harness.analysis.view_columns`) and, beside them, the record browser's rows (prompt, sample,
status, error type, latency, tokens, retries, the answer's text); every result line's time,
retries and errors (superseded lines too: the timeline is the run's history) come from one more
DuckDB reading of the ledger files, narrowed to those fields; the run lines are found by their
`"run"` and parsed here.

Memory: DuckDB holds the latest records (within its memory limit, spilling beyond it); Python a
row per key (its answer cut to `limits.answer_chars`), a few numbers per result line, and the
token logprobs of at most `limits.logprob_answers` answers (see `LogprobSample`).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from harness.analysis.answers import run_lines
from harness.analysis.positions import flatten
from harness.analysis.view import LONGEST_LINE, View, keep_latest
from harness.analysis.view_columns import FIELDS as COLUMN_FIELDS
from harness.analysis.view_columns import AnswerColumns, numbers, view_columns
from harness.ledger.lines import parse_line, source_lines
from harness.ledger.sets import Ledgers
from harness.prompts.load import Prompt

# The record's fields `latest` holds for the report: the columns' and the browser's.
FIELDS = (
    *COLUMN_FIELDS,
    "status",
    "prompt_hash",
    "mode",
    "error",
    "elapsed_seconds",
    "tokens",
    "retry_count",
    "full_response",
    "positions",
    "metadata",
)
# The characters of a prompt's metadata value the page shows at most.
_METADATA_CHARS = 500


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
    in each array, in the columns' order (ledger order)."""

    prompts: list[str] = field(default_factory=list)  # prompt ids, in the order first seen
    first_row: list[int] = field(default_factory=list)  # per prompt: its first record's row
    prompt_hash: list[str] = field(default_factory=list)  # per prompt: its first record's
    # per prompt: its first record's metadata (the prompt's fields beyond id, text, category
    # and probe flag), each value as text cut to `_METADATA_CHARS`
    metadata: list[dict[str, str]] = field(default_factory=list)
    error_types: list[str] = field(default_factory=list)  # in the order first seen
    prompt: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    sample: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    live: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    error: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # -1: none
    latency: np.ndarray = field(default_factory=lambda: np.zeros(0))  # NaN: unknown
    output_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # -1: unknown
    retries: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    text: list[str] = field(default_factory=list)  # the answer, or the error's message
    cut: int = 0  # texts cut to the limit

    def __len__(self) -> int:
        return len(self.prompt)


@dataclass
class Timeline:
    """Every result line with a readable timestamp: when it ended (seconds since the epoch),
    whether it is an answer, how many retries it took; every failed attempt (retried ones and
    final ones) with its error type; each run's last line; the lines left out for a timestamp
    that is missing or not ISO 8601."""

    seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ok: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    retries: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    error_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    error_type: list[str] = field(default_factory=list)
    last: dict[str, tuple[float, str]] = field(default_factory=dict)  # run id: (seconds, stamp)
    unreadable: int = 0

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


@dataclass
class LogprobSample:
    """The token logprobs the page keeps: those of the answers to the prompts that come first in
    a hash of the prompt id (crc32), then by row, at most `size` answers, so a prompt's answers
    from every variant are kept together; `answers`: each kept one's positions (cut to
    `positions`) by row."""

    size: int
    positions: int
    answers: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    total: int = 0  # answers with token logprobs
    cut: int = 0  # kept answers with more than `positions` positions (cut to them)

    def kept(self) -> dict[int, dict[str, list[Any]]]:
        """Each kept answer's tokens, their logprobs (3 decimals) and top alternatives, as
        parallel lists (`t`, `p`, `a`, `q`), by row."""
        rows = sorted(self.answers)
        flat = flatten([self.answers[row] for row in rows])
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
    """What the report read."""

    runs: list[dict[str, Any]]
    columns: AnswerColumns
    rows: Rows
    timeline: Timeline
    logprobs: LogprobSample
    skipped: int = 0  # lines torn, damaged, or of no known shape


def report_reading(view: View, limits: Limits, variants: set[str] | None = None) -> Reading:
    """The report's reading of `view` (opened with `FIELDS`); `variants`: only their records
    (the others are taken out of the view's `latest`)."""
    if variants is not None:
        keep_latest(view, "list_contains(?, variant)", [sorted(variants)])
    columns = view_columns(view)
    rows, flags = _rows(view, limits)
    sample = _sample(view, rows, flags, limits)
    timeline = _timeline(view, variants)
    return Reading(run_lines(view.ledger), columns, rows, timeline, sample, view.skipped)


_ERROR_TYPE = (
    "CASE WHEN json_type({x}, '$.type') = 'VARCHAR' THEN {x}->>'$.type' ELSE 'unknown' END"
)
_ROWS = f"""
SELECT prompt_id, coalesce(prompt_hash, '') AS prompt_hash, sample,
       coalesce(mode, '') != 'batch' AS live,
       CASE WHEN status != 'ok' THEN {_ERROR_TYPE.format(x="error")} END AS error_type,
       coalesce(elapsed_seconds, 'NaN'::DOUBLE) AS latency,
       CASE WHEN json_type(tokens, '$.output') IN ('BIGINT', 'UBIGINT')
            THEN TRY_CAST(tokens->>'$.output' AS BIGINT)
            WHEN json_type(tokens, '$.output') = 'BOOLEAN'
            THEN (tokens->>'$.output' = 'true')::BIGINT
            ELSE -1 END AS output_tokens,
       coalesce(retry_count, 0) AS retries,
       CASE WHEN status = 'ok' THEN coalesce(full_response, '')
            WHEN json_type(error, '$.message') = 'VARCHAR' THEN error->>'$.message'
            WHEN json_type(error, '$.message') IS NULL
                 OR json_type(error, '$.message') = 'NULL' THEN ''
            WHEN error->>'$.message' IN ('0', 'false', '[]', '{{}}', '0.0') THEN ''
            ELSE error->>'$.message' END AS text,
       coalesce(positions, 0) > 0 AS has_logprobs, metadata
FROM latest ORDER BY line
"""


def _rows(view: View, limits: Limits) -> tuple[Rows, np.ndarray]:
    """The browser's rows, and which of them have token logprobs."""
    table = view.arrow(_ROWS)
    prompts = pc.dictionary_encode(table["prompt_id"]).combine_chunks()
    codes = numbers(prompts.indices, np.int32)
    _, first = np.unique(codes, return_index=True)
    hashes = table["prompt_hash"].to_numpy(zero_copy_only=False)
    errors = pc.dictionary_encode(table["error_type"]).combine_chunks()
    text = table["text"]
    long = pc.greater(pc.utf8_length(text), limits.answer_chars)
    cut = int(pc.sum(long).as_py() or 0)
    if cut:
        text = pc.if_else(long, pc.utf8_slice_codeunits(text, 0, limits.answer_chars), text)
    return Rows(
        prompts=prompts.dictionary.to_pylist(),
        first_row=first.tolist(),
        prompt_hash=[str(h) for h in hashes[first]],
        metadata=[_fields(table["metadata"][int(row)].as_py()) for row in first],
        error_types=errors.dictionary.to_pylist(),
        prompt=codes,
        sample=numbers(table["sample"], np.int64),
        live=numbers(table["live"], bool),
        error=numbers(pc.fill_null(errors.indices, -1), np.int32),
        latency=numbers(table["latency"], np.float64),
        output_tokens=numbers(table["output_tokens"], np.int64),
        retries=numbers(table["retries"], np.int64),
        text=text.to_pylist(),
        cut=cut,
    ), numbers(table["has_logprobs"], bool)


def _fields(metadata: str | None) -> dict[str, str]:
    """A record's metadata (JSON text) as its fields' texts: a string as it is, anything else as
    JSON; each cut to `_METADATA_CHARS` (and "…" then)."""
    found = orjson.loads(metadata) if metadata else None
    if not isinstance(found, dict):
        return {}
    texts = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in found.items()}
    return {
        k: v if len(v) <= _METADATA_CHARS else v[:_METADATA_CHARS] + "…" for k, v in texts.items()
    }


def _sample(view: View, rows: Rows, flags: np.ndarray, limits: Limits) -> LogprobSample:
    """The answers whose token logprobs the page keeps (see `LogprobSample`); `flags`: which
    rows have token logprobs."""
    sample = LogprobSample(limits.logprob_answers, limits.logprob_positions)
    candidates = np.flatnonzero(flags)
    sample.total = len(candidates)
    if not len(candidates) or not sample.size:
        return sample
    ranks = np.array([zlib.crc32(p.encode()) for p in rows.prompts], dtype=np.int64)
    order = np.lexsort((candidates, ranks[rows.prompt[candidates]]))
    chosen = np.sort(candidates[order[: sample.size]])
    lines = numbers(view.arrow("SELECT line FROM latest ORDER BY line")["line"], np.int64)
    wanted = dict(zip(lines[chosen].tolist(), chosen.tolist(), strict=True))
    for number, line in _numbered_lines(view.ledger):
        row = wanted.pop(number, None)
        if row is None:
            continue
        record = parse_line(line)
        logprobs = record.get("token_logprobs") if record is not None else None
        if isinstance(logprobs, list):
            sample.cut += len(logprobs) > sample.positions
            sample.answers[row] = logprobs[: sample.positions]
        if not wanted:
            break
    return sample


def _numbered_lines(ledger: Path | Ledgers) -> Iterable[tuple[int, bytes]]:
    """Each line of the ledger with its number, as the view numbers them."""
    return enumerate(ledger.lines() if isinstance(ledger, Ledgers) else source_lines(ledger))


# Every result line of the ledger files whose seal and shape the view's pass checked (its
# `every_line`: each once, however often a shard tree holds it), the fields the timeline reads.
_LINE_COLUMNS = {
    "key": "JSON",
    "crc": "VARCHAR",
    "type": "JSON",
    "status": "JSON",
    "variant": "JSON",
    "run_id": "JSON",
    "timestamp": "JSON",
    "retry_count": "JSON",
    "error": "JSON",
    "attempt_errors": "JSON",
}
_OURS = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"
_TIMELINE = f"""
SELECT stamp,
       CASE WHEN regexp_full_match(stamp, '{_OURS}')
            THEN epoch_us(strptime(stamp, '%Y-%m-%dT%H:%M:%S.%gZ')::TIMESTAMP)::DOUBLE / 1e6
       END AS seconds,
       run_id, ok, retries, errors
FROM (
    SELECT DISTINCT ON (e.line) e.line,
           CASE WHEN starts_with(l.timestamp, '"') THEN l.timestamp->>'$' END AS stamp,
           CASE WHEN l.run_id IS NULL OR l.run_id = 'null' THEN 'None'
                WHEN starts_with(l.run_id, '"') THEN l.run_id->>'$'
                ELSE l.run_id::VARCHAR END AS run_id,
           l.status = '"ok"' AS ok,
           CASE WHEN regexp_full_match(l.retry_count, '-?[0-9]+')
                THEN TRY_CAST(l.retry_count::VARCHAR AS BIGINT)
                WHEN l.retry_count = 'true' THEN 1 ELSE 0 END AS retries,
           list_concat(
               [{_ERROR_TYPE.format(x="e")}
                FOR e IN coalesce(TRY_CAST(l.attempt_errors AS JSON[]), [])],
               CASE WHEN l.status != '"ok"' THEN [{_ERROR_TYPE.format(x="l.error")}]
                    ELSE [] END) AS errors,
           l.timestamp IS NOT NULL AND NOT starts_with(l.timestamp, '"') AS other_stamp
    FROM read_json(@files, format='newline_delimited', columns=@columns,
                   ignore_errors=true, maximum_object_size={LONGEST_LINE}) l
    JOIN every_line e ON l.key->>'$' = e.key AND l.crc = e.crc AND NOT e.parsed
    WHERE l.type IS NULL AND starts_with(l.key, '"') AND l.status IN ('"ok"', '"error"')
      AND starts_with(l.variant, '"') @only
)
ORDER BY line
"""


def _timeline(view: View, variants: set[str] | None) -> Timeline:
    """Every result line's time, answer, retries and failed attempts (see `Timeline`)."""
    files = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in view.paths) + "]"
    columns = "{" + ", ".join(f"'{n}': '{t}'" for n, t in _LINE_COLUMNS.items()) + "}"
    only = "AND list_contains(?, l.variant->>'$')" if variants is not None else ""
    sql = _TIMELINE.replace("@files", files).replace("@columns", columns).replace("@only", only)
    table = view.arrow(sql, [sorted(variants)] if variants is not None else None)
    stamps = table["stamp"].to_pylist()
    seconds = table["seconds"].to_numpy(zero_copy_only=False).astype(float, copy=True)
    for n in np.flatnonzero(np.isnan(seconds)).tolist():  # not the harness's own form
        found = epoch_seconds(stamps[n])
        seconds[n] = np.nan if found is None else found
    readable = ~np.isnan(seconds)
    errors = pc.list_flatten(pc.filter(table["errors"], pa.array(readable)))
    counts = pc.list_value_length(table["errors"]).to_numpy(zero_copy_only=False)
    timeline = Timeline(
        seconds=seconds[readable],
        ok=numbers(table["ok"], bool)[readable],
        retries=numbers(table["retries"], np.int64)[readable],
        error_at=np.repeat(seconds[readable], counts[readable].astype(np.intp)),
        error_type=errors.to_pylist(),
        unreadable=int(np.sum(~readable)),
    )
    runs = pc.dictionary_encode(table["run_id"]).combine_chunks()
    codes = numbers(runs.indices, np.int32)[readable]
    kept_stamps = np.array(stamps, dtype=object)[readable]
    for code, run_id in enumerate(runs.dictionary.to_pylist()):
        mine = np.flatnonzero(codes == code)
        if not len(mine):
            continue
        latest = float(seconds[readable][mine].max())
        at = mine[timeline.seconds[mine] == latest]
        timeline.last[run_id] = (latest, max(str(s) for s in kept_stamps[at]))
    return timeline


def prompt_texts(
    rows: Rows, prompts: dict[str, Prompt] | None, limit: int
) -> tuple[list[str | None], int, int]:
    """Each prompt's text, cut to `limit` characters (None: not at hand, or changed since its
    answers were made); how many were not at hand and how many were cut."""
    texts: list[str | None] = []
    missing = cut = 0
    for code, prompt_id in enumerate(rows.prompts):
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
