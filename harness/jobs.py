"""Jobs: every (variant, prompt, sample), made lazily so memory stays flat as their number grows."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from harness.api import Request
from harness.config import Variant
from harness.prompts import Prompt


def job_key(variant_id: str, prompt_id: str, sample: int) -> str:
    """The ledger key of one job: `variant | prompt_id | sample`."""
    return f"{variant_id}|{prompt_id}|{sample}"


@dataclass(frozen=True, slots=True)
class Job:
    """One prompt to send to one variant, once."""

    key: str
    variant: Variant
    prompt: Prompt
    sample: int

    def request(self, attempt: int) -> Request:
        """The request for one attempt; each sample gets its own seed (`seed + sample`)."""
        sampling = self.variant.sampling
        if sampling.seed is not None and self.sample:
            sampling = replace(sampling, seed=sampling.seed + self.sample)
        return Request(
            id=self.key,
            model=self.variant.model.model_id,
            messages=self.prompt.messages,
            sampling=sampling,
            attempt=attempt,
        )

    def estimated_tokens(self) -> int:
        """A pessimistic token count taken from the tokens/min bucket before the request goes."""
        return len(self.prompt.text) // 4 + 1 + self.variant.sampling.max_tokens


def iter_jobs(
    variants: Sequence[Variant],
    prompts: Sequence[Prompt],
    samples: int,
    wanted: Callable[[str], bool],
) -> Iterator[Job]:
    """Yield the wanted jobs prompt by prompt, so all variants advance together."""
    for prompt in prompts:
        for sample in range(samples):
            for variant in variants:
                key = job_key(variant.id, prompt.id, sample)
                if wanted(key):
                    yield Job(key, variant, prompt, sample)
