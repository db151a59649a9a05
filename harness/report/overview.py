"""The report's overview: each run's provenance (from its `{"type": "run"}` line), and per
variant the jobs done, failed and pending, tokens, latency, cost and wall time (the `status`
summary, `harness.run.summary.summarize`). Every string passes `harness.scrub` on its way to the
page.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from harness.run.tally import Summary
from harness.scrub import (
    REDACTED,
    SECRETS,
    named_secrets,
    redact_url,
    referenced_secrets,
    url_secrets,
)


def learn_secrets(runs: list[dict[str, Any]]) -> None:
    """Add to the process's secrets what the run lines' configs point at: the values of the
    environment variables they name (`${VAR}`, `api_key_env`) and passwords in their URLs. The
    run lines were redacted when written; this catches what a reader's environment knows."""
    for run in runs:
        raw, resolved = run.get("config"), run.get("config_resolved")
        found = referenced_secrets(raw) | url_secrets(resolved) | named_secrets(resolved)
        SECRETS.add(*(value for value in found if value != REDACTED))


def run_rows(runs: list[dict[str, Any]], run_end: dict[str, str]) -> list[dict[str, Any]]:
    """What the page shows of each run, oldest first."""
    return [_run_row(run, run_end.get(str(run.get("run_id")))) for run in runs]


def _run_row(run: dict[str, Any], ended: str | None) -> dict[str, Any]:
    prompts = _table(run, "prompts")
    shard = _table(run, "shard")
    return {
        "run_id": run.get("run_id"),
        "started": run.get("started"),
        "ended": ended,
        "wall_seconds": _seconds_between(run.get("started"), ended),
        "command": " ".join(str(word) for word in run.get("argv") or []),
        "git_revision": run.get("git_revision"),
        "git_dirty": run.get("git_dirty"),
        "config_path": run.get("config_path"),
        "harness_version": run.get("harness_version"),
        "host": run.get("host"),
        "gpu": run.get("gpu"),
        "python": run.get("python"),
        "prompts": {
            key: prompts.get(key)
            for key in ("path", "count", "file_sha256", "content_sha256", "hub_commit", "split")
            if prompts.get(key) is not None
        },
        "shard": f"{shard.get('index')}/{shard.get('count')}" if shard else None,
        "models": _models(run),
    }


def _models(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Each model of the run: provider, model id, server (base_url) and weights' revision where
    the config or the variants' identities record them."""
    config = _table(run, "config_resolved")
    variants = _table(run, "variants")
    revisions: dict[str, set[str]] = {}
    for identity in variants.values():
        options = identity.get("options") if isinstance(identity, dict) else None
        revision = options.get("revision") if isinstance(options, dict) else None
        if isinstance(revision, str):
            revisions.setdefault(str(identity.get("name")), set()).add(revision)
    rows = []
    for model in config.get("models") or []:
        if not isinstance(model, dict):
            continue
        options = _table(model, "options")
        name = str(model.get("name"))
        rows.append(
            {
                "name": name,
                "provider": model.get("provider"),
                "model": model.get("model") or name,
                "mode": model.get("mode"),
                "base_url": _url(options.get("base_url")),
                "revision": ", ".join(sorted(revisions.get(name, ()))) or options.get("revision"),
            }
        )
    return rows


def _table(line: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The table at `key` of a line; empty when it is missing or not a table."""
    value = line.get(key)
    return value if isinstance(value, dict) else {}


def _url(value: Any) -> Any:
    """A URL as the page shows it: its userinfo and query values redacted (a run line written
    before they were is shown the same way)."""
    return redact_url(value) if isinstance(value, str) else value


def variant_rows(
    summary: Summary, planned: set[str], only: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Each variant's (of `only`, when given) counts, tokens, latency, cost and wall time;
    pending is null for a variant no run line planned (not known)."""
    return [
        {
            "variant": s.variant,
            "ok": s.ok,
            "failed": s.failed,
            "pending": s.pending if s.variant in planned else None,
            "retried": s.retried,
            "input_tokens": s.input_tokens,
            "output_tokens": s.output_tokens,
            "p50": s.latency(0.5),
            "p95": s.latency(0.95),
            "wall_seconds": s.wall_seconds,
            "cost_usd": None if s.cost_unknown else s.cost_usd,
        }
        for s in summary.variants
        if not only or s.variant in only
    ]


def planned_variants(runs: list[dict[str, Any]]) -> set[str]:
    """The variants some run line planned (their pending jobs are known)."""
    found: set[str] = set()
    for run in runs:
        shard = _table(run, "shard")
        for plan in (run.get("plan"), shard.get("plan_unsharded")):
            if isinstance(plan, dict):
                found.update(plan)
    return found


def _seconds_between(start: Any, end: Any) -> float | None:
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None
