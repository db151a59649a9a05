"""Scores: labels given to answers, kept in their own append-only ledger beside the answers.

`OUTPUT/scores.jsonl` follows the ledger's rules (`harness.ledger.LedgerWriter`: O_APPEND, one
writer at a time, every line sealed with its CRC, a torn tail set aside; the latest line per key
wins). One line per score, its first fields fixed:

    {"key": "<answer key>|<scorer>", "status": "ok" | "error", "definition": "<12 hex>",
     "answer": "<16 hex>", "type": "score", "schema": 1, "answer_key": "...", "scorer": "...",
     "label": str | null, "value": number | null, "rater": str | null, "detail": str | null,
     "error": {...} | null, "timestamp": "...", "crc": "<8 hex>"}

- `scorer`: the scorer's name in the config (`[[scorers]] name`), or `human:<rater>` for one
  rater's annotation (`rater` then names the rater).
- `definition`: the hash of everything that defines the scorer (patterns, rubric, judge variant,
  verdict parser): edit a scorer and its old scores stop counting for it.
- `answer`: the digest of the answer scored (`answer_digest`): an answer rerun under the same key
  makes its old scores stale.
- `status` "error" is a score that could not be given (a judge request that failed for good);
  an unparseable verdict is an "ok" score with label `UNPARSEABLE` and the verdict in `detail`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harness.ledger import parse_sealed

SCORES_NAME = "scores.jsonl"
SCHEMA = 1
UNPARSEABLE = "UNPARSEABLE"


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


def is_score(obj: Mapping[str, Any]) -> bool:
    """Whether a parsed line has the fields every reader of scores relies on."""
    return (
        obj.get("type") == "score"
        and isinstance(obj.get("key"), str)
        and obj.get("status") in ("ok", "error")
        and isinstance(obj.get("answer_key"), str)
        and isinstance(obj.get("scorer"), str)
        and isinstance(obj.get("definition"), str)
        and isinstance(obj.get("answer"), str)
    )


@dataclass
class ScoreFile:
    """The latest line of every score key, and how many lines could not be read."""

    latest: dict[str, dict[str, Any]]
    skipped: int = 0

    def current(self, answer_key: str, scorer: str, definition: str, answer: str) -> bool:
        """Whether this answer already has a score from this scorer as defined now."""
        line = self.latest.get(score_key(answer_key, scorer))
        return (
            line is not None
            and line["status"] == "ok"
            and line["definition"] == definition
            and line["answer"] == answer
        )


def read_scores(path: Path) -> ScoreFile:
    """Every score key's latest line; a missing file has none. Damaged lines are skipped and
    counted, never guessed at."""
    scores = ScoreFile({})
    if not path.exists():
        return scores
    with path.open("rb") as file:
        for line in file:
            if not line.strip():
                continue
            obj = parse_sealed(line, always_sealed=True)
            if obj is None or not is_score(obj):
                scores.skipped += 1
            else:
                scores.latest[obj["key"]] = obj
    return scores
