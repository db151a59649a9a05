"""The record of a finished job: its answer (`success_record`) or its last error
(`failure_record`), with what every record says of its job (key, prompt, variant, timing, attempts).
The record's shape and line format are the ledger's (`harness.ledger.record`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.api.types import Completion
from harness.errors import ProviderError
from harness.ledger.record import SCHEMA, Mode, Record, utc_timestamp
from harness.run.jobs import Job


def success_record(
    run_id: str,
    job: Job,
    completion: Completion,
    *,
    elapsed: float,
    attempt_errors: Sequence[ProviderError] = (),
    cost: float | None = None,
    mode: Mode = "live",
    batch_id: str | None = None,
) -> Record:
    """The record of a job answered; its sampling parameters are those actually sent, its cost
    that of its usage (None when the model has no price); `batch_id` when a batch carried it."""
    sent = completion.sampling_sent
    return Record(
        **_job_fields(run_id, job, elapsed, attempt_errors),
        mode=mode,
        batch_id=batch_id,
        status="ok",
        model=completion.model or job.variant.model.model_id,
        full_response=completion.text,
        finish_reason=completion.finish_reason,
        finish_detail=completion.finish_detail,
        tokens=completion.usage.as_record(),
        cost_usd=cost,
        token_logprobs=completion.token_logprobs,
        sampling_params=sent if sent is not None else job.sampling.as_record(),
        error=None,
    )


def failure_record(
    run_id: str,
    job: Job,
    error: ProviderError,
    *,
    elapsed: float,
    attempt_errors: Sequence[ProviderError] = (),
    cost: float | None = None,
    mode: Mode = "live",
    batch_id: str | None = None,
) -> Record:
    """The record of a job that failed for good (fatal, or out of attempts); it cost nothing
    when the model has a price (APIs bill answers, not errors). A batch job that failed before
    a batch carried it (its batch could not be created) has mode "batch" and no `batch_id`."""
    return Record(
        **_job_fields(run_id, job, elapsed, attempt_errors),
        mode=mode,
        batch_id=batch_id,
        status="error",
        model=job.variant.model.model_id,
        full_response=None,
        finish_reason=None,
        finish_detail=None,
        tokens=None,
        cost_usd=cost,
        token_logprobs=None,
        sampling_params=job.sampling.as_record(),
        error=error.as_record(),
    )


def _job_fields(
    run_id: str, job: Job, elapsed: float, attempt_errors: Sequence[ProviderError]
) -> dict[str, Any]:
    prompt = job.prompt
    return {
        "key": job.key,
        "prompt_hash": prompt.hash,
        "schema": SCHEMA,
        "run_id": run_id,
        "variant": job.variant.id,
        "provider": job.variant.model.provider,
        "prompt_id": prompt.id,
        "sample": job.sample,
        "timestamp": utc_timestamp(),
        "elapsed_seconds": round(elapsed, 4),
        "retry_count": len(attempt_errors),
        "attempt_errors": [error.as_record() for error in attempt_errors],
        "prompt_category": prompt.category,
        "is_synthetic_probe": prompt.is_synthetic_probe,
        "metadata": dict(prompt.metadata),
        "adapter": job.variant.adapter.name if job.variant.adapter else None,
    }
