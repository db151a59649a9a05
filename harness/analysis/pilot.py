"""`harness export --format pilot-json`: the legacy pilot's combined results file, so analysis
scripts written for the old tool keep working.

The file is one JSON object:

    {"metadata": {...},
     "runs": [{"model_config": {...}, "results": [{...}, ...]}, ...]}

- `metadata`: `format` ("harness pilot-json 1"), `exported_at`, `harness_version`, `ledger`,
  `run_ids` (every run of the ledger, oldest first), `prompts_file` and `prompts_sha256` (of the
  latest run), `total_runs`, `total_results`, `successful`, `failed`, `scorers`.
- one run per variant, in the order variants first appear in the ledger. `model_config` is what
  the latest run line says the variant is: `name`, `variant` (its id), `provider`, `model`,
  `temperature`, `top_p`, `max_tokens`, `seed` (the config's; each answer's own seed is in its
  result), `stop`, `options` (answer-defining provider options); a variant no run line names
  takes them from its first record.
- `results`: the latest record of each of its jobs, in ledger order: `key`, `prompt_id`,
  `category`, `is_synthetic_probe`, `sample`, `response` (null for a failure), `success`,
  `error` ("Type: message" or null), `finish_reason`, `tokens_used` (input + output),
  `input_tokens`, `output_tokens`, `cost_usd`, `latency_seconds`, `timestamp`, `retry_count`,
  `mode` ("live" or "batch"), `adapter` (the LoRA adapter that answered, or null), `seed`,
  `metadata` (the prompt's other fields), `scores` ({scorer: current label}) and
  `token_logprobs`: null without logprobs, else one `{token_position, token, logprob,
  top_tokens, top_logprobs}` per generated token (position from 0; the alternatives sorted most
  likely first, as the ledger's `top`).

Built from the analysis's view of the ledger (`harness.analysis.view`): DuckDB hands the rows
over in batches, a variant after another, written as they come, so memory holds a batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson

from harness.analysis.answers import run_lines
from harness.analysis.export import PILOT_FORMAT, Exported, scorer_order
from harness.analysis.view import View, open_view
from harness.ledger.record import utc_timestamp
from harness.ledger.sets import Advance, Ledgers
from harness.version import package_version
from harness.whole import written_whole

_BATCH = 4_096  # rows DuckDB hands over at once
# The view's fields a result is made of (JSON objects as their text).
_SELECTED = (
    "key, variant, provider, model, prompt_id, prompt_category, is_synthetic_probe, sample, "
    "full_response, status, error::VARCHAR AS error, finish_reason, tokens::VARCHAR AS tokens, "
    "cost_usd, elapsed_seconds, timestamp, retry_count, mode, adapter, "
    "sampling_params::VARCHAR AS sampling_params, metadata::VARCHAR AS metadata, token_logprobs"
)


def write_pilot_json(
    ledger: Path | Ledgers,
    scores: Path,
    target: Path,
    advance: Advance | None = None,
    threads: int | None = None,
) -> Exported:
    """Write the pilot's results file for `ledger` and the scores file `scores` (which may not
    exist) to `target`, whole; `threads`: DuckDB's (None: one per core)."""
    with open_view(ledger, scores, threads=threads, advance=advance) as view:
        return _write(view, ledger, target)


def _write(view: View, ledger: Path | Ledgers, target: Path) -> Exported:
    connection = view.connection
    total, successful = connection.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM latest"
    ).fetchall()[0]
    variants = connection.execute("SELECT count(DISTINCT variant) FROM latest").fetchall()[0][0]
    scorers = scorer_order(view)
    runs = run_lines(ledger)
    metadata = {
        "format": PILOT_FORMAT,
        "exported_at": utc_timestamp(),
        "harness_version": package_version("harness"),
        "ledger": str(ledger.resolve() if isinstance(ledger, Path) else ledger),
        "run_ids": [run.get("run_id") for run in runs],
        "prompts_file": _latest(runs, "prompts", "path"),
        "prompts_sha256": _latest(runs, "prompts", "file_sha256"),
        "total_runs": variants,
        "total_results": total,
        "successful": successful,
        "failed": total - successful,
        "scorers": sorted(view.scorers),
    }
    labels = "".join(
        f", {_ident('score.' + name)} AS __score_{number}" for number, name in enumerate(scorers)
    )
    reader = connection.sql(
        f"SELECT {_SELECTED}{labels} FROM answers "
        "ORDER BY min(line) OVER (PARTITION BY variant), line"
    ).to_arrow_reader(_BATCH)
    with written_whole(target) as temporary, temporary.open("wb") as file:
        file.write(b'{"metadata": ' + orjson.dumps(metadata) + b',\n "runs": [')
        variant = None
        for batch in reader:
            for record in map(_parsed, batch.to_pylist()):
                if record["variant"] != variant:
                    _begin_run(file, record, runs, first=variant is None)
                    variant = record["variant"]
                else:
                    file.write(b",\n   ")
                file.write(orjson.dumps(_result(record, scorers)))
        if variant is not None:
            file.write(b"\n  ]}")
        file.write(b"\n]}\n")
    return Exported(total, view.labels.skipped, view.skipped)


