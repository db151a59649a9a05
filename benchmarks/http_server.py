"""A loopback server for the benchmarks: fixed OpenAI, Anthropic and Gemini answers, after an
optional delay.

Run in a process of its own (`serve_forever` via multiprocessing) so that it does not share an
interpreter with the client being measured.
"""

from __future__ import annotations

import asyncio
import json
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


def _answer(body: bytes, delay: float):
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        if delay:
            await asyncio.sleep(delay)
        return web.Response(body=body, content_type="application/json")

    return handler


def free_port() -> int:
    """A port on 127.0.0.1 nobody is listening on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_forever(port: int, delay: float = 0.0) -> None:
    """Serve OpenAI chat, Anthropic messages and Gemini generateContent on 127.0.0.1:port, each
    answer `delay` seconds after its request, until killed."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _answer(_CHAT, delay))
    app.router.add_post("/v1/messages", _answer(_MESSAGE, delay))
    app.router.add_post("/{version}/models/{model}", _answer(_GEMINI, delay))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
