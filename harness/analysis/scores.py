"""Scores: labels given to answers, kept in their own append-only ledger beside the answers.

`OUTPUT/scores.jsonl` follows the ledger's rules (`harness.ledger.writer.LedgerWriter`: O_APPEND,
one writer at a time, every line sealed with its CRC, a torn tail set aside; the latest line per
key wins). One line per score, its first fields fixed:

    {"key": "<answer key>|<scorer>", "status": "ok" | "error", "definition": "<12 hex>",
     "answer": "<16 hex>", "type": "score", "schema": 1, "answer_key": "...", "scorer": "...",
     "label": str | null, "value": number | null, "rater": str | null, "detail": str | null,
     "error": {...} | null, "input": "<16 hex>" | null, "timestamp": "...", "crc": "<8 hex>"}

- `scorer`: the scorer's name in the config (`[[scorers]] name`), or `human:<rater>` for one
  rater's annotation (`rater` then names the rater).
- `definition`: the hash of everything that defines the scorer (patterns, rubric, judge variant,
  verdict parser): edit a scorer and its old scores stop counting for it.
- `answer`: the digest of the answer scored (`answer_digest`): an answer rerun under the same key
  makes its old scores stale.
- `input`: for a scorer that is given more than the answer (a judge's rendered rubric, with the
  prompt and its fields), the content hash of that input: a prompt field the rubric uses (say
  `{target}`) edited for one prompt makes the scores of that prompt's answers stale, and only
  theirs. Null for rule scorers and human raters.
- `status` "error" is a score that could not be given (a judge request that failed for good);
  an unparseable verdict is an "ok" score with label `UNPARSEABLE` and the verdict in `detail`.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import orjson

from harness.analysis.answers import lines_at
from harness.input_files import refuse_special
from harness.ledger.lines import parse_sealed
from harness.ledger.record import utc_timestamp
from harness.ledger.sets import Advance

SCORES_NAME = "scores.jsonl"
SCHEMA = 1


def score_key(answer_key: str, scorer: str) -> str:
    """The key a score's latest line wins under: one per answer and scorer."""
    return f"{answer_key}|{scorer}"


def answer_digest(record: Mapping[str, Any]) -> str:
    """16 hex digits identifying an answer: its prompt's content hash and its full response."""
    body = orjson.dumps([record.get("prompt_hash"), record.get("full_response")])
    return hashlib.sha256(body).hexdigest()[:16]


def definition_hash(definition: Mapping[str, Any]) -> str:
    """12 hex digits of a scorer's definition (every field that can change a label)."""
    body = orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()[:12]


def score_line(
    answer_key: str,
    scorer: str,
    *,
    definition: str,
    answer: str,
    status: str = "ok",
    label: str | None = None,
    value: float | None = None,
    rater: str | None = None,
    detail: str | None = None,
    error: Mapping[str, Any] | None = None,
    input: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """One score as its line (before sealing), its fields in the documented order; `timestamp`
    defaults to now."""
    return {
        "key": score_key(answer_key, scorer),
        "status": status,
        "definition": definition,
        "answer": answer,
        "type": "score",
        "schema": SCHEMA,
        "answer_key": answer_key,
        "scorer": scorer,
        "label": label,
        "value": value,
        "rater": rater,
        "detail": detail,
        "error": dict(error) if error is not None else None,
        "input": input,
        "timestamp": timestamp or utc_timestamp(),
    }


# A finite number: JSON's 1e999 is read as infinity, which is no score's value.
_Finite = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]


class ScoreLine(msgspec.Struct, gc=False):
    """The shape of a scores line every reader of scores relies on (a line that is not of it is
    skipped and counted like a damaged one); fields it does not name are left out."""

    key: str
    status: Literal["ok", "error"]
    answer_key: str
    scorer: str
    definition: str
    answer: str
    type: Literal["score"]
    label: str | None = None
    value: _Finite | None = None  # never a bool
    rater: str | None = None
    detail: str | None = None
    input: str | None = None
    timestamp: str | None = None
    error: dict[str, Any] | None = None


