"""`provider = "anthropic"`: Claude through the official SDK's Messages API.

The SDK's own retries are off (`max_retries=0`) so that the harness alone retries and counts, and
it talks over aiohttp (`DefaultAioHttpClient`), several times faster than httpx's own transport.
Anthropic takes no seed, and current models take temperature or top_p but not both: temperature,
unless it is 1.0 and top_p is below 1, when top_p alone is sent. The record keeps the parameters
actually sent (None for those that were not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anthropic

from harness.api import Completion, Request, SamplingParams, Usage
from harness.errors import AttemptTimeout, ConnectionFailed, ProviderError
from harness.fields import OPERATIONAL
from providers._http import api_key, error_for_status, rate_limit_state, setup_problems

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
    "tool_use": "tool_calls",
    "pause_turn": "pause",
}


@dataclass(frozen=True)
class AnthropicOptions:
    """Options of `provider = "anthropic"`."""

    api_key_env: str = field(default="ANTHROPIC_API_KEY", metadata=OPERATIONAL)
    api_key: str = field(default="", metadata=OPERATIONAL)
    base_url: str = ""
    timeout: float = field(default=600.0, metadata={"min": 0.001, "max": 86_400, **OPERATIONAL})


class AnthropicProvider:
    """Claude via `AsyncAnthropic(...).messages.create`."""

    Options = AnthropicOptions

    def __init__(self, model: str, options: AnthropicOptions) -> None:
        self.model = model
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key(options.api_key, options.api_key_env),
            base_url=options.base_url or None,
            max_retries=0,
            timeout=options.timeout,
            http_client=anthropic.DefaultAioHttpClient(timeout=options.timeout),
        )

    @classmethod
    def preflight(cls, model: str, options: AnthropicOptions) -> list[str]:
        """A missing key or a malformed base URL."""
        return setup_problems(options.api_key, options.api_key_env, options.base_url)

    async def start(self) -> None:
        """Nothing to load: the client connects on the first request."""

    async def generate(self, request: Request) -> Completion:
        """One Messages API call, its errors translated."""
        params = self._params(request)
        try:
            raw = await self._client.messages.with_raw_response.create(**params)
        except anthropic.APIStatusError as exc:
            raise status_error(exc) from exc
        except anthropic.APITimeoutError as exc:
            raise AttemptTimeout(str(exc)) from exc
        except anthropic.APIConnectionError as exc:
            raise ConnectionFailed(f"{exc}: {exc.__cause__ or ''}".rstrip(": ")) from exc
        except anthropic.APIError as exc:  # a response the SDK could not read
            raise ProviderError(str(exc)) from exc
        message = await raw.parse()
        usage = message.usage
        details = {
            name: value
            for name, value in (
                ("cache_write", usage.cache_creation_input_tokens),
                ("cache_read", usage.cache_read_input_tokens),
            )
            if value
        }
        return Completion(
            text="".join(block.text for block in message.content if block.type == "text"),
            finish_reason=_FINISH.get(message.stop_reason or "", message.stop_reason or "unknown"),
            usage=Usage(usage.input_tokens, usage.output_tokens, details or None),
            model=message.model,
            sampling_sent=_sent(params),
            rate_limit=rate_limit_state(raw.headers),
        )

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
