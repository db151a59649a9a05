"""`doctor --probe` and the `run` preflight: one real request per model, against loopback servers
that speak each provider's protocol, a closed port, and a server that knows only one model."""

from __future__ import annotations

import socket

from aiohttp import web

from tests.conftest import results, write_config
from tests.harness.providers.servers import Loopback, Seen, json_error
from tests.harness.providers.test_anthropic import messages_api
from tests.harness.providers.test_gemini import generate_content
from tests.harness.providers.test_openai import openai_api

SERVED = "qwen-test"


def known_model_only(outcome: str, seen: Seen) -> web.Response:
    """OpenAI's answer to a model it does not serve: 404 `model_not_found`."""
    model = seen.body.get("model")
    if model != SERVED:
        error = {
            "message": f"The model `{model}` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
        return json_error(404, {"error": error})
    return openai_api(outcome, seen)


def without_logprobs(outcome: str, seen: Seen) -> web.Response:
    """An answer with no `logprobs` in it, as from a server that ignores the request for them."""
    body = {
        "model": SERVED,
        "choices": [{"message": {"content": "OK"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1},
    }
    return web.json_response(body)


def openai_model(name: str, base_url: str, *, model: str = SERVED, logprobs: int = 2) -> str:
    return f"""
[[models]]
name = "{name}"
provider = "openai"
model = "{model}"
temperatures = [0.7]
[models.options]
base_url = "{base_url}/v1"
api_key_env = ""
top_logprobs = {logprobs}
"""


def closed_port() -> str:
    """The URL of a port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def detail(out: str, area: str) -> str:
    """The verdict and detail of the doctor's row for `area`, wrapped lines joined."""
    rows: list[list[str]] = []
    for line in out.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) != 3:
            continue
        if cells[0]:
            rows.append(cells)
        elif rows:
            rows[-1] = [rows[-1][0], rows[-1][1] + cells[1], f"{rows[-1][2]} {cells[2]}"]
    return next(f"{verdict} {text}" for check, verdict, text in rows if check.startswith(area))


def test_doctor_probes_a_live_server_a_closed_port_and_a_wrong_model(tmp_path, run_cli):
    with Loopback(known_model_only) as server:
        body = (
            openai_model("live", server.base_url)
            + openai_model("stopped", closed_port())
            + openai_model("typo", server.base_url, model="qwen-tset")
        )
        code, out, _ = run_cli("doctor", write_config(tmp_path, body), "--probe")
    assert code == 2
    live = detail(out, "models[0] live probe")
    assert live.startswith("ok answered in") and 'model "served-model"' in live
    assert "logprobs with 2 alternative(s) (asked 2)" in live
    stopped = detail(out, "models[1] stopped probe")
    assert stopped.startswith("FAIL ConnectionFailed: cannot reach http://127.0.0.1:")
    typo = detail(out, "models[2] typo probe")
    assert typo.startswith('FAIL FatalError (404): no model "qwen-tset" there')
    assert "The model `qwen-tset` does not exist" in typo
    (probe,) = [seen for seen in server.seen if seen.body["model"] == SERVED]
    assert probe.body["max_tokens"] == 1 and probe.body["logprobs"] is True
    assert not (tmp_path / "out").exists()


def test_doctor_probe_passes_for_anthropic_and_gemini_servers(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-probe-TESTONLY")
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-probe-TESTONLY")
    with Loopback(messages_api) as claude, Loopback(generate_content) as gemini:
        body = f"""
[[models]]
name = "claude"
provider = "anthropic"
model = "claude-test"
[models.options]
base_url = "{claude.base_url}"

[[models]]
name = "gemini"
provider = "gemini"
model = "gemini-test"
[models.options]
base_url = "{gemini.base_url}"
top_logprobs = 2
"""
        code, out, _ = run_cli("doctor", write_config(tmp_path, body), "--probe")
    assert code == 0, out
    assert detail(out, "models[0] claude probe").startswith("ok answered in")
    gemini_row = detail(out, "models[1] gemini probe")
    assert 'model "gemini-test-001"' in gemini_row and "2 alternative(s)" in gemini_row
    assert claude.seen[0].body["max_tokens"] == 1
    assert gemini.seen[0].body["generationConfig"]["maxOutputTokens"] == 1


def test_a_refused_key_a_stall_and_missing_logprobs_fail_the_probe(tmp_path, run_cli, monkeypatch):
    key = "sk-probe-refused-TESTONLY"
    monkeypatch.setenv("PROBE_KEY", key)
    with (
        Loopback(openai_api, ["401"]) as refusing,
        Loopback(openai_api, ["stall"]) as stalled,
        Loopback(without_logprobs) as bare,
    ):
        body = (
            openai_model("refused", refusing.base_url).replace(
                'api_key_env = ""', 'api_key_env = "PROBE_KEY"'
            )
            + openai_model("stalled", stalled.base_url)
            + openai_model("bare", bare.base_url)
        )
        config = write_config(tmp_path, body)
        code, out, err = run_cli("doctor", config, "--probe", "--probe-timeout", "0.5")
    assert code == 2
    assert detail(out, "models[0] refused probe").startswith(
        "FAIL FatalError (401): the key was refused"
    )
    assert key not in out + err  # the server echoed the key back
    assert detail(out, "models[1] stalled probe") == ("FAIL AttemptTimeout: no answer within 0.5 s")
    assert "top_logprobs = 2 asked but no logprobs came back" in detail(out, "models[2] bare probe")


def test_local_models_are_not_probed_unless_asked(tmp_path, run_cli):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    body = f"""
[[models]]
name = "tiny"
provider = "transformers"
[models.options]
path = "{folder}"
"""
    _, out, _ = run_cli("doctor", write_config(tmp_path, body), "--probe")
    row = detail(out, "models[0] tiny probe")
    assert row.startswith("skip not probed: a local model loads for minutes")
    assert "--probe-local" in row


def test_a_missing_key_for_a_loopback_url_says_how_to_send_none(tmp_path, run_cli, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    body = openai_model("local", "http://127.0.0.1:8000").replace('api_key_env = ""\n', "")
    body += openai_model("remote", "https://api.example.com").replace('api_key_env = ""\n', "")
    code, _, err = run_cli("run", write_config(tmp_path, body))
    local, remote = err.splitlines()
    assert code == 2
    assert local.endswith(
        'no API key: set the environment variable OPENAI_API_KEY, or set api_key_env = "" '
        "(no key) if http://127.0.0.1:8000/v1 takes none"
    )
    assert remote.endswith("no API key: set the environment variable OPENAI_API_KEY")


PREFLIGHT = "\n[preflight]\nprobe = true\ntimeout = 5\n"


def test_run_preflight_failure_exits_2_with_a_line_per_model_and_writes_nothing(tmp_path, run_cli):
    with Loopback(known_model_only) as server:
        body = (
            PREFLIGHT
            + openai_model("live", server.base_url)
            + openai_model("stopped", closed_port())
            + openai_model("typo", server.base_url, model="qwen-tset")
        )
        code, _, err = run_cli("run", write_config(tmp_path, body))
    assert code == 2
    stopped, typo = err.splitlines()
    assert "models[1] (stopped): probe: ConnectionFailed: cannot reach" in stopped
    assert 'models[2] (typo): probe: FatalError (404): no model "qwen-tset"' in typo
    assert len(server.seen) == 2  # the two probes, no job
    assert not (tmp_path / "out").exists()


def test_run_preflight_success_says_so_and_runs(tmp_path, run_cli):
    with Loopback(openai_api) as server:
        body = PREFLIGHT + openai_model("live", server.base_url)
        code, out, _ = run_cli("run", write_config(tmp_path, body, prompts=2))
    assert code == 0
    assert "probe live: answered in" in out
    assert [seen.body["max_tokens"] for seen in server.seen] == [1, 1024, 1024]
    assert len(results(tmp_path / "out" / "ledger.jsonl")) == 2


def test_without_preflight_run_sends_no_probe(tmp_path, run_cli):
    with Loopback(openai_api) as server:
        code, _, _ = run_cli("run", write_config(tmp_path, openai_model("live", server.base_url)))
    assert code == 0 and [seen.body["max_tokens"] for seen in server.seen] == [1024] * 6


def no_such_path(outcome: str, seen: Seen) -> web.Response:
    """What vLLM's server (FastAPI) answers for a path it does not have."""
    return json_error(404, {"detail": "Not Found"})


def test_a_base_url_without_its_path_shows_the_servers_answer(tmp_path, run_cli):
    with Loopback(no_such_path) as server:
        body = openai_model("nov1", server.base_url).replace("/v1", "")
        code, out, _ = run_cli("doctor", write_config(tmp_path, body), "--probe")
    assert code == 2
    row = detail(out, "models[0] nov1 probe")
    assert 'no model "qwen-test" there (or a wrong base_url path): {"detail": "Not Found"}' in row
    assert server.seen[0].path == "/chat/completions"
