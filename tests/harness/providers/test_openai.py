"""The openai provider: chat and text completions from an OpenAI-compatible loopback server."""

from __future__ import annotations

import math

import anyio
import pytest
from aiohttp import web

from harness.api.types import Message, Request, SamplingParams
from harness.errors import MalformedResponse
from harness.providers.openai import OpenAIOptions, OpenAIProvider
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

KEY = "sk-openai-test-5566-TESTONLY"


def top(token: str) -> list[dict]:
    return [{"token": token, "logprob": -0.1}, {"token": "No", "logprob": -2.5}]


CHAT_LOGPROBS = ("choices", 0, "logprobs", "content")
# Answers of the wrong shape, each with the field its error names (see servers.reshaped).
MALFORMED = {
    "content-list": (
        ("choices", 0, "message", "content"),
        [{"type": "text", "text": "Yes."}],
        "choices[0].message.content",
    ),
    "content-object": (("choices", 0, "message", "content"), {"text": "Yes."}, "content"),
    "no-message": (("choices", 0, "message"), DELETE, "choices[0].message"),
    "model-number": (("model",), 42, "model: expected a string or null, got int 42"),
    "finish-reason-number": (("choices", 0, "finish_reason"), 1, "choices[0].finish_reason"),
    "logprob-string": ((*CHAT_LOGPROBS, 0, "logprob"), "-0.1", "content[].logprob"),
    "top-logprob-string": (
        (*CHAT_LOGPROBS, 1, "top_logprobs", 0, "logprob"),
        "x",
        "content[].top_logprobs[].logprob",
    ),
    "top-logprobs-object": ((*CHAT_LOGPROBS, 0, "top_logprobs"), {"Yes": -0.1}, "top_logprobs"),
    "token-number": ((*CHAT_LOGPROBS, 0, "token"), 7, "content[].token: expected a string"),
    "position-list": ((*CHAT_LOGPROBS, 0), ["Yes", -0.1], "content[]: expected an object"),
    "logprobs-list": (("choices", 0, "logprobs"), [1], "choices[0].logprobs: expected an object"),
    "bytes-unreadable": ((*CHAT_LOGPROBS, 0, "bytes"), [999], "malformed response"),
    "usage-string": (("usage", "prompt_tokens"), "17", "usage.prompt_tokens"),
    "usage-negative": (("usage", "completion_tokens"), -2, "usage.completion_tokens"),
    "usage-list": (("usage",), [17, 2], "usage: expected an object"),
    "no-choices": (("choices",), DELETE, "choices: expected a list"),
    "empty-choices": (("choices",), [], "choices: expected a list of at least one choice"),
    "choice-string": (("choices", 0), "Yes.", "choices[0]: expected an object"),
    "body-list": ((), ["Yes."], "the response: expected a JSON object"),
    "text-number": (("choices", 0, "text"), 3, "choices[0].text"),
    "logprobs-short": (
        ("choices", 0, "logprobs", "token_logprobs"),
        [-0.1],
        "choices[0].logprobs.token_logprobs: expected 2 logprobs, one per token",
    ),
    "top-entry-list": (
        ("choices", 0, "logprobs", "top_logprobs", 0),
        [" Yes", -0.1],
        "choices[0].logprobs.top_logprobs[]: expected an object or null",
    ),
}
COMPLETIONS_ONLY = {"text-number", "logprobs-short", "top-entry-list"}


def openai_api(outcome: str, seen: Seen) -> web.Response:
    """POST /v1/chat/completions and /v1/completions, with OpenAI's error bodies and headers."""
    headers = {"x-ratelimit-remaining-requests": "499", "x-ratelimit-reset-requests": "120ms"}
    if outcome == "429":
        headers["retry-after"] = "0.4"
        error = {
            "message": "Rate limit reached for requests",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
        return json_error(429, {"error": error}, headers)
    if outcome == "503":
        return json_error(503, {"error": {"message": "overloaded", "type": "server_error"}})
    if outcome == "401":  # the credentials echoed back, as some servers do
        error = {
            "message": f"Incorrect API key provided: {seen.headers.get('Authorization')}",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
        return json_error(401, {"error": error})
    if outcome == "400":
        error = {
            "message": "This model's maximum context length is 4096 tokens.",
            "type": "invalid_request_error",
        }
        return json_error(400, {"error": error})
    usage = {"prompt_tokens": 17, "completion_tokens": 2, "total_tokens": 19}
    if seen.path.endswith("/chat/completions"):
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": "Yes."},
            "finish_reason": "stop",
            "logprobs": {
                "content": [
                    {"token": "Yes", "logprob": -0.1, "top_logprobs": top("Yes")},
                    {"token": ".", "logprob": -0.01, "top_logprobs": top(".")},
                ]
            },
        }
    else:
        choice = {
            "index": 0,
            "text": " Yes.",
            "finish_reason": "length",
            "logprobs": {
                "tokens": [" Yes", "."],
                "token_logprobs": [-0.1, -0.01],
                "top_logprobs": [{" Yes": -0.1, " No": -2.5}, {".": -0.01, "!": -4.0}],
            },
        }
    if outcome == "not-json":  # a proxy's error page with status 200
        return web.Response(text="<html>Bad gateway</html>", content_type="text/html")
    body = {"id": "cmpl-1", "model": "served-model", "choices": [choice], "usage": usage}
    reshapes = {name: (path, value) for name, (path, value, _) in MALFORMED.items()}
    return web.json_response(reshaped(body, outcome, reshapes), headers=headers)


def run(tmp_path, run_cli, monkeypatch, *, script=(), endpoint="chat", attempts=3):
    monkeypatch.setenv("TEST_OPENAI_KEY", KEY)
    with Loopback(openai_api, script) as server:
        body = f"""{fast_retries(attempts)}
[[models]]
name = "local"
provider = "openai"
model = "qwen-test"
temperatures = [0.7]
max_tokens = 32
[models.options]
base_url = "{server.base_url}/v1"
api_key_env = "TEST_OPENAI_KEY"
endpoint = "{endpoint}"
top_logprobs = 2
"""
        code, _, _ = run_cli("run", write_config(tmp_path, body, prompts=1))
    return code, results(tmp_path / "out" / "ledger.jsonl"), server.seen


def test_chat_answer_with_logprobs_usage_and_seed(tmp_path, run_cli, monkeypatch):
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch)
    assert code == 0 and record["full_response"] == "Yes." and record["model"] == "served-model"
    assert record["tokens"] == {"input": 17, "output": 2, "total": 19}
    first = record["token_logprobs"][0]
    assert first == {
        "token": "Yes",
        "logprob": -0.1,
        "top": [["Yes", -0.1], ["No", -2.5]],
        "token_id": None,
        "top_ids": None,
    }
    (request,) = seen
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.body["seed"] == job_seed(7, "p000", 0) and request.body["temperature"] == 0.7
    assert request.body["logprobs"] is True and request.body["top_logprobs"] == 3  # k + 1
    assert request.body["return_tokens_as_token_ids"] is True
    assert record["sampling_params"]["seed"] == job_seed(7, "p000", 0)


