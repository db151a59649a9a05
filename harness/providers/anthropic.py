"""`provider = "anthropic"`: Claude through the official SDK's Messages API.

The SDK's own retries are off (`max_retries=0`) so that the harness alone retries and counts, and
it talks over aiohttp (`DefaultAioHttpClient`), several times faster than httpx's own transport.
Anthropic takes no seed, and current models take temperature or top_p but not both: temperature,
unless it is 1.0 and top_p is below 1, when top_p alone is sent. The record keeps the parameters
actually sent (None for those that were not).

Batch mode goes through the Message Batches API (`client.messages.batches`): up to 100,000
requests or 256 MB a batch, results streamed as JSONL once it ends. A request's error inside a
batch carries the API's error type, not an HTTP status: it is classified by the status that type
comes with in a live response.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import anthropic
from anthropic.types import Message
from anthropic.types.messages import MessageBatch, MessageBatchResult

from harness.api.provider import BatchLimits, BatchProvider, BatchStatus, Billing
from harness.api.types import (
    Completion,
    Request,
    SamplingParams,
    Usage,
    expect,
    token_count,
)
from harness.errors import (
    AttemptTimeout,
    BatchCancelled,
    BatchExpired,
    ConnectionFailed,
    MalformedResponse,
    ProviderError,
)
from harness.providers._http import (
    HTTPProvider,
    api_key,
    error_for_status,
    missing_key,
    rate_limit_state,
    setup_problems,
)
from harness.providers.options import AnthropicOptions

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
    "tool_use": "tool_calls",
    "pause_turn": "pause",
}

# The HTTP status each error type of the API comes with (docs: "HTTP errors"); a request's error
# inside a batch carries only the type.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,  # pushback (see `harness.providers._http`)
}
# A batch may still be listed this long before the run that sent it wrote down when it did.
_CLOCK_SKEW = timedelta(minutes=5)


class AnthropicProvider(HTTPProvider, BatchProvider):
    """Claude via `AsyncAnthropic(...).messages.create`, or `messages.batches` in batch mode."""

    options: AnthropicOptions
    batch_limits = BatchLimits(requests=100_000, bytes=256_000_000)
    # input_tokens leaves out cache reads and writes, which come apart; output_tokens includes
    # extended thinking. The batch discount applies to all usage, cache reads and writes too.
    billing = Billing(
        input_has_cache_read=False, output_has_thoughts=True, batch_discounts_cache=True
    )

    def __init__(self, model: str, options: AnthropicOptions) -> None:
        super().__init__(model, options)
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key(options.api_key, options.api_key_env),
            base_url=options.base_url or None,
            max_retries=0,
            timeout=options.timeout,
            http_client=anthropic.DefaultAioHttpClient(timeout=options.timeout),
        )

    @classmethod
    def preflight(cls, model: str, options: AnthropicOptions) -> list[str]:
        """A missing key, or a base URL the client would refuse on every request."""
        return setup_problems(
            options.api_key,
            options.api_key_env,
            options.base_url,
            userinfo_refused="the Anthropic client sends it as a second Authorization header",
        )

    @classmethod
    def key_problems(cls, model: str, options: AnthropicOptions) -> list[str]:
        """A missing key."""
        return missing_key(options.api_key, options.api_key_env, options.base_url)

    async def generate(self, request: Request) -> Completion:
        """One Messages API call, its errors translated."""
        params = self._params(request)
        with _translated():
            raw = await self._client.messages.with_raw_response.create(**params)
            message = await raw.parse()
        return _completion(message, params, raw.headers)

    def batch_item(self, request: Request, custom_id: str) -> dict[str, Any]:
        """One entry of a Message Batch: the request's Messages API body under its custom id."""
        params = self._params(request)
        params.update(params.pop("extra_body"))
        return {"custom_id": custom_id, "params": params}

    async def submit_batch(self, items: Sequence[dict[str, Any]], label: str) -> str:
        """Create a Message Batch (Anthropic keeps no label: `find_batches` goes by time)."""
        with _translated():
            batch = await self._client.messages.batches.create(requests=list(items))  # type: ignore[arg-type]  # batch_item's dicts: the SDK's Request
        return batch.id

    async def find_batches(self, label: str, since: datetime, count: int) -> list[str]:
        """Batches created since shortly before `since` that hold `count` requests, oldest
        first (the API lists newest first)."""
        found = []
        with _translated():
            async for batch in self._client.messages.batches.list(limit=100):
                if batch.created_at < since - _CLOCK_SKEW:
                    break
                if sum(batch.request_counts.model_dump().values()) == count:
                    found.append(batch.id)
        return found[::-1]

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Retrieve a batch: its processing status and request counts."""
        with _translated():
            batch = await self._client.messages.batches.retrieve(batch_id)
        return _status(batch)

    async def batch_results(
        self, batch_id: str, request_of: Callable[[str], Request | None]
    ) -> AsyncIterator[tuple[str, Completion | ProviderError]]:
        """Stream an ended batch's results (JSONL, in no particular order)."""
        with _translated():
            results = await self._client.messages.batches.results(batch_id)
        try:
            with _translated():
                async for item in results:
                    request = request_of(item.custom_id)
                    if request is not None:  # else not one of ours
                        yield item.custom_id, self._outcome(batch_id, item.result, request)
        finally:
            await results.close()

    def _outcome(
        self, batch_id: str, result: MessageBatchResult, request: Request
    ) -> Completion | ProviderError:
        """One request's result in a batch: its answer, or its error classified."""
        if result.type == "succeeded":
            try:
                return _completion(result.message, self._params(request), None)
            except MalformedResponse as exc:  # this request's answer only: the rest go on
                return exc
        if result.type == "errored":
            error = result.error.error
            status = _ERROR_STATUS.get(error.type, 500)
            return error_for_status(status, f"{error.type}: {error.message}")
        if result.type == "canceled":
            return BatchCancelled(f"batch {batch_id} was cancelled before this request ran")
        return BatchExpired(f"batch {batch_id} expired (24 h) before this request ran")

    async def cancel_batch(self, batch_id: str) -> None:
        """Ask for a batch to be cancelled; it ends once requests in flight finish."""
        with _translated():
            await self._client.messages.batches.cancel(batch_id)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    def _params(self, request: Request) -> dict[str, Any]:
        sampling = request.sampling
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": sampling.max_tokens,
            "messages": [
                {"role": m.role, "content": m.content}
                for m in request.messages
                if m.role != "system"
            ],
        }
        # Current SDKs no longer name the sampling parameters; the API still takes them.
        params["extra_body"] = _sampling_body(sampling)
        if system:
            params["system"] = system
        if sampling.stop:
            params["stop_sequences"] = list(sampling.stop)
        return params


