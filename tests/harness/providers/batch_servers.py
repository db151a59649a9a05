"""The batch APIs on a loopback server, as the SDKs call them: Anthropic's Message Batches and
Gemini's Batch Mode with inline requests (pass `routes=backend.routes` to `Loopback`).

A batch ends `delay` seconds after it was created (cancelled: at once); `create_delay` holds the
answer to a create that long after the batch exists (a client killed meanwhile never learns its
id); `create_errors` lists what the next creates get instead of a batch ("400", "overloaded").
Each request's result comes
from `outcome(request)` where `request` is the wire body of one request: "ok", "malformed" (an
answer of the wrong shape: Anthropic's content a string, Gemini's without candidates), or an
error kind ("400", "429", "500", "overloaded"); with `expire` set, every batch expires instead.
Every request of every batch created is kept in `submitted` as (batch id, custom id, request), for
tests to count how often each job was sent; every batch in `batches`.

Anthropic (anthropic 2.x, `resources/messages/batches.py`): POST /v1/messages/batches
`{"requests": [{"custom_id", "params"}]}` -> a MessageBatch; GET /v1/messages/batches (newest
first, `limit`, `after_id`); GET /v1/messages/batches/{id}; GET its `results_url` (JSONL, streamed,
in another order than sent); POST /v1/messages/batches/{id}/cancel.

Gemini (google-genai, `batches.py`, Gemini Developer API): POST
/v1beta/models/{model}:batchGenerateContent `{"batch": {"displayName", "inputConfig": {"requests":
{"requests": [{"request", "metadata"}]}}}}` -> an operation whose `metadata` is the batch
(`state` BATCH_STATE_*, `output.inlinedResponses.inlinedResponses` once it succeeded); GET
/v1beta/batches (`pageSize`, `pageToken`); GET /v1beta/batches/{id}; POST
/v1beta/batches/{id}:cancel.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from aiohttp import web

Outcome = Callable[[dict[str, Any]], str]


def always_ok(request: dict[str, Any]) -> str:
    return "ok"


@dataclass
class Batch:
    """One batch as the server holds it."""

    id: str
    requests: list[tuple[str, dict[str, Any]]]  # (custom id, request)
    created: datetime
    delay: float  # seconds from creation to its end
    label: str = ""
    model: str = ""
    cancelled: float | None = None  # seconds from creation to a cancel, if one came
    started: float = field(default_factory=time.monotonic)  # when it was created (monotonic)

    def ended(self) -> bool:
        """A batch ends `delay` after its creation, or at once when cancelled."""
        return self.cancelled is not None or time.monotonic() - self.started >= self.delay

    def cancelled_first(self) -> bool:
        """Whether a cancel came before it would have ended on its own."""
        return self.cancelled is not None and self.cancelled < self.delay

    def cancel(self) -> None:
        if not self.ended():
            self.cancelled = time.monotonic() - self.started

    def ended_at(self) -> datetime:
        seconds = self.delay if self.cancelled is None else min(self.delay, self.cancelled)
        return self.created + timedelta(seconds=seconds)


@dataclass
class _Backend:
    delay: float = 0.0
    outcome: Outcome = always_ok
    expire: bool = False
    create_delay: float = 0.0
    create_errors: list[str] = field(default_factory=list)
    batches: dict[str, Batch] = field(default_factory=dict)
    submitted: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=itertools.count)
    prefix: ClassVar[str] = "batch"

    def _new(self, requests: list[tuple[str, dict[str, Any]]], label: str, model: str) -> Batch:
        batch_id = f"{self.prefix}{next(self._ids):06d}"
        batch = Batch(batch_id, requests, datetime.now(UTC), self.delay, label, model)
        self.batches[batch.id] = batch
        self.submitted += [(batch.id, cid, request) for cid, request in requests]
        return batch

    def result(self, batch: Batch, request: dict[str, Any]) -> str:
        """What one request of an ended batch got."""
        if batch.cancelled_first():
            return "canceled"
        if self.expire:
            return "expired"
        return self.outcome(request)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- Anthropic ---------------------------------------------------------------------------------

_ANTHROPIC_ERRORS = {
    "400": ("invalid_request_error", "max_tokens: must be less than or equal to 8192"),
    "429": ("rate_limit_error", "Number of request tokens has exceeded your per-minute limit."),
    "500": ("api_error", "Internal server error"),
    "overloaded": ("overloaded_error", "Overloaded"),
}


def anthropic_message(params: dict[str, Any]) -> dict[str, Any]:
    """The Message a request gets, live or in a batch: its last turn echoed."""
    prompt = params["messages"][-1]["content"]
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "claude-test-20251001",
        "content": [{"type": "text", "text": f"Answer to: {prompt}"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 21,
            "output_tokens": 9,
            "cache_read_input_tokens": 4,
            "cache_creation_input_tokens": 0,
        },
    }


@dataclass
class AnthropicBatches(_Backend):
    """Anthropic's Message Batches API."""

    prefix: ClassVar[str] = "msgbatch_"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages/batches", self.create)
        app.router.add_get("/v1/messages/batches", self.list)
        app.router.add_get("/v1/messages/batches/{id}", self.retrieve)
        app.router.add_get("/v1/messages/batches/{id}/results", self.results)
        app.router.add_post("/v1/messages/batches/{id}/cancel", self.cancel)

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.create_errors:
            kind, message = _ANTHROPIC_ERRORS[self.create_errors.pop(0)]
            status = {"invalid_request_error": 400, "overloaded_error": 529}[kind]
            error = {"type": kind, "message": message}
            return web.json_response({"type": "error", "error": error}, status=status)
        items = [(item["custom_id"], item["params"]) for item in body["requests"]]
        batch = self._new(items, "", items[0][1]["model"] if items else "")
        await asyncio.sleep(self.create_delay)
        return web.json_response(self._view(batch, request))

    async def list(self, request: web.Request) -> web.Response:
        newest = sorted(self.batches.values(), key=lambda b: b.created, reverse=True)
        after = request.query.get("after_id")
        if after:
            newest = newest[[b.id for b in newest].index(after) + 1 :]
        limit = int(request.query.get("limit", "20"))
        page = [self._view(b, request) for b in newest[:limit]]
        return web.json_response(
            {
                "data": page,
                "has_more": len(newest) > limit,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            }
        )

    async def retrieve(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _anthropic_not_found(request.match_info["id"])
        return web.json_response(self._view(batch, request))

    async def cancel(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _anthropic_not_found(request.match_info["id"])
        batch.cancel()
        return web.json_response(self._view(batch, request))

    async def results(self, request: web.Request) -> web.StreamResponse:
        batch = self.batches[request.match_info["id"]]
        response = web.StreamResponse(headers={"content-type": "application/binary"})
        await response.prepare(request)
        chunk = []
        for cid, params in reversed(batch.requests):  # in no particular order
            chunk.append(json.dumps({"custom_id": cid, "result": self._result(batch, params)}))
            if len(chunk) == 1000:
                await response.write(("\n".join(chunk) + "\n").encode())
                chunk = []
        if chunk:
            await response.write(("\n".join(chunk) + "\n").encode())
        await response.write_eof()
        return response

    def _result(self, batch: Batch, params: dict[str, Any]) -> dict[str, Any]:
        got = self.result(batch, params)
        if got == "ok":
            return {"type": "succeeded", "message": anthropic_message(params)}
        if got == "malformed":
            message = {**anthropic_message(params), "content": "Yes."}
            return {"type": "succeeded", "message": message}
        if got in ("canceled", "expired"):
            return {"type": got}
        kind, message = _ANTHROPIC_ERRORS[got]
        error = {"type": "error", "error": {"type": kind, "message": message}}
        return {"type": "errored", "error": error}

    def _view(self, batch: Batch, request: web.Request) -> dict[str, Any]:
        ended = batch.ended()
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if ended:
            for _, params in batch.requests:
                got = self.result(batch, params)
                kind = {"ok": "succeeded", "malformed": "succeeded"}.get(got, got)
                counts[kind if kind in counts else "errored"] += 1
        else:
            counts["processing"] = len(batch.requests)
        origin = f"{request.scheme}://{request.host}"
        cancelling = batch.cancelled is not None
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": _iso(batch.created),
            "expires_at": _iso(batch.created + timedelta(hours=24)),
            "ended_at": _iso(batch.ended_at()) if ended else None,
            "cancel_initiated_at": _iso(datetime.now(UTC)) if cancelling else None,
            "archived_at": None,
            "results_url": f"{origin}/v1/messages/batches/{batch.id}/results" if ended else None,
        }


def _anthropic_not_found(batch_id: str) -> web.Response:
    error = {"type": "not_found_error", "message": f"No batch with id {batch_id}"}
    return web.json_response({"type": "error", "error": error}, status=404)


# --- Gemini ------------------------------------------------------------------------------------

_GEMINI_ERRORS = {  # google.rpc codes
    "400": (3, "Invalid value at 'contents'."),
    "429": (8, "Resource has been exhausted."),
    "500": (13, "Internal error encountered."),
    "overloaded": (14, "The model is overloaded."),
}


def gemini_response(request: dict[str, Any]) -> dict[str, Any]:
    """The GenerateContentResponse a request gets: its last turn echoed."""
    prompt = request["contents"][-1]["parts"][0]["text"]
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": f"Answer to: {prompt}"}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": 3,
            "thoughtsTokenCount": 5,
            "totalTokenCount": 20,
        },
        "modelVersion": "gemini-test-001",
    }


