"""`provider = "openai"`: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, OpenRouter,
OpenAI) over httpx on an aiohttp transport, one client per lane.

`endpoint = "chat"` posts to `/chat/completions`; `endpoint = "completions"` sends the raw prompt
text to `/completions`, for base models. With `top_logprobs = k` the answer's token logprobs and k
alternatives land in `token_logprobs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson
from httpx_aiohttp import HttpxAiohttpClient

from harness.api import Completion, Request, TokenLogprob, Usage
from harness.errors import AttemptTimeout, ConnectionFailed, ServerError
from providers._http import api_key, error_for_status, rate_limit_state, setup_problems

_JSON = {"content-type": "application/json"}
_FINISH = {
    "stop": "stop",
    "length": "length",
    "content_filter": "safety",
    "tool_calls": "tool_calls",
}


@dataclass(frozen=True)
class OpenAIOptions:
    """Options of `provider = "openai"`. An empty `api_key_env` means the server needs no key."""

    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    api_key: str = ""
    endpoint: Literal["chat", "completions"] = "chat"
    top_logprobs: int = field(default=0, metadata={"min": 0, "max": 20})
    send_seed: bool = True
    max_connections: int = field(default=256, metadata={"min": 1})
    timeout: float = field(default=600.0, metadata={"min": 0.001})


class OpenAIProvider:
    """Chat or text completions from an OpenAI-compatible HTTP API."""

    Options = OpenAIOptions

    def __init__(self, model: str, options: OpenAIOptions) -> None:
        self.model = model
        self.options = options
        key = api_key(options.api_key, options.api_key_env) if options.api_key_env else ""
        base = options.base_url.rstrip("/")
        # Parsed once: httpx would parse a string URL again on every request.
        self._chat_url = httpx.URL(f"{base}/chat/completions")
        self._completions_url = httpx.URL(f"{base}/completions")
        self._client = HttpxAiohttpClient(
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=options.timeout,
            limits=httpx.Limits(
                max_connections=options.max_connections,
                max_keepalive_connections=options.max_connections,
            ),
        )

    @classmethod
    def from_config(cls, model: str, options: OpenAIOptions) -> OpenAIProvider:
        """Build the client; it connects on the first request."""
        return cls(model, options)

    @classmethod
    def preflight(cls, model: str, options: OpenAIOptions) -> list[str]:
        """A missing key (when one is named) or a malformed base URL."""
        return setup_problems(options.api_key, options.api_key_env, options.base_url)

    async def generate(self, request: Request) -> Completion:
        """One completion request, its errors translated."""
        chat = self.options.endpoint == "chat"
        body = self._body(request, chat)
        try:
            response = await self._client.post(
                self._chat_url if chat else self._completions_url,
                content=orjson.dumps(body),
                headers=_JSON,
            )
        except httpx.TimeoutException as exc:
            raise AttemptTimeout(f"{type(exc).__name__}: {exc}") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise error_for_status(response.status_code, _error_message(response), response.headers)
        try:
            data = orjson.loads(response.content)
            choice = data["choices"][0]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise ServerError(f"unreadable response: {response.text[:200]}") from exc
        usage = data.get("usage") or {}
        text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
        return Completion(
            text=text or "",
            finish_reason=_FINISH.get(choice.get("finish_reason"), choice.get("finish_reason")),
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            model=data.get("model") or request.model,
            token_logprobs=_logprobs(choice.get("logprobs"), chat),
            sampling_sent=_sent(body),
            rate_limit=rate_limit_state(response.headers),
        )

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()

    def _body(self, request: Request, chat: bool) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": request.model,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        }
        if chat:
            body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        else:
            body["prompt"] = "\n\n".join(m.content for m in request.messages)
        if self.options.send_seed and sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        k = self.options.top_logprobs
        if k and chat:
            body["logprobs"], body["top_logprobs"] = True, k
        elif k:
            body["logprobs"] = k
        return body


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(error, dict):
        kind = error.get("type") or error.get("code") or "error"
        return f"{kind}: {error.get('message', '')}"
    return str(error)


def _logprobs(logprobs: Any, chat: bool) -> tuple[TokenLogprob, ...] | None:
    if not logprobs:
        return None
    if chat:
        return tuple(
            TokenLogprob(
                entry["token"],
                entry["logprob"],
                tuple((alt["token"], alt["logprob"]) for alt in entry.get("top_logprobs") or ()),
            )
            for entry in logprobs.get("content") or ()
        )
    tops = logprobs.get("top_logprobs") or []
    return tuple(
        TokenLogprob(
            token,
            logprob,
            tuple(sorted((tops[i] or {}).items(), key=lambda item: -item[1]))
            if i < len(tops)
            else (),
        )
        for i, (token, logprob) in enumerate(
            zip(logprobs.get("tokens") or (), logprobs.get("token_logprobs") or (), strict=False)
        )
    )


def _sent(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "temperature": body["temperature"],
        "top_p": body["top_p"],
        "max_tokens": body["max_tokens"],
        "seed": body.get("seed"),
        "stop": body.get("stop", []),
    }
