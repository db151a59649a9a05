"""The gemini provider: the real google-genai SDK against a generateContent server on 127.0.0.1."""

from __future__ import annotations

import anyio
import pytest
from aiohttp import web

from harness.api.types import Message, Request, SamplingParams
from harness.errors import MalformedResponse
from harness.providers.gemini import GeminiOptions, GeminiProvider
from harness.run.jobs import job_seed
from tests.conftest import results, write_config
from tests.harness.providers.servers import (
    DELETE,
    Loopback,
    Seen,
    fast_retries,
    json_error,
    reshaped,
)

KEY = "AIza-gemini-test-9988-TESTONLY"


def google_error(code: int, status: str, message: str, details=()):
    return {"error": {"code": code, "message": message, "status": status, "details": list(details)}}


FIRST = ("candidates", 0)
LOGPROBS = (*FIRST, "logprobsResult")
# Answers of the wrong shape, each with the field its error names (see servers.reshaped).
MALFORMED = {
    "text-list": ((*FIRST, "content", "parts", 0, "text"), ["Yes."], "parts[0].text"),
    "parts-object": ((*FIRST, "content", "parts"), {"text": "Yes."}, "content.parts: expected"),
    "content-string": ((*FIRST, "content"), "Yes.", "candidates[0].content: expected"),
    "candidate-string": (FIRST, "Yes.", "candidates[0]: expected content or a finishReason"),
    "candidates-object": (("candidates",), {"text": "Yes."}, "candidates[0]: expected"),
    "no-candidates": (("candidates",), DELETE, "candidates: expected at least one candidate"),
    "body-list": ((), ["Yes."], "candidates: expected at least one candidate"),
    "model-number": (("modelVersion",), 42, "model_version: expected a valid string, got int"),
    "finish-reason-number": ((*FIRST, "finishReason"), 7, "malformed response"),
    "usage-word": (("usageMetadata", "promptTokenCount"), "many", "promptTokenCount"),
    "usage-fraction": (("usageMetadata", "candidatesTokenCount"), 2.5, "candidatesTokenCount"),
    "usage-negative": (("usageMetadata", "thoughtsTokenCount"), -5, "thoughtsTokenCount"),
    "logprob-word": (
        (*LOGPROBS, "chosenCandidates", 0, "logProbability"),
        "low",
        "chosenCandidates[0].logProbability",
    ),
    "top-logprob-word": (
        (*LOGPROBS, "topCandidates", 0, "candidates", 1, "logProbability"),
        "low",
        "topCandidates[0].candidates[1].logProbability",
    ),
    "token-number": ((*LOGPROBS, "chosenCandidates", 0, "token"), 5, "chosenCandidates[0].token"),
}


def generate_content(outcome: str, seen: Seen) -> web.Response:
    """Gemini's POST /v1beta/models/{model}:generateContent and Google's error bodies."""
    if outcome == "429":
        retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.4s"}
        body = google_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.", [retry])
        return json_error(429, body)
    if outcome == "401":  # the credentials echoed back
        message = f"API key not valid: {seen.headers.get('x-goog-api-key')}"
        return json_error(401, google_error(401, "UNAUTHENTICATED", message))
    if outcome == "503":
        return json_error(503, google_error(503, "UNAVAILABLE", "The model is overloaded."))
    if outcome == "400":
        return json_error(
            400, google_error(400, "INVALID_ARGUMENT", "Invalid value at 'contents'.")
        )
    if outcome == "torn":  # a body cut short
        return web.Response(text='{"candidates": [', content_type="application/json")
    usage = {
        "promptTokenCount": 12,
        "candidatesTokenCount": 3,
        "thoughtsTokenCount": 5,
        "totalTokenCount": 20,
    }
    if outcome == "safety":
        candidate = {
            "finishReason": "SAFETY",
            "index": 0,
            "safetyRatings": [
                {
                    "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                    "probability": "HIGH",
                    "blocked": True,
                },
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
            ],
        }
    else:
        yes = {"token": "Yes", "tokenId": 8438}
        if outcome != "no-logprob":
            yes["logProbability"] = -0.2
        top = [yes, {"token": "No", "tokenId": 1294, "logProbability": -1.9}]
        if outcome == "byte-tokens":  # two partial UTF-8 bytes, one text
            top += [
                {"token": "\ufffd", "tokenId": 239, "logProbability": -3.1},
                {"token": "\ufffd", "tokenId": 241, "logProbability": -3.4},
            ]
        candidate = {
            "content": {"role": "model", "parts": [{"text": "Yes, it exists."}]},
            "finishReason": "STOP",
            "index": 0,
            "logprobsResult": {"topCandidates": [{"candidates": top}], "chosenCandidates": [yes]},
        }
    body = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-test-001"}
    reshapes = {name: (path, value) for name, (path, value, _) in MALFORMED.items()}
    return web.json_response(reshaped(body, outcome, reshapes))


def run(tmp_path, run_cli, monkeypatch, *, script=(), attempts=3):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with Loopback(generate_content, script) as server:
        body = f"""{fast_retries(attempts)}
[[models]]
name = "gemini"
provider = "gemini"
model = "gemini-test"
temperatures = [0.0]
max_tokens = 48
[models.options]
base_url = "{server.base_url}"
top_logprobs = 2
"""
        code, _, _ = run_cli("run", write_config(tmp_path, body, prompts=1))
    return code, results(tmp_path / "out" / "ledger.jsonl"), server.seen


