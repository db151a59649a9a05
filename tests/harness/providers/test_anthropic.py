"""The anthropic provider: the real SDK against a Messages API server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import anthropic
import anyio
import pytest
from aiohttp import web

from harness.api.types import Message, Request, SamplingParams
from harness.errors import MalformedResponse, RateLimited
from harness.providers.anthropic import AnthropicOptions, AnthropicProvider, status_error
from tests.conftest import results, write_config
from tests.harness.providers.batch_servers import anthropic_message
from tests.harness.providers.servers import (
    DELETE,
    Loopback,
    Seen,
    fast_retries,
    json_error,
    reshaped,
)

KEY = "sk-ant-test-0123456789-TESTONLY"

ERRORS = {
    "429": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute limit.",
    ),
    "529": (529, "overloaded_error", "Overloaded"),
    "503": (503, "api_error", "Service unavailable"),
    "400": (400, "invalid_request_error", "max_tokens: must be less than or equal to 8192"),
    "both": (
        400,
        "invalid_request_error",
        "`temperature` and `top_p` cannot both be specified for this model.",
    ),
}

# Messages of the wrong shape, each with the field its error names (see servers.reshaped).
MALFORMED = {
    "content-string": (("content",), "Yes.", "content: expected a list of content blocks"),
    "content-object": (("content",), {"type": "text", "text": "Yes."}, "content: expected a list"),
    "block-string": (("content", 0), "Yes.", "content[0]: expected a content block object"),
    "block-no-type": (("content", 0, "type"), DELETE, "content[0].type: expected a string"),
    "text-list": (("content", 0, "text"), ["Yes."], "content[0].text: expected a string"),
    "no-content": (("content",), DELETE, "content: expected a list"),
    "model-number": (("model",), 42, "model: expected a string, got int 42"),
    "stop-reason-number": (("stop_reason",), 3, "stop_reason: expected a string or null"),
    "usage-string": (("usage", "input_tokens"), "21", "usage.input_tokens"),
    "usage-null": (("usage", "output_tokens"), None, "usage.output_tokens"),
    "cache-negative": (("usage", "cache_read_input_tokens"), -4, "usage.cache_read_input_tokens"),
    "no-usage": (("usage",), DELETE, "usage: expected an object"),
    "body-list": ((), ["Yes."], "malformed response"),
}


def messages_api(outcome: str, seen: Seen) -> web.Response:
    """Anthropic's POST /v1/messages: a message, or an error body with its headers."""
    headers = {
        "request-id": "req_test",
        "anthropic-ratelimit-requests-remaining": "99",
        "anthropic-ratelimit-requests-reset": "2030-01-01T00:00:00Z",
    }
    if outcome == "401":  # the credentials echoed back
        credentials = seen.headers.get("x-api-key") or seen.headers.get("authorization")
        error = {"type": "authentication_error", "message": f"invalid x-api-key: {credentials}"}
        return json_error(401, {"type": "error", "error": error}, headers)
    if outcome == "ok" and "temperature" in seen.body and "top_p" in seen.body:
        outcome = "both"  # as current models do
    if outcome in ERRORS:
        status, kind, message = ERRORS[outcome]
        if status == 429:
            headers["retry-after"] = "0.4"
        body = {"type": "error", "error": {"type": kind, "message": message}}
        return json_error(status, body, headers)
    if outcome == "not-json":  # a proxy's error page with status 200
        return web.Response(text="<html>Bad gateway</html>", content_type="text/html")
    if outcome == "torn":  # a body cut short
        return web.Response(text='{"content": [', content_type="application/json")
    reshapes = {name: (path, value) for name, (path, value, _) in MALFORMED.items()}
    body = reshaped(anthropic_message(seen.body), outcome, reshapes)
    return web.json_response(body, headers=headers)


def config_for(
    tmp_path, server: Loopback, *, prompts=3, attempts=3, sampling="temperatures = [0.0]"
) -> Path:
    body = f"""{fast_retries(attempts)}
[[models]]
name = "claude"
provider = "anthropic"
model = "claude-test"
{sampling}
max_tokens = 64
[models.options]
base_url = "{server.base_url}"
"""
    return write_config(tmp_path, body, prompts=prompts)


def run(tmp_path, run_cli, monkeypatch, script=(), prompts=1, attempts=3):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with Loopback(messages_api, script) as server:
        code, out, err = run_cli(
            "run", config_for(tmp_path, server, prompts=prompts, attempts=attempts)
        )
    return code, results(tmp_path / "out" / "ledger.jsonl"), server.seen, out + err


def test_answer_usage_and_parameters_sent_are_recorded(tmp_path, run_cli, monkeypatch):
    code, (record,), seen, _ = run(tmp_path, run_cli, monkeypatch)
    assert code == 0
    assert record["status"] == "ok" and record["full_response"].startswith("Answer to: ")
    assert record["model"] == "claude-test-20251001" and record["finish_reason"] == "stop"
    assert record["tokens"] == {"input": 21, "output": 9, "total": 30, "cache_read": 4}
    assert record["sampling_params"] == {
        "temperature": 0.0,
        "top_p": None,
        "max_tokens": 64,
        "seed": None,
        "stop": [],
    }
    (request,) = seen
    assert request.path == "/v1/messages"
    credentials = (request.headers.get("x-api-key"), request.headers.get("authorization"))
    assert KEY in credentials or f"Bearer {KEY}" in credentials
    assert request.headers.get("x-stainless-retry-count") == "0"
    assert request.body["model"] == "claude-test" and request.body["temperature"] == 0.0
    assert "seed" not in request.body and "top_p" not in request.body


