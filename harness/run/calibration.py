"""What a ledger's answers say about each variant: the tokens it used per prompt category, its
input tokens per character of prompt, and how long a request took. Reads the ledger, writes
nothing, and knows no scheduler and no provider.

A ledger of up to 32 MiB is read whole. A larger one is sampled: 256 windows of 128 KiB spread
evenly over the file, the last of them its end, so that a ledger of millions of records costs no
more to read than one of 30,000 (about as many as a sample holds), and the latest answers always
count. Every successful record read counts; a damaged line (its checksum fails) or one of no
record's shape does not (it never makes a job done either: only the resume index decides that).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.ledger.lines import is_result, parse_line

WINDOWS, WINDOW = 256, 128 << 10  # a larger ledger is sampled in this many windows of this size
WHOLE = WINDOWS * WINDOW  # a ledger up to this size is read whole (so windows never overlap)


@dataclass
class Tally:
    """Answers counted, and their token counts (a record's `tokens`) summed by kind."""

    answers: int = 0
    tokens: Counter[str] = field(default_factory=Counter)

    def add(self, tokens: Mapping[str, int]) -> None:
        """Count one answer's tokens."""
        self.answers += 1
        self.tokens.update(tokens)


@dataclass
class Observed:
    """One variant's answers: tallied per prompt category; tallied again, with the characters of
    their prompts, where the prompt is unchanged since (for tokens per character); and every
    latency."""

    by_category: dict[str, Tally] = field(default_factory=dict)
    prompted: Tally = field(default_factory=Tally)
    prompt_chars: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def answers(self) -> int:
        """How many answers were read."""
        return len(self.latencies)

    def latency_p50(self) -> float | None:
        """The median seconds of a request, or None without answers."""
        return statistics.median(self.latencies) if self.latencies else None


@dataclass
class Calibration:
    """Every planned variant's answers (absent: none read), and whether the ledger was sampled."""

    variants: dict[str, Observed]
    sampled: bool


def observe(
    paths: Sequence[Path], variants: Collection[str], prompts: Mapping[str, tuple[str, int]]
) -> Calibration:
    """Read the answers of `variants` in the ledgers at `paths` (each sampled alone when large;
    a missing ledger has none); `prompts` maps each prompt id to its content hash and its length
    in characters."""
    found: dict[str, Observed] = {}
    present = [path for path in paths if path.exists()]
    sampled = any(path.stat().st_size > WHOLE for path in present)
    lines = (line for path in present for line in _lines(path, path.stat().st_size > WHOLE))
    for line in lines:
        record = _answer(line)
        if record is None or record["variant"] not in variants:
            continue
        observed = found.setdefault(record["variant"], Observed())
        tokens = record["tokens"]
        observed.by_category.setdefault(record["prompt_category"], Tally()).add(tokens)
        known = prompts.get(record["prompt_id"])
        if known is not None and known[0] == record.get("prompt_hash"):
            observed.prompted.add(tokens)
            observed.prompt_chars += known[1]
        observed.latencies.append(float(record["elapsed_seconds"]))
    return Calibration(found, sampled)


def _lines(path: Path, sampled: bool) -> Iterator[bytes]:
    """Every line of the file, or the whole lines of its sampled windows."""
    with path.open("rb") as file:
        if not sampled:
            yield from file
            return
        size = path.stat().st_size
        step = (size - WINDOW) / (WINDOWS - 1)
        for index in range(WINDOWS):
            start = round(index * step)
            file.seek(start)
            pieces = file.read(WINDOW).split(b"\n")
            # The first piece may be the end of a line begun before the window, the last the
            # start of one that goes on past it (or empty, after a final newline).
            yield from pieces[1 if start else 0 : -1]


def _answer(line: bytes) -> dict[str, Any] | None:
    """A successful record (of a record's shape: see harness.ledger.lines.parse_line) with the
    fields calibration reads, or None."""
    record = parse_line(line)
    if record is None or not is_result(record) or record["status"] != "ok":
        return None
    if not all(name in record for name in ("tokens", "elapsed_seconds", "prompt_category")):
        return None
    return record if record["tokens"] is not None else None