def test_answer_with_usage_thoughts_and_logprobs(tmp_path, run_cli, monkeypatch):
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch)
    assert code == 0 and record["full_response"] == "Yes, it exists."
    assert record["model"] == "gemini-test-001" and record["finish_reason"] == "stop"
    assert record["tokens"] == {"input": 12, "output": 3, "total": 15, "thoughts": 5}
    assert record["token_logprobs"] == [
        {
            "token": "Yes",
            "logprob": -0.2,
            "top": [["Yes", -0.2], ["No", -1.9]],
            "token_id": 8438,
            "top_ids": [8438, 1294],
        }
    ]
    (request,) = seen
    assert request.path.endswith("/models/gemini-test:generateContent")  # v1 or v1beta
    assert request.headers["x-goog-api-key"] == KEY
    generation = request.body["generationConfig"]
    assert generation["seed"] == job_seed(7, "p000", 0) and generation["maxOutputTokens"] == 48
    assert generation["responseLogprobs"] is True and generation["logprobs"] == 2
    assert record["sampling_params"]["seed"] == job_seed(7, "p000", 0)


def test_safety_block_is_a_finished_answer_not_a_retry(tmp_path, run_cli, monkeypatch):
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch, script=["safety"])
    assert code == 0 and len(seen) == 1
    assert record["status"] == "ok" and record["retry_count"] == 0
    assert record["finish_reason"] == "safety" and record["full_response"] == ""
    assert record["finish_detail"] == "SAFETY: HARM_CATEGORY_DANGEROUS_CONTENT (HIGH)"


def test_resource_exhausted_waits_its_retry_delay(tmp_path, run_cli, monkeypatch):
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch, script=["429", "503"])
    assert code == 0 and record["retry_count"] == 2 and len(seen) == 3
    assert seen[1].at - seen[0].at >= 0.4


def test_a_stalled_server_times_out(tmp_path, run_cli, monkeypatch):
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch, script=["stall"], attempts=2)
    assert code == 0 and record["retry_count"] == 1 and seen[1].at - seen[0].at >= 1.0


def test_invalid_argument_is_fatal_with_its_message(tmp_path, run_cli, monkeypatch):
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch, script=["400"])
    assert code == 1 and len(seen) == 1
    assert record["error"] == {
        "type": "FatalError",
        "message": "INVALID_ARGUMENT: Invalid value at 'contents'.",
        "retryable": False,
        "status": 400,
        "retry_after": None,
    }


def test_a_logprob_the_api_left_out_is_null_not_zero(tmp_path, run_cli, monkeypatch):
    code, (record,), _ = run(tmp_path, run_cli, monkeypatch, script=["no-logprob"])
    assert code == 0
    (entry,) = record["token_logprobs"]
    assert entry["logprob"] is None and entry["top"] == [["Yes", None], ["No", -1.9]]


def test_byte_tokens_of_one_text_keep_their_own_ids(tmp_path, run_cli, monkeypatch):
    code, (record,), _ = run(tmp_path, run_cli, monkeypatch, script=["byte-tokens"])
    (entry,) = record["token_logprobs"]
    assert code == 0 and [text for text, _ in entry["top"][2:]] == ["\ufffd", "\ufffd"]
    assert entry["top_ids"] == [8438, 1294, 239, 241]


async def _answer_then_close(base_url: str) -> GeminiProvider:
    options = GeminiOptions(api_key=KEY, base_url=base_url, top_logprobs=2)
    provider = GeminiProvider("gemini-test", options)
    try:
        await provider.generate(
            Request("r", "gemini-test", (Message("user", "hi"),), SamplingParams(0.0, 1.0, 8, 7))
        )
    finally:
        await provider.aclose()
    return provider


def test_aclose_closes_the_sync_client_too():
    with Loopback(generate_content) as server:
        provider = anyio.run(_answer_then_close, server.base_url)
    api_client = provider._client._api_client
    assert api_client._httpx_client.is_closed
    assert all(session.closed for session in api_client._aiohttp_sessions.values())


@pytest.mark.parametrize("name", [*MALFORMED, "torn"])
def test_an_answer_of_the_wrong_shape_is_a_malformed_response_naming_its_field(name):
    script = [f"malformed:{name}" if name in MALFORMED else name]
    with Loopback(generate_content, script) as server, pytest.raises(MalformedResponse) as caught:
        anyio.run(_answer_then_close, server.base_url)
    named = MALFORMED[name][2] if name in MALFORMED else "malformed response: not JSON"
    assert named in caught.value.message and caught.value.retryable


def test_a_malformed_answer_fails_its_job_never_ok(tmp_path, run_cli, monkeypatch):
    script = ["malformed:text-list", "malformed:no-candidates"]
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch, script=script, attempts=2)
    assert code == 1 and len(seen) == 2 and record["status"] == "error"
    assert record["error"]["type"] == "MalformedResponse" and record["error"]["retryable"]
    assert "candidates: expected at least one candidate" in record["error"]["message"]
    assert "parts[0].text" in record["attempt_errors"][0]["message"]


def test_a_malformed_answer_then_a_good_one_is_ok_after_a_retry(tmp_path, run_cli, monkeypatch):
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch, script=["malformed:usage-word"])
    assert code == 0 and len(seen) == 2 and record["status"] == "ok"
    assert record["retry_count"] == 1 and record["tokens"]["input"] == 12
