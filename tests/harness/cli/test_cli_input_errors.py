"""Bad input at the command line: one clear line on stderr, exit 2, nothing written."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tests.conftest import SIMPLE_MODEL, write_config


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            SIMPLE_MODEL.replace("[0.0, 0.5]", '["hot"]'),
            "models[0].temperatures[0]: expected a number",
        ),
        (
            SIMPLE_MODEL.replace('"simulated"', '"nonesuch"'),
            'models[0].provider: unknown provider "nonesuch"',
        ),
        (
            SIMPLE_MODEL + "[models.options]\nlatency = 3\n",
            "models[0].options.latency: unknown key",
        ),
        (
            SIMPLE_MODEL + '[models.options]\nscript = ["oops"]\n',
            "models[0].options.script[0]: expected one of",
        ),
        (
            SIMPLE_MODEL + "[models.options]\nrate_limit_rate = 0.7\nfatal_rate = 0.7\n",
            "models[0].options: the failure rates add up to more than 1",
        ),
        (
            SIMPLE_MODEL.replace('name = "sim"', 'name = "sim"\nmodel = "${M-x}"'),
            "models[0].model: unsupported ${...} form: use ${VAR} or ${VAR:-default}",
        ),
        (
            SIMPLE_MODEL.replace('name = "sim"', 'name = "${A:-${B}}"'),
            "models[0].name: unsupported ${...} form",
        ),
        (
            SIMPLE_MODEL.replace("[0.0, 0.5]", "[0.0, 5]"),
            "models[0].temperatures[1]: must be <= 2, got 5.0",
        ),
        (
            SIMPLE_MODEL.replace("[0.0, 0.5]", "[nan]"),
            "models[0].temperatures[0]: must be a finite number, got nan",
        ),
        (
            SIMPLE_MODEL + "requests_per_minute = inf\n",
            "models[0].requests_per_minute: must be a finite number, got inf",
        ),
        (
            SIMPLE_MODEL.replace("attempt_timeout = 2.0", "attempt_timeout = -inf"),
            "retry.attempt_timeout: must be a finite number, got -inf",
        ),
        (
            SIMPLE_MODEL + "[models.options]\nlatency_ms = nan\n",
            "models[0].options.latency_ms: must be a finite number, got nan",
        ),
        (
            SIMPLE_MODEL.replace('"simulated"', '"openai"')
            + 'mode = "batch"\n[models.options]\napi_key_env = ""\n',
            'models[0].mode: provider "openai" has no batch API (batch mode: anthropic, gemini, '
            "simulated)",
        ),
        (SIMPLE_MODEL + 'mode = "fast"\n', "models[0].mode: expected one of 'live', 'batch'"),
        (
            SIMPLE_MODEL + "[models.batch]\npoll_interval = 0\n",
            "models[0].batch.poll_interval: must be >= 0.001, got 0",
        ),
        (
            SIMPLE_MODEL.replace('"simulated"', '"anthropic"')
            + 'mode = "batch"\n[models.batch]\nmax_requests = 100001\n'
            + '[models.options]\napi_key = "k"\n',
            "models[0].batch.max_requests: must be <= 100,000 (the anthropic batch API's limit)",
        ),
        (
            SIMPLE_MODEL.replace('"simulated"', '"gemini"')
            + 'mode = "batch"\n[models.batch]\nmax_bytes = 30000000\n'
            + '[models.options]\napi_key = "k"\n',
            "models[0].batch.max_bytes: must be <= 20,000,000 (the gemini batch API's limit)",
        ),
    ],
)
def test_bad_config_exits_2_naming_file_and_key_and_writes_nothing(
    tmp_path, run_cli, body, expected
):
    config = write_config(tmp_path, body)
    code, _out, err = run_cli("run", config)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert err.startswith(f"error: {config}: ") and expected in err
    assert not (tmp_path / "out").exists()


def test_bad_prompts_exit_2_naming_the_line_and_write_nothing(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL)
    (tmp_path / "prompts.json").write_text(
        '[{"id": "a", "prompt": "x"},\n {"id": "a", "prompt": "y"}]'
    )
    code, _, err = run_cli("run", config)
    assert code == 2 and "prompts[1]: duplicate id 'a'" in err and "prompts.json" in err
    assert not (tmp_path / "out").exists()


def test_unknown_model_filter_exits_2(tmp_path, run_cli):
    code, _, err = run_cli("run", write_config(tmp_path, SIMPLE_MODEL), "--models", "gpt-9")
    assert code == 2 and "--models: no model named gpt-9" in err


def test_status_of_a_missing_ledger_exits_2(tmp_path, run_cli):
    code, _, err = run_cli("status", tmp_path / "nothing")
    assert code == 2 and "no such ledger" in err


def test_preflight_names_every_missing_key_and_bad_url_and_writes_nothing(
    tmp_path, run_cli, monkeypatch
):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    body = """
[[models]]
name = "claude"
provider = "anthropic"

