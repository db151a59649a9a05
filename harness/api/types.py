"""The provider interface: what a provider is given, what it returns, and what it must implement.

A provider is one class with one coroutine, `generate(request) -> Completion`. It never sleeps,
retries or holds a semaphore: the scheduler's lane owns all of that. Failures are raised as the
`ProviderError` subclasses of `harness.errors`, translated from the SDK at the provider's boundary.
A provider whose API has a batch interface also implements `BatchProvider` (see
`harness.run.batch_lane`).

`Usage`, `TokenLogprob` and `Completion` check their fields' types when built and raise
`MalformedResponse` (retryable) naming the first wrong one: an answer of the wrong shape (a text
that is a list, a model that is a number, a logprob that is a string) is a failed attempt, never
an `ok` record that the verbs reading the ledger would trip over.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol

from harness.errors import MalformedResponse, ProviderError
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
    """One attempt at one job. `id` is stable across attempts; `attempt` counts from 1.
    `adapter` names the LoRA adapter to answer through (see harness.config.adapters); None: the
    model itself."""

    id: str
    model: str
    messages: tuple[Message, ...]
    sampling: SamplingParams
    attempt: int = 1
    adapter: str | None = None


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
class RateLimitState:
    """What a server's response headers say is left of its limits, and when each resets."""

    requests_remaining: int | None = None
    requests_reset_seconds: float | None = None
    tokens_remaining: int | None = None
    tokens_reset_seconds: float | None = None

    def wait_seconds(self) -> float | None:
        """How long until an exhausted limit resets; None when nothing is exhausted."""
        waits = [
            reset
            for remaining, reset in (
                (self.requests_remaining, self.requests_reset_seconds),
                (self.tokens_remaining, self.tokens_reset_seconds),
            )
            if remaining is not None and remaining <= 0 and reset is not None
        ]
        return max(waits) if waits else None


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
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        raise malformed(field, "a finite number or null", value)
    return float(value)  # type: ignore[arg-type]


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
    if type(value) is not int or not 0 <= value <= MAX_TOKEN_ID:  # type: ignore[operator]
        raise malformed(field, "a token id (a whole number >= 0)", value)


class Provider(Protocol):
    """What every provider implements. Built as `cls(model_id, options)` (cheap: nothing connects
    or loads), started with `start`, closed with `aclose`.

    A provider may also have a classmethod `resolve(model, options) -> options` that pins what
    will answer (a local model's hub revision to its commit) before the variant id is made, and
    raises InputError in one line when it cannot.

    A provider that serves LoRA adapters (see harness.config.adapters) takes them as
    `cls(model_id, options, adapters=...)`, answers each request through `request.adapter`, and
    has a classmethod `adapter_problems(model, options, adapter) -> list[str]`: what its engine
    cannot serve of that adapter, found before the run starts."""

    Options: ClassVar[type]

    def __init__(self, model: str, options: Any) -> None:
        """Take the model id and an instance of the provider's `Options` dataclass."""
        ...

    @classmethod
    def preflight(cls, model: str, options: Any) -> list[str]:
        """Problems that would fail every request (a missing key, a malformed URL); no I/O."""
        ...

    async def start(self) -> None:
        """Load what the first request needs (a local model), before any attempt's timeout runs."""
        ...

    async def generate(self, request: Request) -> Completion:
        """Answer one request or raise a classified `ProviderError`."""
        ...

    async def aclose(self) -> None:
        """Release clients and connections."""
        ...


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """The most one provider batch may carry, from the provider's documentation."""

    requests: int
    bytes: int


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """A provider batch as last polled: the provider's own word for its state (`in_progress`,
    `JOB_STATE_RUNNING`), whether processing is over, its requests by status where the provider
    counts them, and once it ended, how long it took and the error of every request it holds no
    result for (a cancelled, expired or failed batch's reason)."""

    state: str
    ended: bool
    counts: Mapping[str, int] | None = None
    seconds: float | None = None
    error: ProviderError | None = None


class BatchProvider(Provider, Protocol):
    """A provider that also speaks its API's batch interface. Custom ids are the harness's (a
    batch's label, a dash, the job's place in it); they come back with each result."""

    batch_limits: ClassVar[BatchLimits]

    def batch_item(self, request: Request, custom_id: str) -> dict[str, Any]:
        """One request in the form `submit_batch` sends it (its JSON size counts against
        `batch_limits.bytes`)."""
        ...

    async def submit_batch(self, items: Sequence[dict[str, Any]], label: str) -> str:
        """Create a batch of `items`, labelled where the provider keeps a label; its id."""
        ...

    async def find_batches(self, label: str, since: datetime, count: int) -> list[str]:
        """Ids of batches that may be the one submitted as `label` at `since` with `count`
        requests, when its creation was never confirmed (the run died while asking)."""
        ...

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Poll one batch."""
        ...

    def batch_results(
        self, batch_id: str, request_of: Callable[[str], Request | None]
    ) -> AsyncIterator[tuple[str, Completion | ProviderError]]:
        """The ended batch's result per custom id: an answer, or the request's error classified
        as a live one would be. `request_of` gives the request a custom id was made from."""
        ...

    async def cancel_batch(self, batch_id: str) -> None:
        """Ask the provider to cancel a batch (it ends soon after, keeping what it answered)."""
        ...
