"""Ledgers and scores files for the analysis tests, written as the harness writes them: records
with the run path's field order, every line sealed by `LedgerWriter`."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.analysis.scores import SCHEMA, answer_digest, score_key
from harness.ledger.record import Record
from harness.ledger.writer import LedgerWriter


def answer(
    variant: str,
    prompt_id: str,
    sample: int = 0,
    *,
    category: str = "cve",
    probe: bool = False,
    response: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A schema-2 success record (a failure with `status="error"` and an `error`)."""
    status = fields.pop("status", "ok")
    ok = status == "ok"
    record = Record(
        key=f"{variant}|{prompt_id}|{sample}",
        status=status,
        prompt_hash=hashlib.sha256(prompt_id.encode()).hexdigest()[:16],
        schema=2,
        run_id="20261124T000000Z-test00",
        variant=variant,
        provider="simulated",
        model="sim-1",
        prompt_id=prompt_id,
        sample=sample,
        full_response=(response or f"{variant} on {prompt_id}") if ok else None,
        finish_reason="stop" if ok else None,
        finish_detail=None,
        tokens={"input": 10, "output": 20, "total": 30} if ok else None,
        cost_usd=0.001 if ok else 0.0,
        token_logprobs=None,
        sampling_params={"temperature": 0.0, "top_p": 1.0, "max_tokens": 64, "seed": 7, "stop": []},
        timestamp="2026-11-24T00:00:01.000Z",
        elapsed_seconds=0.5,
        retry_count=0,
        error=None,
        attempt_errors=[],
        prompt_category=category,
        is_synthetic_probe=probe,
        metadata={"subject": prompt_id},
        mode="live",
        batch_id=None,
        adapter=None,
    )
    return {**dataclasses.asdict(record), **fields}


def failure(variant: str, prompt_id: str, sample: int = 0, **fields: Any) -> dict[str, Any]:
    error = {
        "type": "ServerError",
        "message": "503 overloaded",
        "retryable": True,
        "status": 503,
        "retry_after": None,
    }
    return answer(variant, prompt_id, sample, status="error", error=error, **fields)


def write_ledger(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = LedgerWriter(path)
    for record in records:
        writer.append(record)
    writer.close()
    return path


def score(
    record: dict[str, Any],
    scorer: str,
    label: str | None,
    *,
    definition: str = "d0d0d0d0d0d0",
    value: float | None = None,
    status: str = "ok",
) -> dict[str, Any]:
    """A score line of `harness.analysis.scores`' format for `record`."""
    return {
        "key": score_key(record["key"], scorer),
        "status": status,
        "definition": definition,
        "answer": answer_digest(record),
        "type": "score",
        "schema": SCHEMA,
        "answer_key": record["key"],
        "scorer": scorer,
        "label": label if status == "ok" else None,
        "value": value,
        "rater": scorer.removeprefix("human:") if scorer.startswith("human:") else None,
        "detail": None,
        "error": None if status == "ok" else {"type": "ServerError", "message": "judge failed"},
        "timestamp": "2026-11-24T00:00:02.000Z",
    }


def write_scores(path: Path, lines: Iterable[dict[str, Any]]) -> Path:
    return write_ledger(path, lines)


def logprobs(*positions: list[float], chosen: list[float] | None = None) -> list[dict[str, Any]]:
    """Token logprobs: each position's alternatives' logprobs (most likely first); the chosen
    token is the first alternative unless `chosen` says its logprob."""
    return [
        {
            "token": f"t{n}",
            "logprob": top[0] if chosen is None else chosen[n],
            "top": [[f"t{n}_{k}", lp] for k, lp in enumerate(top)],
            "token_id": None,
            "top_ids": None,
        }
        for n, top in enumerate(positions)
    ]