def _begin_run(
    file: IO[bytes], record: dict[str, Any], runs: list[dict[str, Any]], *, first: bool
) -> None:
    """Close the run before (unless `first`) and open the run of `record`'s variant."""
    file.write(b"\n" if first else b"\n  ]},\n")
    config = _model_config(record["variant"], runs, record)
    file.write(b'{"model_config": ' + orjson.dumps(config) + b',\n  "results": [\n   ')


def _parsed(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its JSON objects read."""
    for name in ("error", "tokens", "sampling_params", "metadata"):
        text = row[name]
        row[name] = None if text is None else orjson.loads(text)
    return row


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _model_config(
    variant: str, runs: list[dict[str, Any]], record: dict[str, Any]
) -> dict[str, Any]:
    """The variant as the latest run line that names it says it is, else as its record says."""
    named = [run["variants"][variant] for run in runs if variant in (run.get("variants") or {})]
    if named:
        identity = named[-1]
        sampling = identity.get("sampling") or {}
        name, provider, model = (
            identity.get("name"),
            identity.get("provider"),
            identity.get("model"),
        )
        options = identity.get("options") or {}
    else:
        sampling = record.get("sampling_params") or {}
        name, provider, model = variant.partition("@")[0], record["provider"], record["model"]
        options = {}
    return {
        "name": name,
        "variant": variant,
        "provider": provider,
        "model": model,
        "temperature": sampling.get("temperature"),
        "top_p": sampling.get("top_p"),
        "max_tokens": sampling.get("max_tokens"),
        "seed": sampling.get("seed"),
        "stop": sampling.get("stop"),
        "options": options,
    }


def _result(record: dict[str, Any], scorers: list[str]) -> dict[str, Any]:
    ok = record["status"] == "ok"
    tokens = record["tokens"] or {}
    error = record["error"]
    return {
        "key": record["key"],
        "prompt_id": record["prompt_id"],
        "category": record["prompt_category"],
        "is_synthetic_probe": record["is_synthetic_probe"],
        "sample": record["sample"],
        "response": record["full_response"],
        "success": ok,
        "error": f"{error.get('type')}: {error.get('message')}"
        if isinstance(error, dict)
        else None,
        "finish_reason": record["finish_reason"],
        "tokens_used": (tokens.get("input") or 0) + (tokens.get("output") or 0) if tokens else None,
        "input_tokens": tokens.get("input"),
        "output_tokens": tokens.get("output"),
        "cost_usd": record["cost_usd"],
        "latency_seconds": record["elapsed_seconds"],
        "timestamp": record["timestamp"],
        "retry_count": record["retry_count"],
        "mode": record["mode"],
        "adapter": record["adapter"],
        "seed": (record["sampling_params"] or {}).get("seed"),
        "metadata": record["metadata"] or {},
        "scores": {name: record[f"__score_{n}"] for n, name in enumerate(scorers)},
        "token_logprobs": _token_logprobs(record["token_logprobs"]),
    }


def _token_logprobs(positions: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not positions:
        return None
    return [
        {
            "token_position": number,
            "token": position["token"],
            "logprob": position["logprob"],
            "top_tokens": position["top_tokens"],
            "top_logprobs": position["top_logprobs"],
        }
        for number, position in enumerate(positions)
    ]


def _latest(runs: list[dict[str, Any]], table: str, name: str) -> Any:
    for run in reversed(runs):
        value = (run.get(table) or {}).get(name)
        if value is not None:
            return value
    return None