def is_score(obj: Mapping[str, Any]) -> bool:
    """Whether a parsed line is of the shape of `ScoreLine`."""
    try:
        msgspec.convert(obj, ScoreLine)
    except msgspec.ValidationError:
        return False
    return True


@dataclass(frozen=True)
class Verdict:
    """A label given to one answer, its value (null: none) and why (the score's `detail`)."""

    label: str
    value: float | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class ScoreState:
    """What tells whether a score is current, and its label: all `harness score` keeps of a
    score's latest line (a few hundred bytes, against a parsed line's kilobyte and more)."""

    status: str
    definition: str
    answer: str
    input: str | None
    label: str | None

    @classmethod
    def of(cls, line: Mapping[str, Any]) -> ScoreState:
        """The state of a parsed score line."""
        status, definition, answer = line["status"], line["definition"], line["answer"]
        return cls(status, definition, answer, line.get("input"), line.get("label"))

    def current(self, definition: str, answer: str, input: str | None = None) -> bool:
        """Whether it scores this answer with the scorer as defined now (and, for a scorer given
        more than the answer, from the same `input`)."""
        return self.made_by(definition, answer) and self.input == input

    def made_by(self, definition: str, answer: str) -> bool:
        """Whether it scores this answer with the scorer as defined now, whatever else the
        scorer was given (what a target scorer reading its label asks)."""
        return self.status == "ok" and (self.definition, self.answer) == (definition, answer)


@dataclass
class ScoreFile:
    """The latest line of every score key, and how many lines could not be read."""

    latest: dict[str, dict[str, Any]]
    skipped: int = 0

    def current(
        self, answer_key: str, scorer: str, definition: str, answer: str, input: str | None = None
    ) -> bool:
        """Whether this answer already has a score from this scorer as defined now (and, for a
        scorer given more than the answer, from the same `input`)."""
        line = self.latest.get(score_key(answer_key, scorer))
        return line is not None and ScoreState.of(line).current(definition, answer, input)


def read_scores(path: Path) -> ScoreFile:
    """Every score key's latest line; a missing file has none. Damaged lines are skipped and
    counted, never guessed at."""
    scores = ScoreFile({})
    for obj in score_lines(path):
        if obj is None:
            scores.skipped += 1
        else:
            scores.latest[obj["key"]] = obj
    return scores


def read_score_states(path: Path, scorers: Collection[str]) -> tuple[dict[str, ScoreState], int]:
    """The latest state of every score key of the named scorers, and how many lines could not be
    read. Repeated strings (statuses, definitions, labels) are kept once, not once a line."""
    states: dict[str, ScoreState] = {}
    skipped = 0
    shared: dict[Any, Any] = {}
    for obj in score_lines(path):
        if obj is None:
            skipped += 1
        elif obj["scorer"] in scorers:
            for name in ("status", "definition", "label"):
                obj[name] = shared.setdefault(obj.get(name), obj.get(name))
            states[obj["key"]] = ScoreState.of(obj)
    return states, skipped


def known_scorers(path: Path, runs: Iterable[Mapping[str, Any]]) -> set[str]:
    """The scorers a run's `--scorer` may name: those with a line in the scores file at `path`,
    and those the configs of `runs` (the ledger's run lines) define."""
    names = {obj["scorer"] for obj in score_lines(path) if obj is not None}
    for run in runs:
        config = run.get("config_resolved")
        tables = config.get("scorers") if isinstance(config, Mapping) else None
        for table in tables if isinstance(tables, list) else ():
            if isinstance(table, Mapping) and isinstance(table.get("name"), str):
                names.add(table["name"])
    return names


def score_lines(path: Path, advance: Advance | None = None) -> Iterator[dict[str, Any] | None]:
    """Every non-blank line of a scores file parsed, None for one that is damaged or not a
    score; a missing file has none. `advance`: as `harness.analysis.answers.lines_at`."""
    if not path.exists():
        return
    refuse_special(path)
    for _, line in lines_at(path, advance):
        if line.strip():
            obj = parse_sealed(line, always_sealed=True)
            yield obj if obj is not None and is_score(obj) else None
