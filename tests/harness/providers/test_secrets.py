"""API keys reach the servers that need them and no file, log line or table the harness writes."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.conftest import ledger_lines, results, write_config
from tests.harness.providers.servers import Loopback, Seen
from tests.harness.providers.test_anthropic import messages_api
from tests.harness.providers.test_gemini import generate_content
from tests.harness.providers.test_openai import openai_api

KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-secret-a1-TESTONLY",
    "GEMINI_API_KEY": "AIza-secret-g2-TESTONLY",
    "TEST_OPENAI_KEY": "sk-secret-o3-TESTONLY",
}


def test_no_api_key_appears_in_any_output(tmp_path, run_cli, monkeypatch):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    with (
        Loopback(messages_api, ["429", "400"]) as claude,
        Loopback(generate_content, ["503", "400"]) as gemini,
        Loopback(openai_api, ["429", "400"]) as local,
    ):
        body = models_on(claude, gemini, local) + 'api_key = "${TEST_OPENAI_KEY}"\n'
        config = write_config(tmp_path, body, prompts=3)
        outputs = [run_cli("run", config), run_cli("rerun", config), run_cli("doctor", config)]
        outputs.append(run_cli("status", tmp_path / "out"))
    assert outputs[0][0] == 1  # the scripted 400s failed for good
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    written = b"".join(p.read_bytes() for p in files)
    printed = "".join(out + err for _, out, err in outputs)
    assert b'"status":"error"' in written and b'"status":"ok"' in written
    for key in KEYS.values():
        assert key.encode() not in written
        assert key not in printed
    assert any(key in str(seen.headers) for key in KEYS.values() for seen in claude.seen)


# Keys long enough that rich would fold them across lines in a table or a log line, with
# characters that change when URL-encoded.
ECHOED = {
    "ANTHROPIC_API_KEY": "sk-ant-echo-" + "a1b2c3d4" * 22 + "-TESTONLY",
    "GEMINI_API_KEY": "AIza/echo+key=" + "e5f6g7h8" * 22 + "-TESTONLY",
    "TEST_OPENAI_KEY": "sk-echo-" + "i9j0k1l2" * 22 + "-TESTONLY",
}


def leaked(key: str, text: str) -> bool:
    """Whether any 12-character piece of `key` (or of its URL-encoded form) is in `text`."""
    forms = (key, quote(key, safe=""))
    return any(form[i : i + 12] in text for form in forms for i in range(0, len(form) - 11, 4))


def models_on(claude: Loopback, gemini: Loopback, local: Loopback) -> str:
    return f"""
[retry]
max_attempts = 2
initial_wait = 0.01
max_wait = 0.01

[[models]]
name = "claude"
provider = "anthropic"
[models.options]
base_url = "{claude.base_url}"

[[models]]
name = "gemini"
provider = "gemini"
[models.options]
base_url = "{gemini.base_url}"

[[models]]
name = "local"
provider = "openai"
[models.options]
base_url = "{local.base_url}/v1"
api_key_env = "TEST_OPENAI_KEY"
"""


def test_keys_echoed_in_error_bodies_reach_no_output(tmp_path, run_cli, monkeypatch):
    for name, value in ECHOED.items():
        monkeypatch.setenv(name, value)
    with (
        Loopback(messages_api, ["401"] * 3) as claude,
        Loopback(generate_content, ["401"] * 3) as gemini,
        Loopback(openai_api, ["401"] * 3) as local,
    ):
        config = write_config(tmp_path, models_on(claude, gemini, local), prompts=3)
        outputs = [run_cli("run", config), run_cli("status", tmp_path / "out")]
    assert outputs[0][0] == 1
    ledger = tmp_path / "out" / "ledger.jsonl"
    errors = {r["variant"].split("@")[0]: r["error"]["message"] for r in results(ledger)}
    assert errors["claude"].startswith("authentication_error: invalid x-api-key: ")
    assert errors["gemini"] == "UNAUTHENTICATED: API key not valid: [redacted]"
    assert errors["local"] == "invalid_request_error: Incorrect API key provided: Bearer [redacted]"
    assert errors["claude"].endswith("[redacted]")  # the SDK sends x-api-key or a Bearer token
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    written = b"".join(p.read_bytes() for p in files).decode()
    printed = "".join(out + err for _, out, err in outputs)
    for key in ECHOED.values():
        assert not leaked(key, written) and not leaked(key, printed)


def test_a_key_in_a_bad_base_url_is_not_printed(tmp_path, run_cli, monkeypatch):
    key = ECHOED["GEMINI_API_KEY"]
    monkeypatch.setenv("TEST_GEMINI_KEY", key)
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-other-TESTONLY")
    body = """