[[models]]
name = "gemini"
provider = "gemini"
[models.options]
base_url = "localhost:8080"
"""
    config = write_config(tmp_path, body)
    code, _, err = run_cli("run", config)
    assert code == 2
    assert err.splitlines() == [
        f"error: {config}: models[0] (claude): no API key: set the environment variable "
        "ANTHROPIC_API_KEY",
        f"error: {config}: models[1] (gemini): no API key: set the environment variable "
        "GEMINI_API_KEY",
        f'error: {config}: models[1] (gemini): base_url "localhost:8080" is not an http(s) URL',
    ]
    assert not (tmp_path / "out").exists()


def _options_of_type(kind_fits) -> list[tuple[str, str, object]]:
    """(verb, option, its type) for every option of every verb whose type `kind_fits`."""
    from harness.cli.main import _parser

    found = []

    def walk(parser: argparse.ArgumentParser, verb: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{verb} {name}".strip())
            elif action.option_strings and action.type is not None and kind_fits(action.type):
                found.append((verb, action.option_strings[0], action.type))

    walk(_parser(), "")
    return found


def _numeric(kind) -> bool:
    try:
        return isinstance(kind("1"), int | float)
    except (ValueError, argparse.ArgumentTypeError):
        return False


NUMERIC_OPTIONS = _options_of_type(_numeric)


def test_every_numeric_option_is_found():
    options = {(verb, option) for verb, option, _ in NUMERIC_OPTIONS}
    assert {("stats", "--resamples"), ("report", "--seed"), ("run", "--limit")} <= options
    assert {
        ("annotate export", "--seed"),
        ("plan", "--latency"),
        ("export", "--threads"),
    } <= options


@pytest.mark.parametrize(("verb", "option", "kind"), NUMERIC_OPTIONS)
@pytest.mark.parametrize("value", ["100000000000", "-1", "1e400", "nan"])
def test_every_numeric_option_refuses_a_value_out_of_its_range(verb, option, kind, value):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match=r"from .* to |at most"):
        kind(value)  # type: ignore[operator]


def test_an_out_of_range_option_is_one_line_naming_it_and_its_range(tmp_path, capsys):
    from harness.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(["stats", str(tmp_path), "--resamples", "100000000000"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "error: argument --resamples: expected a whole number from 0 to 100,000, got "
        "'100000000000' (see: python -m harness stats --help)\n"
    )


def test_control_characters_from_a_file_never_reach_the_terminal_in_an_error(tmp_path, run_cli):
    # A category holding an ESC (clear screen) and a CR LF: the error is one line, escaped.
    rows = [{"id": "p0", "prompt": "Is it real?", "category": "cat\u001b[2J[/]\r\nX"}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = write_config(tmp_path, SIMPLE_MODEL)
    config.write_text(config.read_text().replace('"prompts.json"', '"p.jsonl"'))
    code, _, err = run_cli("run", config, "--category", "nope\u0007")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "\u001b" not in err and "\r" not in err and "\u0007" not in err
    assert "\\x1b[2J[/]\\r\\nX" in err


def test_every_option_naming_a_file_to_write_refuses_a_folders_name(tmp_path, capsys):
    from harness.cli.main import main
    from harness.terminal import file_to_write

    assert {
        ("export", "--to"),
        ("stats", "--json"),
        ("report", "--out"),
        ("query", "--to"),
        ("convert", "--to"),
    } <= {(verb, option) for verb, option, _ in _options_of_type(lambda k: k is file_to_write)}
    for text in ("new/", "new/.", "new/..", ".", "/"):
        with pytest.raises(argparse.ArgumentTypeError, match="names a folder; name a file"):
            file_to_write(text)
    assert file_to_write("new/answers.csv") == Path("new/answers.csv")
    with pytest.raises(SystemExit) as exited:
        main(["export", str(tmp_path), "--to", f"{tmp_path}/new/"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1
    assert "names a folder; name a file to write" in err
    assert not (tmp_path / "new").exists()
