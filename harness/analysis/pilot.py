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

Written whole, a variant at a time: memory holds offsets, never the results.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

import orjson

from harness.analysis.answers import held, records_at, run_lines, scan
from harness.analysis.export import PILOT_FORMAT, Exported
from harness.analysis.labels import Labels, read_labels
from harness.analysis.scores import answer_digest
from harness.bulk import collector_paused
from harness.ledger.lines import parse_line
from harness.ledger.record import utc_timestamp
from harness.ledger.sets import Advance, Ledgers
from harness.version import package_version
from harness.whole import written_whole


def write_pilot_json(
    ledger: Path | Ledgers, scores: Path, target: Path, advance: Advance | None = None
) -> Exported:
    """Write the pilot's results file for `ledger` and the scores file `scores` (which may not
    exist) to `target`, whole."""
    with (
        collector_paused(),
        held(ledger) as source,
    ):  # every pass reads this one source
        return _write(ledger, source, scores, target, advance)


def _write(
    ledger: Path | Ledgers,
    source: BinaryIO | Ledgers,
    scores: Path,
    target: Path,
    advance: Advance | None,
) -> Exported:
    latest: dict[str, tuple[str, bool]] = {}  # key -> (variant, answered), of its latest record

    def observe(record: dict[str, Any]) -> None:
        latest[record["key"]] = (record["variant"], record["status"] == "ok")

    found = scan(source, advance, observe)  # every line parsed whole: none is left out later
    offsets = found.offsets
    labels = read_labels(scores, advance=advance)
    by_variant: dict[str, list[int]] = {}
    for key, offset in offsets.items():
        by_variant.setdefault(latest[key][0], []).append(offset)
    runs = run_lines(ledger)
    successful = sum(answered for _, answered in latest.values())
    metadata = {
        "format": PILOT_FORMAT,
        "exported_at": utc_timestamp(),
        "harness_version": package_version("harness"),
        "ledger": str(ledger.resolve() if isinstance(ledger, Path) else ledger),
        "run_ids": [run.get("run_id") for run in runs],
        "prompts_file": _latest(runs, "prompts", "path"),
        "prompts_sha256": _latest(runs, "prompts", "file_sha256"),
        "total_runs": len(by_variant),
        "total_results": len(offsets),
        "successful": successful,
        "failed": len(offsets) - successful,
        "scorers": sorted(labels.scorers),
    }
    with written_whole(target) as temporary, temporary.open("wb") as file:
        file.write(b'{"metadata": ' + orjson.dumps(metadata) + b',\n "runs": [')
        for number, (variant, at) in enumerate(by_variant.items()):
            file.write(b",\n" if number else b"\n")
            _write_run(file, source, variant, sorted(at), runs, labels)
        file.write(b"\n]}\n")
    return Exported(len(offsets), labels.skipped, found.skipped)


def _write_run(
    file: IO[bytes],
    source: BinaryIO | Ledgers,
    variant: str,
    offsets: list[int],
    runs: list[dict[str, Any]],
    labels: Labels,
) -> None:
    config: dict[str, Any] | None = None
    for number, record in enumerate(_records(source, offsets)):
        if config is None:
            config = _model_config(variant, runs, record)
            file.write(b'{"model_config": ' + orjson.dumps(config) + b',\n  "results": [\n   ')
        file.write(b",\n   " if number else b"")
        file.write(orjson.dumps(_result(record, labels)))
    file.write(b"\n  ]}")


def _records(source: BinaryIO | Ledgers, offsets: list[int]) -> Iterator[dict[str, Any]]:
    """The records at `offsets` (ascending): read where they are in one file, or picked from a
    pass through several ledgers (one pass per variant)."""
    if isinstance(source, Ledgers):
        yield from records_at(source, offsets)
        return
    for offset in offsets:
        source.seek(offset)
        record = parse_line(source.readline())
        if record is not None:
            yield record


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


def _result(record: dict[str, Any], labels: Labels) -> dict[str, Any]:
    ok = record["status"] == "ok"
    tokens = record.get("tokens") or {}
    error = record.get("error")
    digest = answer_digest(record) if ok and labels.scorers else ""
    scores = {}
    for name, scorer in labels.scorers.items():
        given = scorer.label_of(record["key"], digest) if ok else None
        scores[name] = given[0] if given else None
    return {
        "key": record["key"],
        "prompt_id": record["prompt_id"],
        "category": record.get("prompt_category"),
        "is_synthetic_probe": record.get("is_synthetic_probe"),
        "sample": record["sample"],
        "response": record.get("full_response"),
        "success": ok,
        "error": f"{error.get('type')}: {error.get('message')}"
        if isinstance(error, dict)
        else None,
        "finish_reason": record.get("finish_reason"),
        "tokens_used": (tokens.get("input") or 0) + (tokens.get("output") or 0) if tokens else None,
        "input_tokens": tokens.get("input"),
        "output_tokens": tokens.get("output"),
        "cost_usd": record.get("cost_usd"),
        "latency_seconds": record.get("elapsed_seconds"),
        "timestamp": record.get("timestamp"),
        "retry_count": record.get("retry_count"),
        "mode": record.get("mode"),
        "adapter": record.get("adapter"),
        "seed": (record.get("sampling_params") or {}).get("seed"),
        "metadata": record.get("metadata") or {},
        "scores": scores,
        "token_logprobs": _token_logprobs(record.get("token_logprobs")),
    }


def _token_logprobs(positions: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not positions:
        return None
    return [
        {
            "token_position": number,
            "token": position.get("token"),
            "logprob": position.get("logprob"),
            "top_tokens": [token for token, _ in position.get("top") or ()],
            "top_logprobs": [logprob for _, logprob in position.get("top") or ()],
        }
        for number, position in enumerate(positions)
    ]


def _latest(runs: list[dict[str, Any]], table: str, name: str) -> Any:
    for run in reversed(runs):
        value = (run.get(table) or {}).get(name)
        if value is not None:
            return value
    return None