[[models]]
name = "gemini"
provider = "gemini"
[models.options]
base_url = "localhost:9/v1beta?key=${TEST_GEMINI_KEY}"
"""
    config = write_config(tmp_path, body, prompts=1)
    code, out, err = run_cli("run", config)
    assert code == 2 and 'base_url "localhost:9/v1beta?key=[redacted]"' in err
    doctor = run_cli("doctor", config)
    assert doctor[0] == 2 and "[redacted]" in doctor[1]
    assert not leaked(key, out + err + doctor[1] + doctor[2])
    assert not (tmp_path / "out").exists()


def test_log_lines_are_scrubbed(tmp_path, run_cli, capsys, monkeypatch):
    key = ECHOED["ANTHROPIC_API_KEY"]
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    body = '[[models]]\nname = "claude"\nprovider = "anthropic"\n'
    run_cli("doctor", write_config(tmp_path, body, prompts=1))  # sets up the log handler
    logging.getLogger("harness.lane").warning("claude: the server said %s", f"Bearer {key}")
    out, err = capsys.readouterr()
    assert "claude: the server said Bearer [redacted]" in out
    assert not leaked(key, out + err)


def test_a_key_cut_by_an_error_excerpt_does_not_leak(tmp_path, run_cli, monkeypatch):
    key = "sk-echo-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-TESTONLY"
    monkeypatch.setenv("TEST_OPENAI_KEY", key)

    def echo_at_the_cut(outcome: str, seen: Seen) -> web.Response:
        auth = seen.headers["Authorization"]  # a plain-text body, cut at 500 characters
        return web.Response(status=401, text="e" * (500 - len(auth) + 1) + auth)

    with Loopback(echo_at_the_cut) as server:
        body = f"""
