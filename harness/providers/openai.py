"""`provider = "openai"`: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, OpenRouter,
OpenAI) over one aiohttp session per lane.

aiohttp directly, not httpx: against a loopback server at 256 concurrent requests, a bare aiohttp
client made 6,900 requests/s and httpx on the aiohttp transport 2,800/s, on the same machine and
run; httpx's request and header models cost more than the whole harness around them.

`endpoint = "chat"` posts to `/chat/completions`; `endpoint = "completions"` sends the raw prompt
text to `/completions`, for base models. With `top_logprobs = k` the answer's token logprobs and the
k most likely tokens of every position land in `token_logprobs`.

Servers list alternatives in two layouts. OpenAI sends the true top n, sorted; vLLM sends the
sampled token first, then the most likely ones, cut at n, so the n-th is lost when the sampled
token is not among them. Chat therefore asks for k + 1 (at most 20, OpenAI's limit and vLLM's
default) and keeps the k most likely; completions list the sampled token beside the k asked for.
Completions key alternatives by text, and tokens that decode alike (partial UTF-8 bytes decode to
'' or U+FFFD) overwrite each other on the server: `token_ids` asks vLLM to name tokens
`token_id:N` (`return_tokens_as_token_ids`), recorded as ids (`token_id`, `top_ids`) with no
text. Chat keeps every alternative; a token whose `bytes` say more than its text (a partial UTF-8
byte) takes its text from them, an undecodable byte as `\\xNN`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
import orjson
import yarl

from harness.api.types import (
    Completion,
    Request,
    TokenLogprob,
    Usage,
    expect,
    malformed,
    token_count,
)
from harness.errors import AttemptTimeout, ConnectionFailed, MalformedResponse
from harness.providers._http import (
    LogprobsHTTPProvider,
    api_key,
    error_for_status,
    missing_key,
    rate_limit_state,
    setup_problems,
)
from harness.providers.options import MAX_OPENAI_LOGPROBS as _MAX_LOGPROBS
from harness.providers.options import OpenAIOptions
from harness.scrub import excerpt

# Hosts that reject request fields they do not know.
_STRICT_HOSTS = ("openai.com", "openai.azure.com")
_TOKEN_ID = re.compile(r"token_id:(\d+)")
# aiohttp sends a URL's userinfo as its own Authorization header, which the key's would clash with.
_USERINFO_WITH_KEY = (
    'aiohttp cannot send them beside the API key: remove them, or set api_key_env = "" to send '
    "them instead of a key"
)

_FINISH = {
    "stop": "stop",
    "length": "length",
    "content_filter": "safety",
    "tool_calls": "tool_calls",
}


class OpenAIProvider(LogprobsHTTPProvider):
    """Chat or text completions from an OpenAI-compatible HTTP API. Its token counts are the
    default `Billing`'s: prompt_tokens include cached tokens, completion_tokens reasoning."""

    options: OpenAIOptions

    def __init__(self, model: str, options: OpenAIOptions) -> None:
        super().__init__(model, options)
        key = api_key(options.api_key, options.api_key_env) if options.api_key_env else ""
        self._chat_url = _endpoint(options.base_url, "chat/completions")
        self._completions_url = _endpoint(options.base_url, "completions")
        self._token_ids = _asks_token_ids(options, self._chat_url.host or "")
        self._headers = {"Content-Type": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        # Made on the first request, inside the event loop that will use it.
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def preflight(cls, model: str, options: OpenAIOptions) -> list[str]:
        """A missing key (when one is named), or a base URL the client would refuse: the chat
        endpoint's URL is built as `generate` builds it and checked as aiohttp checks it."""
        return setup_problems(
            options.api_key,
            options.api_key_env,
            options.base_url,
            keyless=True,
            url=_endpoint_text(options.base_url, "chat/completions"),
            userinfo_refused=_USERINFO_WITH_KEY if options.api_key_env else "",
        )

    @classmethod
    def key_problems(cls, model: str, options: OpenAIOptions) -> list[str]:
        """A missing key (when one is named)."""
        return missing_key(options.api_key, options.api_key_env, options.base_url, keyless=True)

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
        except orjson.JSONDecodeError as exc:
            shown = excerpt(content.decode(errors="replace"), 200)
            raise MalformedResponse(f"malformed response ({exc}): {shown!r}") from exc
        return self._completion(data, body, headers, request)  # checks every field it reads

    def _completion(
        self, data: Any, body: dict[str, Any], headers: Mapping[str, str], request: Request
    ) -> Completion:
        """The answer in `data`, every field read checked against the API's shape."""
        chat = self.options.endpoint == "chat"
        choices = expect(data, dict, "the response", "a JSON object").get("choices")
        if not isinstance(choices, list) or not choices:
            raise malformed("choices", "a list of at least one choice", choices)
        choice = expect(choices[0], dict, "choices[0]", "an object")
        if chat:
            message = expect(choice.get("message"), dict, "choices[0].message", "an object")
            text = expect(message.get("content"), _TEXT, "choices[0].message.content", _STR)
        else:
            text = expect(choice.get("text"), _TEXT, "choices[0].text", _STR)
        reason = expect(choice.get("finish_reason"), _TEXT, "choices[0].finish_reason", _STR)
        usage = expect(data.get("usage"), (dict, type(None)), "usage", "an object") or {}
        return Completion(
            text=text or "",
            finish_reason=_FINISH.get(reason or "", reason or "unknown"),
            usage=Usage(
                token_count(usage.get("prompt_tokens", 0), "usage.prompt_tokens"),
                token_count(usage.get("completion_tokens", 0), "usage.completion_tokens"),
            ),
            model=expect(data.get("model"), _TEXT, "model", _STR) or request.model,
            token_logprobs=_logprobs(choice.get("logprobs"), chat, self.options.top_logprobs),
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
            body["logprobs"], body["top_logprobs"] = True, min(k + 1, _MAX_LOGPROBS)
        elif k:
            body["logprobs"] = k
        if k and self._token_ids:
            body["return_tokens_as_token_ids"] = True
        return body


_TEXT = (str, type(None))
_STR = "a string or null"


def _asks_token_ids(options: OpenAIOptions, host: str) -> bool:
    if options.token_ids is not None:
        return options.token_ids
    return not any(host == strict or host.endswith(f".{strict}") for strict in _STRICT_HOSTS)


def _error_message(content: bytes, reason: str | None) -> str:
    """The body's `error` (`type: message`), else the body itself (`{"detail": "Not Found"}`
    from a path the server does not have), else the status's reason phrase."""
    try:
        error = orjson.loads(content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    if isinstance(error, dict):
        kind = error.get("type") or error.get("code") or "error"
        return f"{kind}: {error.get('message', '')}"
    if error:
        return str(error)
    return excerpt(content.decode(errors="replace"), 500) or reason or "error"


# One listed token: its text (None when the server named it by id), its id (None when it gave
# only text), and its logprob.
_Listed = tuple[str | None, int | None, float | None]


_LOGPROBS = "choices[0].logprobs"


def _logprobs(logprobs: Any, chat: bool, k: int) -> tuple[TokenLogprob, ...] | None:
    if not logprobs:
        return None
    logprobs = expect(logprobs, dict, _LOGPROBS, "an object")
    if chat:
        content = _list(logprobs.get("content"), f"{_LOGPROBS}.content")
        return tuple(_chat_position(entry, k) for entry in content)
    tops = _list(logprobs.get("top_logprobs"), f"{_LOGPROBS}.top_logprobs")
    tokens = _list(logprobs.get("tokens"), f"{_LOGPROBS}.tokens")
    values = _list(logprobs.get("token_logprobs"), f"{_LOGPROBS}.token_logprobs")
    if len(values) != len(tokens):
        expected = f"{len(tokens)} logprobs, one per token"
        raise malformed(f"{_LOGPROBS}.token_logprobs", expected, values)
    return tuple(
        _position(
            (
                *_named(token, f"{_LOGPROBS}.tokens[]"),
                _number(value, f"{_LOGPROBS}.token_logprobs[]"),
            ),
            _keyed(tops[i] if i < len(tops) else None),
            k,
        )
        for i, (token, value) in enumerate(zip(tokens, values, strict=True))
    )


def _list(value: Any, field: str) -> list[Any]:
    """A list the response holds (null or missing: empty)."""
    return expect(value, (list, type(None)), field, "a list or null") or []


def _number(value: object, field: str) -> float | None:
    """A logprob as sent: a number or null (checked here, before it is ranked)."""
    if value is None or type(value) is int or type(value) is float:
        return value
    raise malformed(field, "a number or null", value)


def _keyed(top: Any) -> list[_Listed]:
    """Completions' alternatives, keyed by text or by `token_id:N`."""
    field = f"{_LOGPROBS}.top_logprobs[]"
    top = expect(top, (dict, type(None)), field, "an object or null") or {}
    return [(*_named(name, field), _number(logprob, field)) for name, logprob in top.items()]


def _chat_position(entry: Any, k: int) -> TokenLogprob:
    entry = expect(entry, dict, f"{_LOGPROBS}.content[]", "an object")
    alternatives = _list(entry.get("top_logprobs"), f"{_LOGPROBS}.content[].top_logprobs")
    listed = [_chat_listed(alt, ".top_logprobs[]") for alt in alternatives]
    return _position(_chat_listed(entry, ""), listed, k, spare=k < _MAX_LOGPROBS)


def _chat_listed(entry: Any, inner: str) -> _Listed:
    field = f"{_LOGPROBS}.content[]{inner}"
    entry = expect(entry, dict, field, "an object")
    text, token_id = _named(entry.get("token"), f"{field}.token")
    data = entry.get("bytes")
    if data is not None:
        valid = isinstance(data, list) and all(type(b) is int and 0 <= b < 256 for b in data)
        if not valid:
            raise malformed(f"{field}.bytes", "a list of byte values 0-255", data)
    if text is not None and data is not None and bytes(data) != text.encode():
        text = bytes(data).decode("utf-8", "backslashreplace")
    return text, token_id, _number(entry.get("logprob"), f"{field}.logprob")


def _named(token: Any, field: str) -> tuple[str | None, int | None]:
    """A token as the server named it: `token_id:N` (asked for with `token_ids`) or its text."""
    match = _TOKEN_ID.fullmatch(expect(token, str, field, "a string"))
    return (None, int(match[1])) if match else (token, None)


def _position(
    chosen: _Listed, listed: Iterable[_Listed], k: int, *, spare: bool = True
) -> TokenLogprob:
    """The chosen token and the k most likely of `listed`. Without a spare alternative asked for,
    a chosen token listed last may stand anywhere below the k-th (vLLM lists it first, then the
    k - 1 most likely), so it is left out."""
    ranked = sorted(listed, key=lambda alt: -alt[2] if alt[2] is not None else math.inf)
    if not spare and len(ranked) >= k and ranked[-1] == chosen:
        ranked.pop()
    top = ranked[:k]
    ids = tuple(token_id for _, token_id, _ in top if token_id is not None)
    return TokenLogprob(
        token=chosen[0],
        logprob=chosen[2],
        top=tuple((text, logprob) for text, _, logprob in top),
        token_id=chosen[1],
        top_ids=ids if top and len(ids) == len(top) else None,  # every one named by its id
    )


def _sent(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "temperature": body["temperature"],
        "top_p": body["top_p"],
        "max_tokens": body["max_tokens"],
        "seed": body.get("seed"),
        "stop": body.get("stop", []),
    }


def _endpoint(base_url: str, path: str) -> yarl.URL:
    """`base_url` with `/path` added to its path, its query (`?key=...`) kept after it."""
    return yarl.URL(_endpoint_text(base_url, path))


def _endpoint_text(base_url: str, path: str) -> str:
    """The text of `_endpoint(base_url, path)`, for `preflight` to check before it is parsed."""
    base, question, query = base_url.partition("?")
    return f"{base.rstrip('/')}/{path}{question}{query}"
