"""`init` writes a config and prompts that run as written; `convert` turns the legacy script's JSON
config into a TOML config that runs, saying each choice and refusing what it cannot map."""

from __future__ import annotations

import json
import tomllib

import orjson
import pytest

from tests.conftest import results, write_prompts

LEGACY = {
    "prompts_file": "data/prompts.json",
    "output_file": "out/pilot_results.json",
    "seed": 7,
    "max_retries": 3,
    "retry_delay": 0.0,
    "timeout": 5,
    "requests_per_minute": 6000,
    "temperature": 0.7,
    "max_tokens": 64,
    "top_logprobs": 3,
    "models": [
        {"name": "mock-a", "type": "mock", "model": "sim-a", "temperature": 0.0},
        {"name": "mock-b", "type": "mock", "model": "sim-b", "api_key": "sk-secret-123456"},
    ],
}


def test_init_writes_a_config_that_runs_scores_and_shows_stats(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("init", "proj")
    assert (code, err) == (0, "")
    assert "run proj/config.toml" in out
    assert len((tmp_path / "proj" / "prompts.jsonl").read_text().splitlines()) == 5
    monkeypatch.chdir(tmp_path / "..")  # relative paths resolve against the config's folder
    config = tmp_path / "proj" / "config.toml"
    assert run_cli("run", config)[0] == 0
    ledger = tmp_path / "proj" / "results" / "ledger.jsonl"
    assert len(results(ledger)) == 5 * 2  # prompts x temperatures
    assert run_cli("score", config)[0] == 0
    code, out, err = run_cli("stats", tmp_path / "proj" / "results", "--scorer", "existence")
    assert code == 0, err
    assert "claims_exists" in out


def test_init_leaves_files_that_are_there_untouched(tmp_path, run_cli):
    (tmp_path / "config.toml").write_text("mine")
    code, out, err = run_cli("init", tmp_path)
    assert code == 2 and out == ""
    assert "config.toml: already there; nothing written" in err
    assert (tmp_path / "config.toml").read_text() == "mine"
    assert not (tmp_path / "prompts.jsonl").exists()


def _legacy(tmp_path, **changes):
    (tmp_path / "data").mkdir(exist_ok=True)
    write_prompts(tmp_path / "data" / "prompts.json", 4)
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps({**LEGACY, **changes}))
    return path


