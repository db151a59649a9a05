"""The openai provider: chat and text completions from an OpenAI-compatible loopback server."""

from __future__ import annotations

import math

from aiohttp import web

from harness.jobs import job_seed
from tests.conftest import results, write_config
from tests.providers.servers import Loopback, Seen, fast_retries, json_error

KEY = "sk-openai-test-5566-TESTONLY"


def top(token: str) -> list[dict]:
    return [{"token": token, "logprob": -0.1}, {"token": "No", "logprob": -2.5}]


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
    body = {"id": "cmpl-1", "model": "served-model", "choices": [choice], "usage": usage}
    return web.json_response(body, headers=headers)


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
