"""The provider interface: what a provider is given, what it returns, and what it must implement.

A provider is one class with one coroutine, `generate(request) -> Completion`. It never sleeps,
retries or holds a semaphore: the scheduler's lane owns all of that. Failures are raised as the
`ProviderError` subclasses of `harness.errors`, translated from the SDK at the provider's boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat turn."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """The sampling parameters of one request, as configured."""

    temperature: float
    top_p: float
    max_tokens: int
    seed: int | None
    stop: tuple[str, ...] = ()

    def as_record(self) -> dict[str, Any]:
        """The `sampling_params` object stored in the ledger."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": self.stop,
        }


@dataclass(frozen=True, slots=True)
class Request:
    """One attempt at one job. `id` is stable across attempts; `attempt` counts from 1."""

    id: str
    model: str
    messages: tuple[Message, ...]
    sampling: SamplingParams
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reported them."""

    input: int
    output: int

    def as_record(self) -> dict[str, int]:
        """The `tokens` object stored in the ledger."""
        return {"input": self.input, "output": self.output, "total": self.input + self.output}


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token, its logprob, and the top alternatives as (token, logprob) pairs."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished answer. `sampling_sent` is set when the provider sent other parameters than
    configured (an API that takes no seed, say); the ledger records what was actually sent."""

    text: str
    finish_reason: str
    usage: Usage
    model: str
    token_logprobs: tuple[TokenLogprob, ...] | None = None
    sampling_sent: dict[str, Any] | None = None


class Provider(Protocol):
    """What every provider implements. Construct with `from_config`; close with `aclose`."""

    Options: ClassVar[type]

    @classmethod
    def from_config(cls, model: str, options: Any) -> Provider:
        """Build from the model id and an instance of the provider's `Options` dataclass."""
        ...

    async def generate(self, request: Request) -> Completion:
        """Answer one request or raise a classified `ProviderError`."""
        ...

    async def aclose(self) -> None:
        """Release clients and connections."""
        ...