def test_429_waits_the_retry_after_then_succeeds(tmp_path, run_cli, monkeypatch):
    code, (record,), seen, _ = run(tmp_path, run_cli, monkeypatch, script=["429"])
    assert code == 0 and record["status"] == "ok" and record["retry_count"] == 1
    assert len(seen) == 2 and seen[1].at - seen[0].at >= 0.4


def test_overloaded_and_unavailable_are_retried(tmp_path, run_cli, monkeypatch):
    code, (record,), seen, _ = run(tmp_path, run_cli, monkeypatch, script=["529", "503"])
    assert code == 0 and record["retry_count"] == 2 and len(seen) == 3


def test_a_stalled_server_times_out_and_is_retried(tmp_path, run_cli, monkeypatch):
    code, (record,), seen, _ = run(tmp_path, run_cli, monkeypatch, script=["stall"])
    assert code == 0 and record["status"] == "ok" and record["retry_count"] == 1
    assert seen[1].at - seen[0].at >= 1.0


def test_400_is_fatal_with_the_api_message_and_no_retry(tmp_path, run_cli, monkeypatch):
    code, (record,), seen, _ = run(tmp_path, run_cli, monkeypatch, script=["400"])
    assert code == 1 and len(seen) == 1
    assert record["status"] == "error" and record["retry_count"] == 0
    assert record["error"] == {
        "type": "FatalError",
        "message": "invalid_request_error: max_tokens: must be less than or equal to 8192",
        "retryable": False,
        "status": 400,
        "retry_after": None,
    }


def test_retries_used_up_record_the_last_error(tmp_path, run_cli, monkeypatch):
    code, (record,), seen, _ = run(
        tmp_path, run_cli, monkeypatch, script=["529", "529"], attempts=2
    )
    assert code == 1 and len(seen) == 2 and record["retry_count"] == 1
    assert record["error"]["type"] == "ServerError" and record["error"]["status"] == 529
    assert record["error"]["message"] == "overloaded_error: Overloaded"


def test_temperature_or_top_p_is_sent_never_both_and_the_record_says_which(
    tmp_path, run_cli, monkeypatch
):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with Loopback(messages_api) as server:
        sampling = "temperatures = [0.0, 1.0]\ntop_p = 0.9"
        code, _, _ = run_cli("run", config_for(tmp_path, server, prompts=1, sampling=sampling))
    assert code == 0
    sent = {
        r["sampling_params"]["temperature"]: r["sampling_params"]
        for r in results(tmp_path / "out" / "ledger.jsonl")
    }
    assert sent[0.0]["top_p"] is None and sent[None]["top_p"] == 0.9
    received = {(s.body.get("temperature"), s.body.get("top_p")) for s in server.seen}
    assert received == {(0.0, None), (None, 0.9)}


async def _sdk_error(base_url: str) -> anthropic.APIStatusError:
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0)
    try:
        await client.messages.create(
            model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    except anthropic.APIStatusError as exc:
        return exc
    finally:
        await client.close()
    raise AssertionError("the server answered")


def test_a_429_from_an_sdk_without_api_message_is_still_rate_limited():
    with Loopback(messages_api, ["429"]) as server:
        exc = anyio.run(_sdk_error, server.base_url)
    for name in ("api_message", "type"):  # absent in anthropic 2.0 (api_message), 0.x (both)
        exc.__dict__.pop(name, None)
    error = status_error(exc)
    assert isinstance(error, RateLimited) and error.retry_after == 0.4
    assert error.message == (
        "rate_limit_error: Number of request tokens has exceeded your per-minute limit."
    )


async def _generate(base_url: str) -> None:
    provider = AnthropicProvider("claude-test", AnthropicOptions(api_key=KEY, base_url=base_url))
    sampling = SamplingParams(0.0, 1.0, 8, None)
    try:
        await provider.generate(Request("r", "claude-test", (Message("user", "hi"),), sampling))
    finally:
        await provider.aclose()


@pytest.mark.parametrize("name", [*MALFORMED, "not-json", "torn"])
def test_a_message_of_the_wrong_shape_is_a_malformed_response_naming_its_field(name):
    script = [f"malformed:{name}" if name in MALFORMED else name]
    with Loopback(messages_api, script) as server, pytest.raises(MalformedResponse) as caught:
        anyio.run(_generate, server.base_url)
    named = MALFORMED[name][2] if name in MALFORMED else "malformed response"
    assert named in caught.value.message and caught.value.retryable


def test_a_malformed_message_fails_its_job_never_ok_and_the_run_goes_on(
    tmp_path, run_cli, monkeypatch
):
    script = ["malformed:content-string", "malformed:model-number"]
    code, records, _, _ = run(tmp_path, run_cli, monkeypatch, script, prompts=3, attempts=1)
    failed = [r for r in records if r["status"] == "error"]
    assert code == 1 and len(records) == 3 and len(failed) == 2
    assert {r["error"]["type"] for r in failed} == {"MalformedResponse"}
    messages = sorted(r["error"]["message"] for r in failed)
    assert "content: expected a list of content blocks" in messages[0]
    assert "model: expected a string, got int 42" in messages[1]


def test_a_malformed_message_then_a_good_one_is_ok_after_a_retry(tmp_path, run_cli, monkeypatch):
    code, (record,), seen, _ = run(tmp_path, run_cli, monkeypatch, ["malformed:usage-string"])
    assert code == 0 and len(seen) == 2 and record["status"] == "ok"
    assert record["retry_count"] == 1 and record["tokens"]["input"] == 21
