"""Choosing the failed jobs a `rerun` runs again: by variant, error type and what the run can do."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import InputError, listed
from harness.ledger.index import ResumeIndex
from harness.run.named_variants import variant_names
from harness.run.prepare import Prepared


@dataclass(frozen=True)
class FailedJobs:
    """The failed jobs a rerun's filters pick: those this run can do (key -> error type), those
    of variants it does not have (failed jobs per variant id), how many are of its variants but
    of prompts or samples it leaves out, and how many are other shards' jobs."""

    runnable: dict[str, str]
    elsewhere: Counter[str]
    left_out: int
    other_shards: int = 0


def failed_jobs(
    prepared: Prepared,
    index: ResumeIndex,
    *,
    variants: Sequence[str] = (),
    error_types: Sequence[str] = (),
) -> FailedJobs:
    """Keys whose latest record failed, narrowed by variant (its id or its model's name) and
    error type, and sorted by whether this run can do them (its prompts: see
    harness.prompts.selection)."""
    ours = {variant.id for variant in prepared.variants}
    prompts = {prompt.id for prompt in prepared.prompts}
    samples = {str(sample) for sample in range(prepared.config.samples)}
    runnable: dict[str, str] = {}
    elsewhere: Counter[str] = Counter()
    left_out = other_shards = 0
    for key, record in index.failures.items():
        if key in index.awaiting:  # an open batch carries it again: it is not failing now
            continue
        variant, _, rest = str(key).partition("|")  # keys are `variant|prompt_id|sample`
        if not _matches(variant, record, variants, error_types):
            continue
        prompt_id, _, sample = rest.rpartition("|")
        if not prepared.holds(key):
            other_shards += 1
        elif variant not in ours:
            elsewhere[variant] += 1
        elif prompt_id in prompts and sample in samples:
            runnable[key] = _error_type(record)
        else:
            left_out += 1
    return FailedJobs(runnable, elsewhere, left_out, other_shards)


def refuse_unknown_variants(prepared: Prepared, index: ResumeIndex, given: Sequence[str]) -> None:
    """InputError when a `--variant` names no variant of this run nor of its ledger, listing the
    names known."""
    known = {name for variant in prepared.variants for name in variant_names(variant.id)}
    if all(name in known for name in given):
        return
    recorded = {key.partition("|")[0] for keys in (index.answered, index.failed) for key in keys}
    for variant in recorded:  # a few variants, however many keys
        known |= variant_names(variant)
    unknown = [name for name in given if name not in known]
    if unknown:
        raise InputError(
            f"--variant: no variant {listed(unknown)} in {prepared.config.path} or its "
            f"ledger (known: {listed(sorted(known))})"
        )


def _matches(
    variant: str,
    record: dict[str, Any],
    variants: Sequence[str],
    error_types: Sequence[str],
) -> bool:
    """Whether a failure passes a rerun's filters (a variant by any of its `variant_names`)."""
    return (not variants or not variant_names(variant).isdisjoint(variants)) and (
        not error_types or _error_type(record) in error_types
    )


def _error_type(record: dict[str, Any]) -> str:
    error = record.get("error")
    return str(error.get("type")) if isinstance(error, dict) else "unknown"
