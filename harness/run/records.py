"""The record of a finished job: its answer (`success_record`) or its last error
(`failure_record`), with what every record says of its job (key, prompt, variant, timing, attempts)
and of how it was carried (`Carried`). The record's shape and line format are the ledger's
(`harness.ledger.record`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict, Unpack

from harness.api.types import Completion
from harness.errors import ProviderError
from harness.ledger.record import SCHEMA, Mode, Record, utc_timestamp
from harness.run.jobs import Job


class Carried(TypedDict, total=False):
    """How a job was carried, as both records say it: the failed attempts before the last (none),
    its cost (None: the model has no price), live or batch ("live"), and the batch that carried
    it (None)."""

    attempt_errors: Sequence[ProviderError]
    cost: float | None
    mode: Mode
    batch_id: str | None


def success_record(
    run_id: str, job: Job, completion: Completion, *, elapsed: float, **carried: Unpack[Carried]
) -> Record:
    """The record of a job answered; its sampling parameters are those actually sent, its cost
    that of its usage (None when the model has no price); `batch_id` when a batch carried it."""
    sent = completion.sampling_sent
    return _record(
        run_id,
        job,
        elapsed,
        carried,
        status="ok",
        model=completion.model or job.variant.model.model_id,
        full_response=completion.text,
        finish_reason=completion.finish_reason,
        finish_detail=completion.finish_detail,
        tokens=completion.usage.as_record(),
        token_logprobs=completion.token_logprobs,
        sampling_params=sent if sent is not None else job.sampling.as_record(),
        error=None,
    )


def failure_record(
    run_id: str, job: Job, error: ProviderError, *, elapsed: float, **carried: Unpack[Carried]
) -> Record:
    """The record of a job that failed for good (fatal, or out of attempts); it cost nothing
    when the model has a price (APIs bill answers, not errors). A batch job that failed before
    a batch carried it (its batch could not be created) has mode "batch" and no `batch_id`."""
    return _record(
        run_id,
        job,
        elapsed,
        carried,
        status="error",
        model=job.variant.model.model_id,
        full_response=None,
        finish_reason=None,
        finish_detail=None,
        tokens=None,
        token_logprobs=None,
        sampling_params=job.sampling.as_record(),
        error=error.as_record(),
    )


def _record(run_id: str, job: Job, elapsed: float, carried: Carried, **outcome: Any) -> Record:
    """A record of `job` with the fields of its `outcome` (an answer's or an error's)."""
    prompt = job.prompt
    attempt_errors = carried.get("attempt_errors", ())
    return Record(
        key=job.key,
        prompt_hash=prompt.hash,
        schema=SCHEMA,
        run_id=run_id,
        variant=job.variant.id,
        provider=job.variant.model.provider,
        prompt_id=prompt.id,
        sample=job.sample,
        timestamp=utc_timestamp(),
        elapsed_seconds=round(elapsed, 4),
        retry_count=len(attempt_errors),
        attempt_errors=[error.as_record() for error in attempt_errors],
        prompt_category=prompt.category,
        is_synthetic_probe=prompt.is_synthetic_probe,
        metadata=dict(prompt.metadata),
        adapter=job.variant.adapter.name if job.variant.adapter else None,
        mode=carried.get("mode", "live"),
        batch_id=carried.get("batch_id"),
        cost_usd=carried.get("cost"),
        **outcome,
    )
