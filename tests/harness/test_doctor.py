"""`doctor`: a report of what a run needs, naming what is missing and never showing a key."""

from __future__ import annotations

from tests.conftest import REPO

PILOT = REPO / "configs" / "pilot.toml"


def test_pilot_without_keys_fails_naming_the_variables_to_set(run_cli, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    code, out, _ = run_cli("doctor", PILOT)
    assert code == 2
    assert "48 prompts, 5 categories, 22 probes" in out
    assert "ANTHROPIC_API_KEY" in out and "GEMINI_API_KEY" in out
    assert "FAIL" in out


def test_pilot_with_keys_passes_and_shows_no_key(run_cli, monkeypatch):
    secrets = ("sk-ant-doctor-TESTONLY-1", "AIza-doctor-TESTONLY-2")
    monkeypatch.setenv("ANTHROPIC_API_KEY", secrets[0])
    monkeypatch.setenv("GEMINI_API_KEY", secrets[1])
    code, out, err = run_cli("doctor", PILOT)
    assert code == 0 and "FAIL" not in out
    assert "key found in $ANTHROPIC_API_KEY" in out
    assert not any(secret in out + err for secret in secrets)


def test_a_broken_config_is_a_failed_check(tmp_path, run_cli):
    config = tmp_path / "bad.toml"
    config.write_text("prompts = 3\n")
    code, out, _ = run_cli("doctor", config)
    assert code == 2 and "prompts: expected a string" in out
