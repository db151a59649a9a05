"""Live API calls, for a person with keys to run by hand: `HARNESS_LIVE=1 pytest -m live`.

Skipped unless HARNESS_LIVE=1 and the provider's key is set; CI never has either.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import results, write_config

LIVE = [
    ("anthropic", "ANTHROPIC_API_KEY", "claude-haiku-4-5"),
    ("gemini", "GEMINI_API_KEY", "gemini-2.5-flash"),
    ("openai", "OPENAI_API_KEY", "gpt-4o-mini"),
]


@pytest.mark.live
@pytest.mark.parametrize(("provider", "key_env", "model"), LIVE)
def test_one_real_answer_is_recorded(tmp_path, run_cli, provider, key_env, model):
    if os.environ.get("HARNESS_LIVE") != "1" or not os.environ.get(key_env):
        pytest.skip(f"set HARNESS_LIVE=1 and {key_env} to call the real {provider} API")
    body = f"""
[[models]]
name = "live"
provider = "{provider}"
model = "{model}"
temperatures = [0.0]
max_tokens = 32
"""
    code, _, err = run_cli("run", write_config(tmp_path, body, prompts=1))
    (record,) = results(tmp_path / "out" / "ledger.jsonl")
    assert code == 0, err
    assert record["full_response"] and record["tokens"]["output"] > 0
