"""API keys reach the servers that need them and no file, log line or table the harness writes."""

from __future__ import annotations

from tests.conftest import write_config
from tests.providers.servers import Loopback
from tests.providers.test_anthropic import messages_api
from tests.providers.test_gemini import generate_content
from tests.providers.test_openai import openai_api

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
        body = f"""
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
api_key = "${{TEST_OPENAI_KEY}}"
"""
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
