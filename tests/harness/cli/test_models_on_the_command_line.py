"""`run`, `rerun` and `plan` without a config file: the models, prompts and defaults given on the
command line (`--model`, `--option`, `--temperatures`, `--max-tokens`), run like the config they
amount to, which `--print-config` prints."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ledger_lines, results, write_config, write_prompts

TWO_MODELS = (
    "--model", "simulated:sim-a",
    "--option", "latency_ms=0", "--option", "top_logprobs=3",
    "--model", "b=simulated:sim-b",
    "--option", "latency_ms=0",
    "--temperatures", "0,0.7",
    "--max-tokens", "32",
)  # fmt: skip


@pytest.fixture
def prompts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_prompts(tmp_path / "set.json", 4)
    return "set.json"


def test_models_on_the_command_line_run_every_variant_with_their_options(prompts, run_cli):
    code, _, err = run_cli("run", *TWO_MODELS, "--prompts", prompts, "--output", "res")
    assert (code, err) == (0, "")
    records = results(Path("res/ledger.jsonl"))
    assert len(records) == 2 * 2 * 4  # models x temperatures x prompts
    by_model = {r["model"]: r for r in records}
    assert (
        by_model["sim-a"]["token_logprobs"]
        and len(by_model["sim-a"]["token_logprobs"][0]["top"]) == 3
    )
    assert by_model["sim-b"]["token_logprobs"] is None
    assert {r["sampling_params"]["temperature"] for r in records} == {0.0, 0.7}
    assert {r["sampling_params"]["max_tokens"] for r in records} == {32}
    assert {r["variant"].split("@")[0] for r in records} == {"sim-a", "b"}


def test_the_run_line_records_the_config_the_command_line_amounts_to(prompts, run_cli):
    assert run_cli("run", *TWO_MODELS, "--prompts", prompts, "--output", "res")[0] == 0
    run = ledger_lines(Path("res/ledger.jsonl"))[0]
    assert run["type"] == "run" and run["config_path"] is None
    assert [m["name"] for m in run["config"]["models"]] == ["sim-a", "b"]
    assert run["config"]["models"][0]["options"] == {"latency_ms": 0, "top_logprobs": 3}
    assert run["config"]["defaults"] == {"temperatures": [0.0, 0.7], "max_tokens": 32}


def test_the_printed_config_runs_as_a_file_to_the_same_variants(prompts, run_cli, tmp_path):
    code, printed, err = run_cli("run", *TWO_MODELS, "--prompts", prompts, "--print-config")
    assert (code, err) == (0, "")
    assert not (tmp_path / "results").exists()  # printing runs nothing
    assert tomllib.loads(printed)["prompts"] == prompts
    (tmp_path / "saved.toml").write_text(printed)
    assert run_cli("run", *TWO_MODELS, "--prompts", prompts, "--output", "a")[0] == 0
    assert run_cli("run", "saved.toml", "--output", "b")[0] == 0
    variants = [
        {r["variant"] for r in results(tmp_path / out / "ledger.jsonl")} for out in ("a", "b")
    ]
    assert variants[0] == variants[1] and len(variants[0]) == 4


def test_the_rerun_line_of_a_command_line_run_gives_its_models_again(prompts, run_cli):
    failing = ("--model", "simulated:sim", "--option", "fatal_rate=0.5", "--option", "latency_ms=0")
    code, out, _ = run_cli("run", *failing, "--prompts", prompts, "--output", "res")
    assert code == 1
    line = next(x for x in out.splitlines() if " rerun " in x).split("#")[0]
    words = shlex.split(line)
    words = words[words.index("rerun") :]
    assert words[1:7] == list(failing)
    code, out, err = run_cli(*words)
    assert err == "" and "Rerunning" in out


def test_plan_prices_command_line_models_without_their_keys(prompts, run_cli, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    code, out, err = run_cli("plan", "--model", "anthropic:claude-sonnet-4-5", "--prompts", prompts)
    assert code == 0, err
    assert "claude-sonnet-4-5@t0" in out and "ANTHROPIC_API_KEY" in out


def test_every_mistake_in_the_command_line_models_is_told_at_once(tmp_path, run_cli):
    code, out, err = run_cli(
        "run", "--model", "bad", "--model", "nope:x", "--model", "simulated:a",
        "--model", "simulated:other/a",
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "error: --model bad: expected PROVIDER:MODEL or NAME=PROVIDER:MODEL",
        "error: --model: name the prompts to send with --prompts FILE",
        "error: --model: two models named a: name them, as --model NAME=PROVIDER:MODEL",
        'error: --model nope:x: unknown provider "nope" (known: anthropic, gemini, openai, '
        "simulated, transformers, vllm)",
    ]
    assert not any(tmp_path.iterdir())


def test_a_command_line_model_s_wrong_options_are_told_under_its_model(prompts, run_cli):
    code, _, err = run_cli(
        "run", "--model", "simulated:a", "--option", "latency_ms=-1", "--option", "colour=red",
        "--prompts", prompts,
    )  # fmt: skip
    assert code == 2
    assert "error: --model simulated:a: options.latency_ms: must be >= 0" in err
    assert "error: --model simulated:a: options.colour: unknown key" in err


def test_a_run_with_neither_config_nor_models_says_how_to_give_them(tmp_path, run_cli):
    code, _, err = run_cli("run")
    assert code == 2
    assert err.startswith("error: give a CONFIG file, or the models to run: --model PROVIDER:MODEL")


@pytest.mark.parametrize(
    "words, told",
    [
        (("--option", "x=1"), "--option x=1: give it after the --model it is for"),
        (
            ("--model", "simulated:a", "--option", "sk-x"),
            "--option: expected KEY=VALUE, got no '='",
        ),
        (("--model", "simulated:a", "--temperatures", "hot"), "expected numbers separated"),
    ],
)
def test_a_malformed_command_line_option_is_one_line_and_exit_2(run_cli, capsys, words, told):
    with pytest.raises(SystemExit) as exited:
        run_cli("run", *words)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert told in err and len(err.splitlines()) == 1 and "sk-x" not in err


def test_models_on_the_command_line_are_refused_beside_a_config(tmp_path, run_cli):
    config = write_config(tmp_path, '[[models]]\nname = "sim"\nprovider = "simulated"\n')
    code, _, err = run_cli("run", config, "--model", "simulated:x", "--temperatures", "0.5")
    assert code == 2
    assert "--model, --temperatures: give models either in CONFIG or on the command line" in err
    assert not (tmp_path / "out").exists()


def test_a_wrong_model_hides_no_mistake_in_the_rest_nor_in_the_defaults(prompts, run_cli):
    code, _, err = run_cli(
        "plan", "--prompts", "absent.json", "--model", "bad", "--model", "simulated:x",
        "--option", "top_logprobs=99", "--temperatures", "0,0",
    )  # fmt: skip
    assert code == 2
    assert err.splitlines() == [
        "error: --model bad: expected PROVIDER:MODEL or NAME=PROVIDER:MODEL",
        "error: --temperatures[1]: temperature 0 is listed twice",
        "error: --model simulated:x: options.top_logprobs: must be <= 20, got 99",
        f"error: --prompts: {Path('absent.json').resolve()}: no such file or folder",
    ]


def test_a_rerun_line_hiding_a_typed_secret_says_how_to_give_it_instead(prompts, run_cli):
    secret = "sk-typed-secret-0123456789"
    code, out, _ = run_cli(
        "run", "--model", "simulated:s", "--option", f"api_key={secret}",
        "--option", "fatal_rate=0.9", "--prompts", prompts, "--output", "res",
    )  # fmt: skip
    assert code == 1 and secret not in out
    assert "--option api_key=[redacted]" in out
    assert "give it from a variable, --option api_key='${VAR}'" in out