[[models]]
name = "local"
provider = "openai"
[models.options]
base_url = "{server.base_url}/v1"
api_key_env = "TEST_OPENAI_KEY"
"""
        code, out, err = run_cli("run", write_config(tmp_path, body, prompts=1))
    assert code == 1
    written = (tmp_path / "out" / "ledger.jsonl").read_text()
    assert "FatalError" in written
    assert not leaked(key, written) and not leaked(key, out + err)


# Values whose variables' names say nothing of secrets, written into URLs: a query value, and a
# password and path segment; a key typed literally into a URL's query.
QUERY_KEY = "qk-Query0Secret0a1b2c3d4e5f6-TESTONLY"
PATH_TOKEN = "pt-Path0Secret0g7h8i9j0k1l2-TESTONLY"
LITERAL_SIG = "sig-Literal0Secret0m3n4o5p6-TESTONLY"


def recording(requests: list[tuple[str, str]]) -> Callable[[web.Application], None]:
    """Routes answering every POST as OpenAI does, keeping each one's path, query and
    Authorization header (the Loopback's own record has no query)."""

    async def answer(request: web.Request) -> web.Response:
        requests.append((request.path_qs, request.headers.get("Authorization", "")))
        seen = Seen(request.path, await request.json(), CIMultiDict(request.headers), 0.0)
        return openai_api("ok", seen)

    return lambda app: app.router.add_post("/{tail:.*}", answer)


def test_values_substituted_into_urls_reach_the_server_and_no_output(
    tmp_path, run_cli, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY_2", QUERY_KEY)
    monkeypatch.setenv("TOKENVAL", PATH_TOKEN)
    requests: list[tuple[str, str]] = []
    with Loopback(openai_api, routes=recording(requests)) as server:
        host = server.base_url.removeprefix("http://")
        body = f"""
[[models]]
name = "query"
provider = "openai"
[models.options]
base_url = "{server.base_url}/v1?key=${{OPENAI_API_KEY_2}}"
api_key_env = ""

[[models]]
name = "userinfo"
provider = "openai"
[models.options]
base_url = "http://user:${{TOKENVAL}}@{host}/${{TOKENVAL}}/v1"
api_key_env = ""

[[models]]
name = "literal"
provider = "openai"
[models.options]
base_url = "{server.base_url}/v1?sig={LITERAL_SIG}&api-version=2024-02-01"
api_key_env = ""
"""
        config = write_config(tmp_path, body, prompts=2)
        out = tmp_path / "out"
        outputs = [
            run_cli("run", config),
            run_cli("status", out),
            run_cli("plan", config),
            run_cli("doctor", config, "--probe"),
            run_cli("export", out, "--format", "jsonl", "--to", tmp_path / "out" / "all.jsonl"),
            run_cli("report", out, "--out", out / "report.html"),
        ]
    assert [code for code, _, _ in outputs] == [0] * len(outputs), outputs
    basic = "Basic " + base64.b64encode(f"user:{PATH_TOKEN}".encode()).decode()
    assert (f"/v1/chat/completions?key={QUERY_KEY}", "") in requests
    assert (f"/{PATH_TOKEN}/v1/chat/completions", basic) in requests
    assert (f"/v1/chat/completions?sig={LITERAL_SIG}&api-version=2024-02-01", "") in requests
    run_line = ledger_lines(out / "ledger.jsonl")[0]
    urls = [m["options"]["base_url"] for m in run_line["config_resolved"]["models"]]
    assert urls == [
        f"{server.base_url}/v1?key=[redacted]",
        f"http://[redacted]@{host}/[redacted]/v1",
        f"{server.base_url}/v1?sig=[redacted]&api-version=[redacted]",
    ]
    # every file, the view's snapshots (binary) too: as bytes, one character each
    written = "".join(p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file())
    printed = "".join(o + e for _, o, e in outputs)
    assert "report.html" in printed and "[redacted]" in written
    for secret in (QUERY_KEY, PATH_TOKEN, LITERAL_SIG):
        assert not leaked(secret, written) and not leaked(secret, printed)


def test_a_base_url_that_cannot_be_parsed_is_one_redacted_line(tmp_path, run_cli):
    body = f"""
[[models]]
name = "local"
provider = "openai"
[models.options]
base_url = "http://[not-an-address/v1?sig={LITERAL_SIG}"
api_key_env = ""
"""
    config = write_config(tmp_path, body, prompts=1)
    code, out, err = run_cli("run", config)
    assert code == 2 and err.endswith(
        'models[0] (local): base_url "http://[not-an-address/v1?sig=[redacted]" is not an http(s) '
        "URL\n"
    )
    doctor = run_cli("doctor", config)
    assert doctor[0] == 2 and not leaked(LITERAL_SIG, out + err + doctor[1] + doctor[2])
    assert not (tmp_path / "out").exists()


BAD_URLS = [
    # (provider, base_url, api_key_env, what the line says)
    ("openai", "http://127.0.0.1:99999/v1", "", "has a port out of range 0-65535"),
    ("openai", "http://:80/v1", "", "has no host"),
    ("openai", "http://u:p4ss/w0rd@host/v1", "", "has a port that is not a number"),
    ("openai", "http://ho st/v1", "", "holds a space or a control character"),
    ("openai", "http://u:p4ssw0rd@host/v1", "TEST_OPENAI_KEY", "holds a user name or password"),
    ("anthropic", "http://127.0.0.1:99999", "TEST_OPENAI_KEY", "out of range 0-65535"),
    ("anthropic", "http://u:p4ss/w0rd@host", "TEST_OPENAI_KEY", "has a port that is not a number"),
    ("anthropic", "http://u:p4ssw0rd@host", "TEST_OPENAI_KEY", "holds a user name or password"),
    ("gemini", "http://:80", "TEST_OPENAI_KEY", "has no host"),
    ("gemini", "http://u:p4ss/w0rd@host", "TEST_OPENAI_KEY", "has a port that is not a number"),
]


@pytest.mark.parametrize(("provider", "url", "key_env", "says"), BAD_URLS)
def test_a_base_url_the_http_client_would_refuse_is_one_line_before_anything_is_written(
    tmp_path, run_cli, monkeypatch, provider, url, key_env, says
):
    monkeypatch.setenv("TEST_OPENAI_KEY", KEYS["TEST_OPENAI_KEY"])
    body = f"""
[[models]]
name = "m"
provider = "{provider}"
[models.options]
base_url = "{url}"
api_key_env = "{key_env}"
"""
    config = write_config(tmp_path, body, prompts=1)
    for verb in ("run", "plan"):
        code, out, err = run_cli(verb, config)
        line = f"error: {config}: models[0] (m): base_url "
        assert code == 2 and err.startswith(line) and says in err and len(err.splitlines()) == 1
        assert "p4ss" not in out + err and "w0rd" not in out + err
    code, out, err = run_cli("doctor", config)
    assert code == 2 and "FAIL" in out and says in out and "p4ss" not in out + err
    assert not (tmp_path / "out").exists()


def test_short_keys_echoed_url_encoded_or_in_a_path_reach_no_output(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("SK", "ab12xyz")  # both under 8 characters: no real key, still not shown
    monkeypatch.setenv("SK2", "Zk9_w2q")

    async def echo(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        text = f"k={quote(auth)} p={quote_plus(auth)} raw={request.raw_path}"
        return web.json_response({"error": {"message": text}}, status=400)

    with Loopback(openai_api, routes=lambda app: app.router.add_post("/{t:.*}", echo)) as server:
        body = f"""
[[models]]
name = "local"
provider = "openai"
[models.options]
base_url = "{server.base_url}/v1?key=${{SK}}"
api_key = "${{SK2}}"
"""
        config = write_config(tmp_path, body, prompts=1)
        out = tmp_path / "out"
        outputs = [run_cli("run", config), run_cli("export", out, "--format", "jsonl")]
    assert outputs[0][0] == 1
    message = results(out / "ledger.jsonl")[0]["error"]["message"]
    assert message == (
        "error: k=Bearer%20[redacted] p=Bearer+[redacted] raw=/v1/chat/completions?key=[redacted]"
    )
    # every file, the view's snapshots (binary) too: as bytes, one character each
    written = "".join(p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file())
    printed = "".join(o + e for _, o, e in outputs)
    assert "k=Bearer%20[redacted]" in written + printed
    for secret in ("ab12xyz", "Zk9_w2q"):
        assert secret not in written and secret not in printed