@dataclass
class GeminiBatches(_Backend):
    """Gemini's Batch Mode, inline requests."""

    prefix: ClassVar[str] = "gbatch"

    def routes(self, app: web.Application) -> None:
        app.router.add_post(r"/{version}/models/{model}:batchGenerateContent", self.create)
        app.router.add_get("/{version}/batches", self.list)
        app.router.add_get(r"/{version}/batches/{id:[^:/]+}", self.get)
        app.router.add_post(r"/{version}/batches/{id:[^:/]+}:cancel", self.cancel)

    async def create(self, request: web.Request) -> web.Response:
        body = (await request.json())["batch"]
        if self.create_errors:
            code, message = _GEMINI_ERRORS[self.create_errors.pop(0)]
            status, name = {3: (400, "INVALID_ARGUMENT"), 14: (503, "UNAVAILABLE")}[code]
            error = {"code": status, "message": message, "status": name}
            return web.json_response({"error": error}, status=status)
        items = body["inputConfig"]["requests"]["requests"]
        requests = [(item["metadata"]["key"], item["request"]) for item in items]
        batch = self._new(requests, body.get("displayName", ""), request.match_info["model"])
        await asyncio.sleep(self.create_delay)
        return web.json_response(self._operation(batch))

    async def list(self, request: web.Request) -> web.Response:
        size = int(request.query.get("pageSize", "50"))
        start = int(request.query.get("pageToken") or 0)
        every = sorted(self.batches.values(), key=lambda b: b.created, reverse=True)
        page = {"operations": [self._operation(b) for b in every[start : start + size]]}
        if start + size < len(every):
            page["nextPageToken"] = str(start + size)
        return web.json_response(page)

    async def get(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _gemini_not_found(request.match_info["id"])
        return web.json_response(self._operation(batch))

    async def cancel(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _gemini_not_found(request.match_info["id"])
        batch.cancel()
        return web.json_response({})

    def _operation(self, batch: Batch) -> dict[str, Any]:
        ended = batch.ended()
        metadata: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": f"models/{batch.model}",
            "displayName": batch.label,
            "createTime": _iso(batch.created),
            "updateTime": _iso(batch.ended_at() if ended else datetime.now(UTC)),
            "state": "BATCH_STATE_RUNNING",
            "name": f"batches/{batch.id}",
        }
        if ended:
            metadata["endTime"] = _iso(batch.ended_at())
            if batch.cancelled_first():
                metadata["state"] = "BATCH_STATE_CANCELLED"
            elif self.expire:
                metadata["state"] = "BATCH_STATE_EXPIRED"
            else:
                metadata["state"] = "BATCH_STATE_SUCCEEDED"
                answers = [self._answer(cid, request) for cid, request in batch.requests]
                metadata["output"] = {"inlinedResponses": {"inlinedResponses": answers}}
        return {"name": f"batches/{batch.id}", "metadata": metadata, "done": ended}

    def _answer(self, cid: str, request: dict[str, Any]) -> dict[str, Any]:
        got = self.outcome(request)
        if got == "ok":
            return {"response": gemini_response(request), "metadata": {"key": cid}}
        if got == "malformed":
            response = {**gemini_response(request), "candidates": []}
            return {"response": response, "metadata": {"key": cid}}
        code, message = _GEMINI_ERRORS[got]
        return {"error": {"code": code, "message": message}, "metadata": {"key": cid}}


def _gemini_not_found(batch_id: str) -> web.Response:
    error = {"code": 404, "message": f"Batch batches/{batch_id} not found.", "status": "NOT_FOUND"}
    return web.json_response({"error": error}, status=404)