def test_completions_endpoint_sends_raw_text_for_base_models(tmp_path, run_cli, monkeypatch):
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch, endpoint="completions")
    assert code == 0 and record["full_response"] == " Yes." and record["finish_reason"] == "length"
    assert seen[0].path == "/v1/completions" and "messages" not in seen[0].body
    assert (
        seen[0].body["prompt"].startswith("Does thing number 0") and seen[0].body["logprobs"] == 2
    )
    assert [entry["token"] for entry in record["token_logprobs"]] == [" Yes", "."]
    assert record["token_logprobs"][0]["top"] == [[" Yes", -0.1], [" No", -2.5]]
    assert all(math.isfinite(entry["logprob"]) for entry in record["token_logprobs"])


def test_429_waits_the_retry_after_and_503_is_retried(tmp_path, run_cli, monkeypatch):
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch, script=["429", "503"])
    assert code == 0 and record["retry_count"] == 2 and len(seen) == 3
    assert seen[1].at - seen[0].at >= 0.4


def test_a_stalled_server_times_out(tmp_path, run_cli, monkeypatch):
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch, script=["stall"], attempts=1)
    assert code == 1 and len(seen) == 1
    assert record["error"]["type"] == "AttemptTimeout" and record["error"]["retryable"] is True


def test_400_is_fatal_with_the_servers_message(tmp_path, run_cli, monkeypatch):
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch, script=["400"])
    assert code == 1 and len(seen) == 1 and record["retry_count"] == 0
    assert record["error"] == {
        "type": "FatalError",
        "message": "invalid_request_error: This model's maximum context length is 4096 tokens.",
        "retryable": False,
        "status": 400,
        "retry_after": None,
    }


async def _generate(base_url: str, endpoint: str) -> None:
    options = OpenAIOptions(base_url=base_url, api_key_env="", endpoint=endpoint, top_logprobs=2)
    provider = OpenAIProvider("qwen-test", options)
    sampling = SamplingParams(0.0, 1.0, 8, 7)
    try:
        await provider.generate(Request("r", "qwen-test", (Message("user", "hi"),), sampling))
    finally:
        await provider.aclose()


@pytest.mark.parametrize("name", [*MALFORMED, "not-json"])
def test_an_answer_of_the_wrong_shape_is_a_malformed_response_naming_its_field(name):
    endpoint = "completions" if name in COMPLETIONS_ONLY else "chat"
    script = [f"malformed:{name}" if name in MALFORMED else name]
    with Loopback(openai_api, script) as server, pytest.raises(MalformedResponse) as caught:
        anyio.run(_generate, f"{server.base_url}/v1", endpoint)
    named = MALFORMED[name][2] if name in MALFORMED else "<html>Bad gateway</html>"
    assert named in caught.value.message and caught.value.retryable


def test_a_malformed_answer_fails_its_job_with_the_field_named_never_ok(
    tmp_path, run_cli, monkeypatch
):
    script = ["malformed:content-list", "malformed:model-number"]
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch, script=script, attempts=2)
    assert code == 1 and len(seen) == 2 and record["status"] == "error"
    assert record["error"]["type"] == "MalformedResponse" and record["error"]["retryable"]
    assert "model: expected a string or null, got int 42" in record["error"]["message"]
    assert record["attempt_errors"][0]["type"] == "MalformedResponse"
    assert "choices[0].message.content" in record["attempt_errors"][0]["message"]


def test_a_malformed_answer_then_a_good_one_is_ok_after_a_retry(tmp_path, run_cli, monkeypatch):
    script = ["malformed:logprob-string"]
    code, (record,), seen = run(tmp_path, run_cli, monkeypatch, script=script)
    assert code == 0 and len(seen) == 2 and record["status"] == "ok"
    assert record["retry_count"] == 1 and record["token_logprobs"][0]["logprob"] == -0.1