def test_a_converted_legacy_config_runs_and_exports_the_legacy_results(
    tmp_path, run_cli, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    legacy = _legacy(tmp_path)
    code, out, err = run_cli("convert", "legacy.json")
    assert (code, err) == (0, "")
    assert "max_retries = 3 (retries after the first try) is max_attempts = 4" in out
    assert "each model's own limit (2 model(s) run at once)" in out
    assert "mock-b" not in out or "sk-secret" not in out
    text = (tmp_path / "legacy.toml").read_text()
    assert "sk-secret" not in text
    config = tomllib.loads(text)
    assert config["retry"]["max_attempts"] == 4
    assert [m["requests_per_minute"] for m in config["models"]] == [6000, 6000]
    assert config["models"][0]["temperatures"] == [0.0]
    assert config["defaults"]["temperatures"] == [0.7]
    assert config["models"][0]["options"] == {"top_logprobs": 3}
    assert legacy.exists()
    assert run_cli("run", "legacy.toml")[0] == 0
    records = results(tmp_path / "out" / "pilot_results" / "ledger.jsonl")
    assert {r["sampling_params"]["temperature"] for r in records} == {0.0, 0.7}
    export = ("export", "out/pilot_results", "--format", "pilot-json")
    assert run_cli(*export, "--to", "out/pilot_results.json")[0] == 0
    combined = orjson.loads((tmp_path / "out" / "pilot_results.json").read_bytes())
    assert {run["model_config"]["name"] for run in combined["runs"]} == {"mock-a", "mock-b"}
    assert sum(len(run["results"]) for run in combined["runs"]) == 2 * 4


def test_convert_refuses_what_it_cannot_map_one_line_each_and_writes_nothing(
    tmp_path, run_cli, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    models = [
        {"name": "x", "type": "cohere", "model": "c"},
        {"name": "y", "type": "anthropic", "model": "m", "top_logprobs": 5, "colour": "red"},
    ]
    _legacy(tmp_path, models=models, stream=True, max_retries=-1)
    code, out, err = run_cli("convert", "legacy.json")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "error: legacy.json: max_retries: expected a whole number >= 0, got -1",
        "error: legacy.json: models[0].type: 'cohere' has no provider here (known: anthropic, "
        "claude, gemini, google, hf, local, mock, openai, openai_compatible, transformers, vllm)",
        "error: legacy.json: models[1].top_logprobs: the anthropic provider has no such option",
        "error: legacy.json: models[1].colour: no equivalent here",
        "error: legacy.json: stream: no equivalent here; remove it, or map it by hand",
    ]
    assert not (tmp_path / "legacy.toml").exists()


def test_convert_checks_the_converted_config_as_a_run_would(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _legacy(tmp_path, max_tokens=0, prompts_file="absent.json")
    code, _, err = run_cli("convert", "legacy.json")
    assert code == 2
    assert (
        "error: legacy.json: as converted, max_tokens (as defaults.max_tokens): must be >= 1" in err
    )
    assert "error: legacy.json: as converted, prompts_file (as prompts): " in err
    assert "absent.json" in err
    assert not (tmp_path / "legacy.toml").exists()


def test_convert_replaces_an_existing_file_only_when_forced(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _legacy(tmp_path)
    (tmp_path / "legacy.toml").write_text("mine")
    code, _, err = run_cli("convert", "legacy.json")
    assert (
        code == 2
        and (
            "legacy.toml: is not a config convert wrote; convert --to replaces nothing else "
            "(give --to another path, or --force)"
        )
        in err
    )
    assert (tmp_path / "legacy.toml").read_text() == "mine"
    assert run_cli("convert", "legacy.json", "--force")[0] == 0
    assert "max_attempts = 4" in (tmp_path / "legacy.toml").read_text()


def test_paths_are_rewritten_for_a_config_written_elsewhere(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _legacy(tmp_path)
    (tmp_path / "configs").mkdir()
    assert run_cli("convert", "legacy.json", "--to", "configs/pilot.toml")[0] == 0
    config = tomllib.loads((tmp_path / "configs" / "pilot.toml").read_text())
    assert config["prompts"] == "../data/prompts.json"
    assert config["output"] == "../out/pilot_results"
    monkeypatch.chdir(tmp_path / "configs")
    assert run_cli("run", "pilot.toml", "--limit", "1")[0] == 0
    assert (tmp_path / "out" / "pilot_results" / "ledger.jsonl").is_file()


@pytest.mark.parametrize("verb", ["run", "plan", "doctor"])
def test_a_legacy_json_config_given_to_a_verb_says_to_convert_it(
    tmp_path, run_cli, monkeypatch, verb
):
    monkeypatch.chdir(tmp_path)
    _legacy(tmp_path)
    code, out, err = run_cli(verb, "legacy.json")
    assert code == 2
    assert "legacy.json: this is a legacy JSON config: python -m harness convert legacy.json" in (
        out + err
    )


def test_convert_names_every_null_and_wrong_value_without_a_traceback(
    tmp_path, run_cli, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    models = [{"type": "mock", "model": "m", "temperature": None, "max_tokens": [1, None]}, {}]
    _legacy(tmp_path, seed=None, models=models, max_retries=True)
    code, out, err = run_cli("convert", "legacy.json")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "error: legacy.json: seed: null has no equivalent in TOML; remove it or give a value",
        "error: legacy.json: models[0].temperature: null has no equivalent in TOML; remove it or "
        "give a value",
        "error: legacy.json: models[0].max_tokens[1]: null has no equivalent in TOML; remove it or "
        "give a value",
        "error: legacy.json: max_retries: expected a whole number >= 0, got True",
        "error: legacy.json: models[1].type: None has no provider here (known: anthropic, claude, "
        "gemini, google, hf, local, mock, openai, openai_compatible, transformers, vllm)",
        # what is left is checked too: every mistake at once
        "error: legacy.json: as converted, models[0].max_tokens: expected an integer, got a list",
    ]


def test_convert_never_replaces_results_nor_the_prompts_file_even_forced(
    tmp_path, run_cli, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    _legacy(tmp_path)
    (tmp_path / "runs").mkdir()
    ledger = tmp_path / "runs" / "ledger.jsonl"
    ledger.write_text("")  # a ledger by its name, though empty
    prompts = tmp_path / "data" / "prompts.json"
    before = prompts.read_bytes()
    code, _, err = run_cli("convert", "legacy.json", "--to", ledger, "--force")
    assert code == 2 and "is a ledger, which convert --to never replaces" in err
    code, _, err = run_cli("convert", "legacy.json", "--to", "data/prompts.json", "--force")
    assert code == 2 and "the prompts file the config names" in err
    assert prompts.read_bytes() == before and ledger.read_text() == ""


def test_convert_replaces_a_config_it_wrote_without_force(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _legacy(tmp_path)
    assert run_cli("convert", "legacy.json")[0] == 0
    _legacy(tmp_path, seed=9)
    assert run_cli("convert", "legacy.json")[0] == 0
    assert tomllib.loads((tmp_path / "legacy.toml").read_text())["seed"] == 9


def test_convert_tells_nesting_too_deep_in_one_line(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    deep: object = 1
    for _ in range(600):
        deep = {"a": deep}
    _legacy(tmp_path, extra=deep)
    code, _, err = run_cli("convert", "legacy.json")
    assert (code, err) == (2, "error: legacy.json: nested deeper than 16 levels: no config is\n")


@pytest.mark.parametrize("kind", ["file", "dangling link", "long name"])
def test_init_where_it_cannot_write_is_one_line_and_leaves_nothing(tmp_path, run_cli, kind):
    if kind == "file":
        (tmp_path / "f").write_text("")
        folder = tmp_path / "f" / "sub"
    elif kind == "dangling link":
        folder = tmp_path / "link"
        folder.symlink_to(tmp_path / "nowhere")
    else:
        folder = tmp_path / ("x" * 300)
    code, out, err = run_cli("init", folder)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["f"], ["link"])


def test_init_that_fails_half_way_leaves_no_file(tmp_path, run_cli, monkeypatch):
    from pathlib import Path

    written = Path.write_text

    def write_text(self, text, *args, **kwargs):
        if text.startswith("# A run"):  # the config, written second
            raise OSError(28, "No space left on device", str(self))
        return written(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    code, _, err = run_cli("init", tmp_path / "proj")
    assert code == 2 and "cannot write: No space left on device" in err
    assert list((tmp_path / "proj").iterdir()) == []


def test_convert_follows_links_as_the_legacy_script_opened_its_files(
    tmp_path, run_cli, monkeypatch
):
    (tmp_path / "real" / "a" / "b").mkdir(parents=True)
    write_prompts(tmp_path / "real" / "a" / "p.json", 2)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "a" / "b")
    monkeypatch.chdir(tmp_path)
    _legacy(tmp_path, prompts_file="link/../p.json")  # the script opened real/a/p.json
    assert run_cli("convert", "legacy.json")[0] == 0
    config = tomllib.loads((tmp_path / "legacy.toml").read_text())
    assert config["prompts"] == "real/a/p.json"


def test_convert_says_what_becomes_of_a_key_written_in_the_file(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    models = [
        {"name": "m", "type": "mock", "model": "m", "api_key": "sk-1"},
        {"name": "o", "type": "openai", "model": "gpt", "api_key": "sk-2", "api_key_env": ""},
        {"name": "c", "type": "claude", "model": "c", "api_key": "sk-3"},
    ]
    _legacy(tmp_path, models=models, top_logprobs=None)
    raw = json.loads((tmp_path / "legacy.json").read_text())
    del raw["top_logprobs"]
    (tmp_path / "legacy.json").write_text(json.dumps(raw))
    code, out, _ = run_cli("convert", "legacy.json")
    assert code == 0 and "sk-" not in out + (tmp_path / "legacy.toml").read_text()
    assert "models[0].api_key: left out: the simulated provider needs no key" in out
    assert (
        "models[1].api_key: a key written in the file is not carried over, and api_key_env" in out
    )
    assert "models[2].api_key: a key written in the file is not carried over; set " in out
    assert "ANTHROPIC_API_KEY in the environment" in out
