"""A loopback server for the benchmarks: fixed OpenAI, Anthropic and Gemini answers, after an
optional delay.

Run in a process of its own (`serve_forever` via multiprocessing) so that it does not share an
interpreter with the client being measured.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket

from aiohttp import web

_CHAT = json.dumps(
    {
        "id": "c",
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Yes, it exists."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }
).encode()
_MESSAGE = json.dumps(
    {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": [{"type": "text", "text": "Yes, it exists."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 4},
    }
).encode()


_GEMINI = json.dumps(
    {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "Yes, it exists."}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 4, "totalTokenCount": 16},
        "modelVersion": "bench",
    }
).encode()


_LIMITED = json.dumps({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}})


def _answer(body: bytes, delay: float, limited: float, retry_after: str):
    draw = random.Random(429)

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        if limited and draw.random() < limited:  # a random, load-independent 429, at once
            headers = {"retry-after": retry_after}
            return web.Response(status=429, text=_LIMITED, headers=headers)
        if delay:
            await asyncio.sleep(delay)
        return web.Response(body=body, content_type="application/json")

    return handler


_BROKEN = json.dumps({"error": {"message": "Internal server error", "type": "server_error"}})


def fault(prompt: str, attempt: int, share: float) -> str | None:
    """How the `attempt`-th request for `prompt` fails in `serve_faults` ("429", "500"), or None
    when it is answered: a fixed draw per prompt and attempt, a `share` of them failing, half of
    those as 429s and half as 500s."""
    roll = random.Random(f"{prompt}|{attempt}").random()
    if roll < share / 2:
        return "429"
    return "500" if roll < share else None


def serve_faults(port: int, delay: float, share: float, retry_after: float) -> None:
    """Serve OpenAI chat on 127.0.0.1:port: each answer `delay` seconds after its request, except
    that the n-th request for a prompt fails at once as `fault(prompt, n, share)` says, a 429 with
    `retry-after` or a 500 without one. Every server sees the same failures, whatever the
    client's timing."""
    seen: dict[str, int] = {}  # requests so far for each prompt
    after = {"retry-after": f"{retry_after:g}"}

    async def handler(request: web.Request) -> web.Response:
        body = await request.json()
        prompt = "\n\n".join(m["content"] for m in body["messages"])
        seen[prompt] = attempt = seen.get(prompt, 0) + 1
        failure = fault(prompt, attempt, share)
        if failure == "429":
            return web.Response(status=429, text=_LIMITED, headers=after)
        if failure == "500":
            return web.Response(status=500, text=_BROKEN, content_type="application/json")
        await asyncio.sleep(delay)
        return web.Response(body=_CHAT, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def free_port() -> int:
    """A port on 127.0.0.1 nobody is listening on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_forever(
    port: int, delay: float = 0.0, limited: float = 0.0, retry_after: float = 1.0
) -> None:
    """Serve OpenAI chat, Anthropic messages and Gemini generateContent on 127.0.0.1:port, each
    answer `delay` seconds after its request, until killed; a `limited` share of requests, drawn
    at random, get a 429 with `retry-after` at once."""
    app = web.Application()
    after = f"{retry_after:g}"
    app.router.add_post("/v1/chat/completions", _answer(_CHAT, delay, limited, after))
    app.router.add_post("/v1/messages", _answer(_MESSAGE, delay, limited, after))
    app.router.add_post("/{version}/models/{model}", _answer(_GEMINI, delay, limited, after))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def serve_batches(port: int) -> None:
    """Serve Anthropic's Message Batches and Gemini's Batch Mode (inline requests) on
    127.0.0.1:port, every batch processed at once (the loopback servers of the tests)."""
    from tests.harness.providers.batch_servers import AnthropicBatches, GeminiBatches

    app = web.Application(client_max_size=1 << 30)
    AnthropicBatches().routes(app)
    GeminiBatches().routes(app)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
