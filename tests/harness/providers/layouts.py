"""A fake model behind an OpenAI-compatible loopback server that answers logprobs in vLLM's layout
or OpenAI's, and keeps the truth (every position's whole distribution) for tests to check against.

Its vocabulary holds what trips text-keyed logprobs: partial UTF-8 byte tokens (vLLM decodes them
alone to '' or U+FFFD) and two tokens with one decoded text.

- vLLM (0.32, `entrypoints/openai/*/serving.py`): the sampled token first, then the most likely
  ones by rank, each token once. Chat lists the first `top_logprobs` of those; completions key
  `logprobs + 1` of them by text, a later one overwriting an earlier one of the same text.
  `return_tokens_as_token_ids` turns every text into `token_id:N`; `bytes` are the text's UTF-8.
  More than 20 alternatives (`--max-logprobs`) is a 400.
- OpenAI: the true top n, sorted. Chat's `bytes` are the token's own bytes, its text lossy;
  completions name a partial byte token `bytes:\\xNN`. An unknown request field is a 400.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from tests.harness.providers.servers import Seen, json_error

Layout = Literal["vllm", "openai"]
MAX_LOGPROBS = 20


@dataclass(frozen=True)
class Token:
    """One vocabulary entry: its id, its own bytes, and what vLLM decodes it to alone."""

    id: int
    data: bytes
    decoded: str


def _vocabulary() -> tuple[Token, ...]:
    words = [" Yes", " No", " the", " a", ".", ",", " CVE", "-", "20", "21", " is", " exists"]
    words += [" not", " found", " Log", "4", "j", " Shell"]
    tokens = [Token(i, w.encode(), w) for i, w in enumerate(words)]
    # SentencePiece's "▁Yes" and "Yes" both decode to "Yes" alone.
    tokens += [Token(18, "▁Yes".encode(), "Yes"), Token(19, b"Yes", "Yes")]
    for i, byte in enumerate((0xE2, 0x80, 0x99, 0x9C, 0xF0, 0x9F, 0x98, 0x8A)):
        tokens.append(Token(20 + i, bytes([byte]), "" if i % 2 else "\ufffd"))
    return tuple(tokens)


VOCABULARY = _vocabulary()


@dataclass(frozen=True)
class Position:
    """One generated position: the chosen token, and every token with its logprob, most likely
    first."""

    chosen: Token
    ranked: tuple[tuple[Token, float], ...]

    def logprob(self, token: Token) -> float:
        return next(lp for t, lp in self.ranked if t.id == token.id)


def openai_text(token: Token, chat: bool) -> str:
    """The text a record should hold for `token` from an OpenAI-like server: chat's is decoded
    from its bytes (undecodable ones as `\\xNN`), completions' is OpenAI's own `bytes:\\xNN`."""
    try:
        return token.data.decode()
    except UnicodeDecodeError:
        escaped = token.data.decode("utf-8", "backslashreplace")
        return escaped if chat else f"bytes:{escaped}"


@dataclass
class FakeModel:
    """The loopback server's `respond`: samples positions and answers in `layout`."""

    layout: Layout
    length: int = 24
    spread: float = 1.0  # of the logits: the lower, the flatter the distribution
    # (prompt text, temperature) -> the positions generated for it
    truth: dict[tuple[str, float], list[Position]] = field(default_factory=dict)

    def __call__(self, outcome: str, seen: Seen) -> web.Response:
        body = seen.body
        chat = seen.path.endswith("/chat/completions")
        asked = body.get("top_logprobs") if chat else body.get("logprobs")
        if self.layout == "openai" and "return_tokens_as_token_ids" in body:
            message = "Unrecognized request argument supplied: return_tokens_as_token_ids"
            return json_error(400, {"error": {"message": message, "type": "invalid_request_error"}})
        if (asked or 0) > MAX_LOGPROBS:
            message = f"Requested {asked} logprobs, more than max_logprobs ({MAX_LOGPROBS})"
            return json_error(400, {"error": {"message": message, "type": "BadRequestError"}})
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        positions = self._generate(prompt, body["temperature"], body.get("seed"))
        self.truth[prompt, body["temperature"]] = positions
        text = b"".join(p.chosen.data for p in positions).decode("utf-8", "replace")
        ids = bool(body.get("return_tokens_as_token_ids"))
        logprobs = _LAYOUTS[self.layout, chat](positions, asked or 0, ids)
        choice = {"index": 0, "finish_reason": "length", "logprobs": logprobs}
        choice.update(
            {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
        )
        usage = {"prompt_tokens": 9, "completion_tokens": len(positions)}
        return web.json_response({"model": body["model"], "choices": [choice], "usage": usage})

    def _generate(self, prompt: str, temperature: float, seed: int | None) -> list[Position]:
        rng = random.Random(f"{prompt}|{temperature}|{seed}")
        positions = []
        for _ in range(self.length):
            logits = [rng.gauss(0, self.spread) for _ in VOCABULARY]
            ranked = sorted(zip(VOCABULARY, _log_softmax(logits), strict=True), key=lambda p: -p[1])
            if temperature == 0:
                chosen = ranked[0][0]
            else:
                weights = [math.exp(lp / temperature) for _, lp in ranked]
                chosen = rng.choices([t for t, _ in ranked], weights)[0]
            positions.append(Position(chosen, tuple(ranked)))
        return positions


def _log_softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    total = math.log(sum(math.exp(x - top) for x in logits)) + top
    return [x - total for x in logits]


def _vllm_listed(position: Position, n: int) -> list[tuple[Token, float]]:
    """The sampled token, then the top n by rank, each token once (vLLM's dict of a position)."""
    listed = {position.chosen.id: (position.chosen, position.logprob(position.chosen))}
    listed.update((t.id, (t, lp)) for t, lp in position.ranked[:n])
    return list(listed.values())


def _vllm_text(token: Token, ids: bool) -> str:
    return f"token_id:{token.id}" if ids else token.decoded


def _vllm_chat(positions: list[Position], n: int, ids: bool) -> dict[str, Any]:
    def entry(token: Token, lp: float) -> dict[str, Any]:
        text = _vllm_text(token, ids)
        return {"token": text, "logprob": lp, "bytes": list(text.encode("utf-8", "replace"))}

    content = []
    for p in positions:
        top = [entry(t, lp) for t, lp in _vllm_listed(p, n)[:n]]
        content.append({**entry(p.chosen, p.logprob(p.chosen)), "top_logprobs": top})
    return {"content": content}


def _vllm_completions(positions: list[Position], n: int, ids: bool) -> dict[str, Any]:
    return {
        "tokens": [_vllm_text(p.chosen, ids) for p in positions],
        "token_logprobs": [p.logprob(p.chosen) for p in positions],
        "top_logprobs": [
            {_vllm_text(t, ids): lp for t, lp in _vllm_listed(p, n)[: n + 1]} for p in positions
        ],
    }


def _openai_chat(positions: list[Position], n: int, ids: bool) -> dict[str, Any]:
    def entry(token: Token, lp: float) -> dict[str, Any]:
        text = token.data.decode("utf-8", "replace")
        return {"token": text, "logprob": lp, "bytes": list(token.data)}

    content = []
    for p in positions:
        top = [entry(t, lp) for t, lp in p.ranked[:n]]
        content.append({**entry(p.chosen, p.logprob(p.chosen)), "top_logprobs": top})
    return {"content": content}


def _openai_completions(positions: list[Position], n: int, ids: bool) -> dict[str, Any]:
    def text(token: Token) -> str:
        return openai_text(token, chat=False)

    tops = []
    for p in positions:
        top = {text(t): lp for t, lp in p.ranked[:n]}
        top.setdefault(text(p.chosen), p.logprob(p.chosen))
        tops.append(top)
    return {
        "tokens": [text(p.chosen) for p in positions],
        "token_logprobs": [p.logprob(p.chosen) for p in positions],
        "top_logprobs": tops,
    }


_LAYOUTS = {
    ("vllm", True): _vllm_chat,
    ("vllm", False): _vllm_completions,
    ("openai", True): _openai_chat,
    ("openai", False): _openai_completions,
}
