"""Jobs: every (variant, prompt, sample), made lazily so memory stays flat as their number grows."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from harness.api.types import Request, SamplingParams
from harness.config.run_config import Variant
from harness.prompts.load import Prompt


def job_seed(run_seed: int, prompt_id: str, sample: int) -> int:
    """The seed one job sends: the first 31 bits of SHA-256 of `"{run_seed}|{prompt_id}|{sample}"`.

    Stable across runs, machines and Python versions (so a rerun draws the same), distinct per
    prompt and sample (so no two prompts share their random draws), and below 2**31, which every
    provider takes (Gemini's seed is an int32)."""
    digest = hashlib.sha256(f"{run_seed}|{prompt_id}|{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


def job_key(variant_id: str, prompt_id: str, sample: int) -> str:
    """The ledger key of one job: `variant | prompt_id | sample`."""
    return f"{variant_id}|{prompt_id}|{sample}"


@dataclass(frozen=True, slots=True)
class Job:
    """One prompt to send to one variant, once; `failed_before`: the failure records its ledger
    holds for it."""

    key: str
    variant: Variant
    prompt: Prompt
    sample: int
    failed_before: int = 0
    # The variant's sampling with the job's own seed (see `job_seed`): made once per job, for
    # every attempt and the record alike.
    sampling: SamplingParams = field(init=False)

    def __post_init__(self) -> None:
        sampling = self.variant.sampling
        if sampling.seed is not None:
            sampling = replace(sampling, seed=job_seed(sampling.seed, self.prompt.id, self.sample))
        object.__setattr__(self, "sampling", sampling)

    def request(self, attempt: int) -> Request:
        """The request for one attempt."""
        return Request(
            id=self.key,
            model=self.variant.model.model_id,
            messages=self.prompt.messages,
            sampling=self.sampling,
            attempt=attempt,
            adapter=self.variant.adapter.name if self.variant.adapter else None,
            failed_before=self.failed_before,
        )

    def estimated_tokens(self) -> int:
        """A pessimistic token count taken from the tokens/min bucket before the request goes."""
        return len(self.prompt.text) // 4 + 1 + self.variant.sampling.max_tokens


# Whether a job is to run, from its key and its prompt's content hash.
Wanted = Callable[[str, str], bool]


def iter_jobs(
    variants: Sequence[Variant],
    prompts: Sequence[Prompt],
    samples: int,
    wanted: Wanted,
    failed_before: Mapping[str, int] | None = None,
) -> Iterator[Job]:
    """Yield the wanted jobs prompt by prompt, so all variants advance together, each with its
    count in `failed_before` (a ledger's failure records per key)."""
    counts = failed_before or {}
    for prompt, variant, sample, key in iter_keys(variants, prompts, samples, wanted):
        yield Job(key, variant, prompt, sample, counts.get(key, 0))


def iter_keys(
    variants: Sequence[Variant],
    prompts: Sequence[Prompt],
    samples: int,
    wanted: Wanted,
) -> Iterator[tuple[Prompt, Variant, int, str]]:
    """(prompt, variant, sample, key) of each wanted job, in `iter_jobs`' order, with no job
    made: a count's pass over a million keys makes each key once and nothing else."""
    ids = [(variant, variant.id) for variant in variants]
    for prompt in prompts:
        prompt_id, prompt_hash = prompt.id, prompt.hash
        for sample in range(samples):
            for variant, variant_id in ids:
                key = f"{variant_id}|{prompt_id}|{sample}"  # job_key, inlined
                if wanted(key, prompt_hash):
                    yield prompt, variant, sample, key
