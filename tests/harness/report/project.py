"""A run's output folder for the report tests: a prompts file, a ledger with a run line and three
variants' records (one variant with token logprobs, failures of two error types, a failure
answered since, answers that try to break out of the page), and two scorers' labels. The records
are returned too, so a test computes what the page must show from the same data."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.prompts.load import as_source, load_prompts
from tests.harness.analysis.ledgers import (
    answer,
    failure,
    logprobs,
    score,
    write_ledger,
    write_scores,
)

VARIANTS = ("alpha@t0-aaaaaa", "beta@t0-bbbbbb", "gamma@t0.7-cccccc")
CATEGORIES = ("cve", "pkg", "api")
SECRET = "sk-report-test-0123456789"  # the value of SECRET_ENV: must never reach the page
SECRET_ENV = "REPORT_TEST_API_KEY"
# Strings from the ledger that would script or break the page if it took them as HTML.
BREAKOUT = '</script><script>window.__pwned = "script"</script>'
IMAGE = '<img src="x" onerror="window.__pwned = \'img\'">'


@dataclass
class Project:
    output: Path
    prompts: list[dict[str, Any]]
    records: list[dict[str, Any]]  # every result line, in ledger order

    def latest(self) -> list[dict[str, Any]]:
        """The latest record of every key, in the order of their first line."""
        found: dict[str, dict[str, Any]] = {}
        for record in self.records:
            found[record["key"]] = record
        return list(found.values())


def _prompt_items() -> list[dict[str, Any]]:
    items = []
    for i in range(12):
        text = f"Does thing number {i} exist?"
        if i == 1:
            text += " " + BREAKOUT
        if i == 2:
            text += " " + IMAGE
        items.append(
            {
                "id": f"p{i:02d}",
                "prompt": text,
                "category": CATEGORIES[i % 3],
                "is_synthetic_probe": i % 3 == 0,
            }
        )
    return items


def _text(variant: str, i: int) -> str:
    if variant.startswith("beta") and i == 4:
        return f"{BREAKOUT}{IMAGE} Yes, it exists."
    if variant.startswith("alpha") and i == 6:
        return "Somewhere the NeEdLe is hidden; it does not exist."
    if variant.startswith("alpha") and i == 8:
        return f"The key is {SECRET}; yes, it exists."
    return f"{variant} says: " + ("yes, it exists." if (i + len(variant)) % 2 else "no record.")


def write_project(root: Path) -> Project:
    """The output folder root/out, with its prompts file at root/prompts.json."""
    items = _prompt_items()
    prompts_file = root / "prompts.json"
    prompts_file.write_text(json.dumps({"prompts": items}))
    hashes = {p.id: p.hash for p in load_prompts(as_source(prompts_file))}
    records: list[dict[str, Any]] = []
    for variant in VARIANTS:
        for i, item in enumerate(items):
            common = {
                "category": item["category"],
                "probe": item["is_synthetic_probe"],
                "prompt_hash": hashes[item["id"]],
            }
            if variant.startswith("alpha") and i == 3:  # failed, then answered
                records.append(failure(variant, item["id"], **common))
            if (variant.startswith("alpha") and i == 5) or (variant.startswith("beta") and i == 7):
                error = {
                    "type": "ServerError" if i == 5 else "RateLimited",
                    "message": "503 overloaded" if i == 5 else "429 slow down",
                    "retryable": True,
                    "status": 503 if i == 5 else 429,
                    "retry_after": None,
                }
                failed = {"status": "error", "error": error, "retry_count": 4}
                records.append(answer(variant, item["id"], **failed, **common))
                continue
            tops = [[-0.1 - 0.05 * i, -1.5, -2.5, -3.5, -4.5], [-0.7, -0.9, -2.0, -3.0, -5.0]]
            records.append(
                answer(
                    variant,
                    item["id"],
                    response=_text(variant, i),
                    token_logprobs=logprobs(*tops) if variant.startswith("gamma") else None,
                    elapsed_seconds=0.2 + 0.1 * i,
                    timestamp=f"2026-11-24T00:00:{10 + i:02d}.000Z",
                    **common,
                )
            )
    output = root / "out"
    write_ledger(output / "ledger.jsonl", [_run_line(prompts_file), *records])
    project = Project(output, items, records)
    write_scores(output / "scores.jsonl", _scores(project))
    return project


def _scores(project: Project) -> list[dict[str, Any]]:
    lines = []
    for record in project.latest():
        if record["status"] != "ok":
            continue
        claims = "exists" if "exists" in record["full_response"] else "denies"
        lines.append(score(record, "claims", claims))
        if record["prompt_id"] < "p06":
            lines.append(score(record, "refusal", "no_refusal"))
    return lines


def _run_line(prompts_file: Path) -> dict[str, Any]:
    models = [
        {
            "name": name,
            "provider": "openai",
            "model": f"m-{name}",
            "options": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": SECRET_ENV},
        }
        for name in ("alpha", "beta", "gamma")
    ]
    return {
        "type": "run",
        "schema": 2,
        "run_id": "20261124T000000Z-test00",
        "command": "run",
        "argv": ["run", "report.toml"],
        "started": "2026-11-24T00:00:00.000Z",
        "harness_version": "0.1.0",
        "git_revision": "0123456789abcdef0123456789abcdef01234567",
        "git_dirty": True,
        "host": "testhost",
        "config_path": "/somewhere/report.toml",
        "config": {"models": models},
        "config_resolved": {"models": models},
        "prompts": {
            "path": str(prompts_file),
            "format": "auto",
            "count": 12,
            "file_sha256": hashlib.sha256(prompts_file.read_bytes()).hexdigest(),
            "content_sha256": "c" * 64,
        },
        "variants": {
            v: {"name": v.split("@")[0], "options": {"revision": "rev-" + v[:1]}} for v in VARIANTS
        },
        "plan": dict.fromkeys(VARIANTS, 12),
    }
