"""`provider = "openai"`: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, OpenRouter,
OpenAI) over one aiohttp session per lane.

aiohttp directly, not httpx: against a loopback server at 256 concurrent requests, a bare aiohttp
client made 6,900 requests/s and httpx on the aiohttp transport 2,800/s, on the same machine and
run; httpx's request and header models cost more than the whole harness around them.

`endpoint = "chat"` posts to `/chat/completions`; `endpoint = "completions"` sends the raw prompt
text to `/completions`, for base models. With `top_logprobs = k` the answer's token logprobs and k
alternatives land in `token_logprobs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import orjson
import yarl

from harness.api import Completion, Request, TokenLogprob, Usage
from harness.errors import AttemptTimeout, ConnectionFailed, ServerError
from harness.fields import OPERATIONAL
from providers._http import api_key, error_for_status, rate_limit_state, setup_problems

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
    api_key_env: str = field(default="OPENAI_API_KEY", metadata=OPERATIONAL)
    api_key: str = field(default="", metadata=OPERATIONAL)
    endpoint: Literal["chat", "completions"] = "chat"
    top_logprobs: int = field(default=0, metadata={"min": 0, "max": 20})
    send_seed: bool = True
    max_connections: int = field(default=256, metadata={"min": 1, "max": 100_000, **OPERATIONAL})
    timeout: float = field(default=600.0, metadata={"min": 0.001, "max": 86_400, **OPERATIONAL})


class OpenAIProvider:
    """Chat or text completions from an OpenAI-compatible HTTP API."""

    Options = OpenAIOptions

    def __init__(self, model: str, options: OpenAIOptions) -> None:
        self.model = model
        self.options = options
        key = api_key(options.api_key, options.api_key_env) if options.api_key_env else ""
        base = options.base_url.rstrip("/")
        self._chat_url = yarl.URL(f"{base}/chat/completions")
        self._completions_url = yarl.URL(f"{base}/completions")
        self._headers = {"Content-Type": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        # Made on the first request, inside the event loop that will use it.
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def preflight(cls, model: str, options: OpenAIOptions) -> list[str]:
        """A missing key (when one is named) or a malformed base URL."""
        return setup_problems(options.api_key, options.api_key_env, options.base_url)

    async def start(self) -> None:
        """Nothing to load: the client connects on the first request."""

    async def generate(self, request: Request) -> Completion:
        """One completion request, its errors translated."""
        chat = self.options.endpoint == "chat"
        body = self._body(request, chat)
        url = self._chat_url if chat else self._completions_url
        try:
            async with self._client().post(url, data=orjson.dumps(body)) as response:
                status, headers, content = response.status, response.headers, await response.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise AttemptTimeout(f"no answer within {self.options.timeout:g} s") from exc
        except aiohttp.ClientError as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from exc
        if status >= 400:
            raise error_for_status(status, _error_message(content, response.reason), headers)
        try:
            data = orjson.loads(content)
            choice = data["choices"][0]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise ServerError(f"unreadable response: {content[:200]!r}") from exc
        usage = data.get("usage") or {}
        text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
        return Completion(
            text=text or "",
            finish_reason=_FINISH.get(choice.get("finish_reason"), choice.get("finish_reason")),
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            model=data.get("model") or request.model,
            token_logprobs=_logprobs(choice.get("logprobs"), chat),
            sampling_sent=_sent(body),
            rate_limit=rate_limit_state(headers),
        )

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self.options.max_connections),
                timeout=aiohttp.ClientTimeout(total=self.options.timeout),
            )
        return self._session

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


def _error_message(content: bytes, reason: str | None) -> str:
    try:
        error = orjson.loads(content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return content[:500].decode(errors="replace") or reason or "error"
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
