"""Small servers on 127.0.0.1 that speak each provider's wire protocol, for the real SDKs to call.

Each runs aiohttp in a thread of its own. A `Script` says what the next requests get ("ok",
"429", "529", "503", "400", "401" (which echoes the credentials it got), "stall", "safety", or
"malformed:NAME": the good answer reshaped by the provider's `NAME` in its table of
`Reshape`s); once it runs out, every request gets "ok". Every request is kept (path, JSON body,
headers, arrival time) for the test to inspect. `routes` adds handlers of its own ahead of that
(the batch APIs of tests/harness/providers/batch_servers.py).
"""

from __future__ import annotations

import asyncio
import copy
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

Outcome = str
# A malformed answer: where in the good answer's JSON body (keys and list indices; () the whole
# body) and what to put there (DELETE: take the field out).
Reshape = tuple[tuple[str | int, ...], Any]
DELETE = object()


@dataclass
class Seen:
    """One request as the server received it."""

    path: str
    body: dict[str, Any]
    headers: CIMultiDict[str]
    at: float


@dataclass
class Loopback:
    """An HTTP server on 127.0.0.1:<free port>; `respond` builds each response."""

    respond: Callable[[Outcome, Seen], web.Response]
    script: Iterable[Outcome] = ()
    retry_after: str = "0.3"
    delay: float = 0.0  # seconds before every answer
    port: int = 0  # 0: any free port
    seen: list[Seen] = field(default_factory=list)
    routes: Callable[[web.Application], None] | None = None

    def __post_init__(self) -> None:
        self._script: deque[Outcome] = deque(self.script)
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.base_url = ""

    def __enter__(self) -> Loopback:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=1 << 30)  # a batch of requests is large
        if self.routes is not None:
            self.routes(app)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        port = runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        seen = Seen(request.path, body, CIMultiDict(request.headers), time.monotonic())
        self.seen.append(seen)
        outcome = self._script.popleft() if self._script else "ok"
        if outcome == "stall":  # answer nothing until the server stops
            await self._stop.wait()
            return web.Response(status=503)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.respond(outcome, seen)


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on right now (for a server restarted on the same one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def json_error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    """A JSON error response."""
    return web.json_response(body, status=status, headers=headers or {})


def fast_retries(attempts: int) -> str:
    """A [retry] table that keeps loopback tests quick: short waits, a 1 s attempt timeout."""
    return (
        f"\n[retry]\nmax_attempts = {attempts}\ninitial_wait = 0.05\nmax_wait = 0.1\n"
        "attempt_timeout = 1.0\n"
    )


def reshaped(body: Any, outcome: Outcome, reshapes: dict[str, Reshape]) -> Any:
    """`body` as the outcome "malformed:NAME" has it (`reshapes[NAME]` applied to a copy), or
    `body` itself for any other outcome."""
    if not outcome.startswith("malformed:"):
        return body
    path, value = reshapes[outcome.removeprefix("malformed:")]
    if not path:
        return value
    body = copy.deepcopy(body)
    *parents, last = path
    inner = body
    for step in parents:
        inner = inner[step]
    if value is DELETE:
        del inner[last]
    else:
        inner[last] = value
    return body
