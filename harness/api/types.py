"""What a provider is given and what it returns; what it implements is in `harness.api.provider`.

`Usage`, `TokenLogprob` and `Completion` check their fields' types when built and raise
`MalformedResponse` (retryable) naming the first wrong one: an answer of the wrong shape (a text
that is a list, a model that is a number, a logprob that is a string) is a failed attempt, never
an `ok` record that the verbs reading the ledger would trip over. A local engine's positions may
be made without those checks (`TokenLogprob.prechecked`) when its batch was checked as a whole.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.errors import MalformedResponse, RateLimitState
from harness.scrub import excerpt

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
    """One attempt at one job. `id` is stable across attempts; `attempt` counts from 1 in each
    run; `failed_before` counts the job's attempt series that earlier runs ended in failure, as
    its ledger records them. `adapter` names the LoRA adapter to answer through (see
    `Adapter`); None: the model itself."""

    id: str
    model: str
    messages: tuple[Message, ...]
    sampling: SamplingParams
    attempt: int = 1
    adapter: str | None = None
    failed_before: int = 0


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter a provider serves (see harness.config.adapters, which reads it): its name,
    its path as configured and the folder it names, the SHA-256 of its config and weights, its
    largest rank, the base model its config names, and that config."""

    name: str
    path: str
    folder: Path
    sha256: str
    rank: int
    base_model: str | None
    config: Mapping[str, Any]

    def identity(self) -> dict[str, Any]:
        """What a variant's identity (and so the run line) says of its adapter."""
        return {
            "name": self.name,
            "path": self.path,
            "sha256": self.sha256,
            "rank": self.rank,
            "base_model": self.base_model,
        }


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reported them; `details` holds extra counts it gives, such
    as `cache_read`, `cache_write` or `thoughts`."""

    input: int
    output: int
    details: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        if self.details is not None and not isinstance(self.details, Mapping):
            raise malformed("tokens", "a mapping of counts", self.details)
        counts = {"input": self.input, "output": self.output, **(self.details or {})}
        for name, count in counts.items():
            token_count(count, f"tokens.{name}")

    def as_record(self) -> dict[str, int]:
        """The `tokens` object stored in the ledger."""
        counts = {"input": self.input, "output": self.output, "total": self.input + self.output}
        if self.details:
            counts.update(self.details)
        return counts


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token and its logprob, and `top`: the k most likely tokens at its position as
    (text, logprob) pairs, sorted by logprob (descending), whether or not the chosen token is among
    them. `token_id` and `top_ids` (the ids of `top`, in its order) are set where the provider gives
    token ids: distinct tokens can share a text (partial UTF-8 byte tokens all decode to '' or
    U+FFFD), never an id. A text or logprob the provider did not give is None (a logprob is never
    0.0 in its place, which would say probability 1)."""

    token: str | None
    logprob: float | None
    top: tuple[tuple[str | None, float | None], ...]
    token_id: int | None = None
    top_ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        where = "token_logprobs: "  # the record's field, whatever the position
        expect(self.token, (str, type(None)), f"{where}token", "a string or null")
        object.__setattr__(self, "logprob", _logprob(self.logprob, f"{where}logprob"))
        top = expect(self.top, tuple, f"{where}top", "a list of [token, logprob] pairs")
        if not _plain_top(top):  # the slow path names the first wrong pair
            top = tuple(_pair(pair, f"{where}top[{n}]") for n, pair in enumerate(top))
            object.__setattr__(self, "top", top)
        if self.token_id is not None:
            _token_id(self.token_id, f"{where}token_id")
        ids = self.top_ids
        if ids is not None:
            expect(ids, tuple, f"{where}top_ids", "a list of token ids")
            if len(ids) != len(top):
                raise malformed(f"{where}top_ids", f"{len(top)} ids, one per alternative", ids)
            ints = set(map(type, ids)) <= {int}
            if not (ints and (not ids or 0 <= min(ids) <= max(ids) <= MAX_TOKEN_ID)):
                for n, token_id in enumerate(ids):
                    _token_id(token_id, f"{where}top_ids[{n}]")

    @classmethod
    def prechecked(
        cls,
        token: str,
        logprob: float,
        top: tuple[tuple[str, float], ...],
        token_id: int,
        top_ids: tuple[int, ...],
    ) -> TokenLogprob:
        """A position made without the checks of each position (in a quarter of the time),
        for a local engine's batch whose texts are strings and ids non-negative ints by how its
        maker builds them, and whose logprobs it found finite for the whole batch at once."""
        made = object.__new__(cls)
        put = object.__setattr__
        put(made, "token", token)
        put(made, "logprob", logprob)
        put(made, "top", top)
        put(made, "token_id", token_id)
        put(made, "top_ids", top_ids)
        return made


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished answer. `finish_detail` says more about an unusual finish (a safety block's
    reason). `sampling_sent` is set when the provider sent other parameters than configured (an
    API that takes no seed, say); the ledger records what was actually sent."""

    text: str
    finish_reason: str
    usage: Usage
    model: str
    finish_detail: str | None = None
    token_logprobs: tuple[TokenLogprob, ...] | None = None
    sampling_sent: dict[str, Any] | None = None
    rate_limit: RateLimitState | None = None

    def __post_init__(self) -> None:
        expect(self.text, str, "text", "a string")
        expect(self.finish_reason, str, "finish_reason", "a string")
        expect(self.model, str, "model", "a string")
        expect(self.finish_detail, (str, type(None)), "finish_detail", "a string or null")
        expect(self.usage, Usage, "usage", "token counts")
        if self.token_logprobs is not None:
            expect(self.token_logprobs, tuple, "token_logprobs", "a list of positions")
            for n, position in enumerate(self.token_logprobs):
                expect(position, TokenLogprob, f"token_logprobs[{n}]", "a position")
        expect(self.sampling_sent, (dict, type(None)), "sampling_sent", "a mapping or null")
        expect(self.rate_limit, (RateLimitState, type(None)), "rate_limit", "a limit state")


def malformed(field: str, expected: str, got: object) -> MalformedResponse:
    """The error for an answer's `field` that is not `expected`: names the field, the type it
    has and (cut short) its value."""
    shown = excerpt(repr(got), 61)  # scrubbed first: half a key would no longer match
    shown = shown if len(shown) <= 60 else f"{shown[:57]}..."
    return MalformedResponse(
        f"malformed response: {field}: expected {expected}, got {type(got).__name__} {shown}"
    )


def expect(value: Any, kinds: type | tuple[type, ...], field: str, expected: str) -> Any:
    """`value` when it is of `kinds`; else MalformedResponse naming `field`."""
    if not isinstance(value, kinds):
        raise malformed(field, expected, value)
    return value


# The most a count (of tokens, say) may be: what the ledger's readers take (32 bits), so that no
# answer is recorded that no verb could read.
MAX_COUNT = (1 << 31) - 1
MAX_TOKEN_ID = (1 << 63) - 1


def token_count(value: Any, field: str) -> int:
    """`value` when it is a count of tokens; else MalformedResponse naming `field` (a server's
    null, "3", -1, 2**64 or 1e308)."""
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise malformed(field, f"a whole number from 0 to {MAX_COUNT:,}", value)
    return value


def _logprob(value: object, field: str) -> float | None:
    """A logprob as a float (a server's `-1` is -1.0), or None where none was given; a string,
    a bool, NaN or an infinity is malformed (the ledger's JSON cannot say infinity)."""
    if value is None:
        return None
    if (type(value) is not int and type(value) is not float) or not math.isfinite(value):
        raise malformed(field, "a finite number or null", value)
    return float(value)


def _plain_top(top: tuple[Any, ...]) -> bool:
    """Whether `top` is all (text or None, finite float) pairs, checked in C-level passes: a
    local engine's answer has thousands of them."""
    if not top:
        return True
    if set(map(type, top)) != {tuple} or set(map(len, top)) != {2}:
        return False
    texts, values = zip(*top, strict=True)
    if not set(map(type, texts)) <= {str, type(None)} or set(map(type, values)) != {float}:
        return False
    return not any(map(math.isinf, values)) and not any(map(math.isnan, values))


def _pair(pair: object, field: str) -> tuple[str | None, float | None]:
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise malformed(field, "a [token, logprob] pair", pair)
    expect(pair[0], (str, type(None)), f"{field} token", "a string or null")
    return pair[0], _logprob(pair[1], f"{field} logprob")


def _token_id(value: object, field: str) -> None:
    if type(value) is not int or not 0 <= value <= MAX_TOKEN_ID:
        raise malformed(field, "a token id (a whole number >= 0)", value)