@contextmanager
def _translated() -> Iterator[None]:
    """The SDK's exceptions as harness errors."""
    try:
        yield
    except anthropic.APIStatusError as exc:
        raise status_error(exc) from exc
    except anthropic.APITimeoutError as exc:
        raise AttemptTimeout(str(exc)) from exc
    except anthropic.APIConnectionError as exc:
        raise ConnectionFailed(f"{exc}: {exc.__cause__ or ''}".rstrip(": ")) from exc
    except (anthropic.APIError, json.JSONDecodeError) as exc:  # a response the SDK cannot read
        raise MalformedResponse(f"malformed response: {exc}") from exc


def _completion(
    message: Message, params: dict[str, Any], headers: Mapping[str, str] | None
) -> Completion:
    """The answer in a Message, every field read checked: the SDK builds its models from the
    JSON without validating it."""
    expect(message, Message, "the response", "a message object")
    usage = expect(message.usage, anthropic.types.Usage, "usage", "an object")
    details = {
        name: count
        for name, count in (
            ("cache_write", _count(usage, "cache_creation_input_tokens", optional=True)),
            ("cache_read", _count(usage, "cache_read_input_tokens", optional=True)),
        )
        if count
    }
    reason = expect(message.stop_reason, (str, type(None)), "stop_reason", "a string or null")
    return Completion(
        text=_text(message.content),
        finish_reason=_FINISH.get(reason or "", reason or "unknown"),
        usage=Usage(_count(usage, "input_tokens"), _count(usage, "output_tokens"), details or None),
        model=expect(message.model, str, "model", "a string"),
        sampling_sent=_sent(params),
        rate_limit=rate_limit_state(headers) if headers is not None else None,
    )


def _text(content: Any) -> str:
    """The text blocks' text, joined (other blocks, such as thinking, are not the answer)."""
    texts = []
    for n, block in enumerate(expect(content, list, "content", "a list of content blocks")):
        expect(block, anthropic.BaseModel, f"content[{n}]", "a content block object")
        kind = expect(getattr(block, "type", None), str, f"content[{n}].type", "a string")
        if kind == "text":
            texts.append(
                expect(getattr(block, "text", None), str, f"content[{n}].text", "a string")
            )
    return "".join(texts)


def _count(usage: Any, name: str, *, optional: bool = False) -> int:
    count = getattr(usage, name, None)
    return 0 if optional and count is None else token_count(count, f"usage.{name}")


def _status(batch: MessageBatch) -> BatchStatus:
    ended = batch.processing_status == "ended"
    seconds = (batch.ended_at - batch.created_at).total_seconds() if batch.ended_at else None
    return BatchStatus(
        state=batch.processing_status,
        ended=ended,
        counts=batch.request_counts.model_dump(),
        seconds=seconds,
    )


def status_error(exc: anthropic.APIStatusError) -> ProviderError:
    """The harness error for an error status, with the API's `type: message` read from the body
    (`exc.api_message` and `exc.type` exist only in some SDK versions)."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    error = error if isinstance(error, dict) else {}
    message = f"{error.get('type') or 'error'}: {error.get('message') or exc.message}"
    return error_for_status(exc.status_code, message, exc.response.headers)


def _sampling_body(sampling: SamplingParams) -> dict[str, float]:
    """Temperature or top_p, never both (current models reject the pair): top_p alone when it is
    below 1 and temperature is 1.0 (the API's default, so nothing configured is lost), else
    temperature alone."""
    if sampling.top_p < 1.0 and sampling.temperature == 1.0:
        return {"top_p": sampling.top_p}
    return {"temperature": sampling.temperature}


def _sent(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "temperature": params["extra_body"].get("temperature"),
        "top_p": params["extra_body"].get("top_p"),
        "max_tokens": params["max_tokens"],
        "seed": None,
        "stop": params.get("stop_sequences", []),
    }
