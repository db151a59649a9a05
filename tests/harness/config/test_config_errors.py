"""A config with several mistakes is told all of them in one run: a line each, naming the file
and the key path, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from harness.errors import InputError
from harness.fields import FieldError, from_table, option
from harness.run.prepare import prepare
from tests.conftest import REPO, SIMPLE_MODEL, write_config

# Five mistakes in five places: the top level, [retry], two models, a scorer.
FIVE_MISTAKES = """
colour = "blue"

[retry]
max_attempts = 0

[[models]]
name = "a"
provider = "simulated"
temperature = 0.5

[[models]]
name = "b"
provider = "simulated"
top_p = 3

[[scorers]]
name = "s"
type = "bogus"
"""


@pytest.mark.slow
def test_a_config_with_five_mistakes_gets_five_lines_exit_2_and_nothing_written(tmp_path):
    config = write_config(tmp_path, FIVE_MISTAKES)
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert [line.split(": ")[2] for line in lines] == [
        "colour",
        "models[0].temperature",
        "models[1].top_p",
        "retry.max_attempts",
        "scorers[0].type",
    ]
    assert all(line.startswith(f"error: {config}: ") for line in lines)
    assert not (tmp_path / "out").exists()


@dataclass(frozen=True)
class _Table:
    count: int = option(1, "a count", min=1, max=10)
    name: str = option("x", "a name")
    sizes: tuple[int, ...] = option((), "sizes", min=0, max=5)


def test_a_table_reports_every_wrong_key_at_once():
    table = {"count": 0, "name": 3, "sizes": [1, 9, "a"], "colour": 1, "shade": 2}
    with pytest.raises(FieldError) as caught:
        from_table(_Table, table, "t")
    assert [str(error) for error in caught.value.errors] == [
        "t.colour: unknown key (expected one of: count, name, sizes)",
        "t.shade: unknown key (expected one of: count, name, sizes)",
        "t.count: must be >= 1, got 0",
        "t.name: expected a string, got 3",
        't.sizes[2]: expected an integer, got "a"',
    ]
    assert str(caught.value).splitlines() == [str(e) for e in caught.value.errors]


def test_an_unset_variable_and_other_mistakes_are_told_together(tmp_path):
    body = SIMPLE_MODEL.replace('name = "sim"', 'name = "${UNSET_FOR_TEST}"') + "top_p = 2\n"
    config = write_config(tmp_path, body)
    with pytest.raises(InputError) as caught:
        prepare(config)
    assert [line.split(": ", 1)[1] for line in str(caught.value).splitlines()] == [
        "models[0].name: environment variable UNSET_FOR_TEST is not set",
        "models[0].top_p: must be <= 1, got 2.0",
    ]


def test_every_wrong_provider_option_of_a_model_is_told(tmp_path):
    body = SIMPLE_MODEL + "[models.options]\nlatency = 3\noutput_tokens = 0\n"
    with pytest.raises(InputError) as caught:
        prepare(write_config(tmp_path, body))
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "models[0].options.latency",
        "models[0].options.output_tokens",
    ]


def test_a_judge_of_a_wrong_model_entry_is_not_told_again(tmp_path):
    body = SIMPLE_MODEL.replace("max_concurrency = 4", "max_concurrency = 0") + (
        '[[scorers]]\nname = "j"\ntype = "judge"\nmodel = "sim"\ntemplate = "{response}"\n'
        'labels = ["yes", "no"]\n'
    )
    with pytest.raises(InputError) as caught:
        prepare(write_config(tmp_path, body))
    assert str(caught.value).splitlines() == [
        f"{tmp_path / 'run.toml'}: models[0].max_concurrency: must be >= 1, got 0"
    ]


SIM = 'provider = "simulated"\n'
KNOWN_OPTIONS = (
    "latency_ms, jitter_ms, output_tokens, top_logprobs, rate_limit_rate, retry_after, "
    "server_error_rate, timeout_rate, fatal_rate, script, judge, batch_submit_ms, "
    "batch_ready_ms, batch_results_ms, api_key"
)

# A config (after its `prompts` and `output` lines) and every line `run` must print for it.
ALL_AT_ONCE = {
    "a name that is no string is a type error, never a traceback": (
        '[[models]]\nname = ["a"]\n' + SIM + '[[models]]\nname = ["a"]\nprovider = ["simulated"]\n'
        "[models.options]\nnonsense = 1\n"
        '[[scorers]]\nname = ["r"]\ntype = "rules"\nrules = [{label = "x", keywords = ["x"]}]\n'
        '[[scorers]]\nname = ["r"]\ntype = "judge"\nmodel = ["a"]\ntemplate = "{response}"\n'
        'labels = ["yes"]\n',
        [
            "models[0].name: expected a string, got a list",
            "models[1].name: expected a string, got a list",
            "models[1].provider: expected a string, got a list",
            "scorers[0].name: expected a string, got a list",
            "scorers[1].name: expected a string, got a list",
            "scorers[1].model: expected a string, got a list",
        ],
    ),
    "a mistake in [defaults] is told once, at its own path": (
        "[defaults]\ntemperatures = [0.5, 0.5]\n[defaults.batch]\nmax_requests = 0\n"
        + '[[models]]\nname = "a"\n'
        + SIM
        + '[[models]]\nname = "b"\n'
        + SIM,
        [
            "defaults.temperatures[1]: temperature 0.5 is listed twice",
            "defaults.batch.max_requests: must be >= 1, got 0",
        ],
    ),
    "a model's own key is told at the model, [defaults] not again": (
        "[defaults.batch]\nmax_requests = 0\n"
        + '[[models]]\nname = "a"\n'
        + SIM
        + "temperatures = [1, 1]\n[models.batch]\nmax_bytes = 1\n",
        [
            "defaults.batch.max_requests: must be >= 1, got 0",
            "models[0].temperatures[1]: temperature 1 is listed twice",
            "models[0].batch.max_bytes: must be >= 4096, got 1",
        ],
    ),
    "an entry that is no table is told once": (
        'models = ["a"]\nscorers = ["x"]\n',
        [
            'models[0]: expected a table, got "a"',
            'scorers[0]: expected a table, got "x"',
        ],
    ),
    "a judge of a wrong model entry is checked but for its model; names are compared as written": (
        '[[models]]\nname = "a"\n' + SIM + "bogus = 1\n"
        '[[models]]\nname = "a"\n' + SIM + "top_p = 5\n"
        '[[scorers]]\nname = "j"\ntype = "judge"\nmodel = "a"\ntemplate = "{nope"\n'
        '[[scorers]]\nname = "j"\ntype = "judge"\nmodel = "zz"\ntemplate = "{response}"\n'
        'labels = ["yes", "Yes", "UNPARSEABLE"]\n',
        [
            "models[0].bogus: unknown key (expected one of: temperatures, top_p, max_tokens, stop, "
            "max_concurrency, mode, batch, name, provider, model, requests_per_minute, "
            "tokens_per_minute, options, price, cost_per_gpu_hour, budget_usd, unpriced_ok, "
            "adapters)",
            "models[1].top_p: must be <= 1, got 5.0",
            'models[1].name: duplicate model name "a"',
            "scorers[0].labels: missing required key",
            "scorers[0].template: expected '}' before end of string "
            "(write a literal brace as {{ or }})",
            "scorers[1].labels[2]: UNPARSEABLE is the harness's own",
            "scorers[1].labels: a label is listed twice",
            'scorers[1].model: no [[models]] entry named "zz" (models: a)',
            'scorers[1].name: duplicate scorer name "j"',
        ],
    ),
    "every problem of a rules or refusal scorer is told": (
        '[[models]]\nname = "a"\n'
        + SIM
        + '[[scorers]]\nname = "r"\ntype = "rules"\ndefault = " x"\n'
        '[[scorers.rules]]\nlabel = "y"\n[[scorers.rules]]\nlabel = "z"\nregex = ["(?=a)", "("]\n'
        '[[scorers]]\nname = "f"\ntype = "refusal"\nlabel = "n"\ndefault = "n"\n'
        'extra_patterns = ["("]\n',
        [
            "scorers[0].rules[0]: give regex or keywords (or both)",
            "scorers[0].rules[1].regex[0]: invalid regular expression: invalid perl operator: (?=: "
            "RE2 has no lookahead (patterns run on RE2, in linear time)",
            "scorers[0].rules[1].regex[1]: invalid regular expression: missing ): (",
            "scorers[0].default: a label is a non-empty string without surrounding spaces",
            "scorers[1].default: must differ from label",
            "scorers[1].extra_patterns[0]: invalid regular expression: missing ): (",
        ],
    ),
    "every problem of a model's provider, options, batch and price is told": (
        "budget_usd = 1\n"
        '[[models]]\nname = "a"\nprovider = "simulatedx"\n'
        '[[models]]\nname = "b"\n' + SIM + 'mode = "batch"\n'
        '[models.options]\nnonsense = 1\nscript = ["ok", "boom"]\nfatal_rate = 0.9\n'
        "server_error_rate = 0.9\n"
        '[[models]]\nname = "c"\nprovider = "openai"\nmode = "batch"\nunpriced_ok = true\n',
        [
            'models[0].provider: unknown provider "simulatedx" (known: anthropic, gemini, openai, '
            "simulated, transformers, vllm)",
            f"models[1].options.nonsense: unknown key (expected one of: {KNOWN_OPTIONS})",
            "models[1].options.script[1]: expected one of 'ok', '429', '500', '503', 'timeout', "
            "'400', 'malformed', got \"boom\"",
            "models[1].options: the failure rates add up to more than 1",
            'models[1] (b): no price known for "b" under a budget: set [models.price], or '
            "unpriced_ok = true to count its answers as free",
            'models[2].mode: provider "openai" has no batch API (batch mode: anthropic, gemini, '
            "simulated)",
        ],
    ),
    "a model's options are checked when the config is wrong elsewhere": (
        "bogus_top = 1\n"
        '[[models]]\nname = "a"\n' + SIM + "top_p = 5\n[models.options]\nlatency_ms = -5\n"
        '[[models]]\nname = "b"\n' + SIM + "[models.options]\nnonsense = 3\n",
        [
            "bogus_top: unknown key (expected one of: prompts, models, output, seed, samples, "
            "grace_seconds, defaults, retry, preflight, budget_usd, scorers)",
            "models[0].top_p: must be <= 1, got 5.0",
            "models[0].options.latency_ms: must be >= 0, got -5.0",
            f"models[1].options.nonsense: unknown key (expected one of: {KNOWN_OPTIONS})",
        ],
    ),
    "what a model's provider finds is told with the config's other mistakes": (
        "bogus_top = 1\n"
        '[[models]]\nname = "a"\nprovider = "anthropic"\n'
        '[models.options]\napi_key_env = "UNSET_KEY_FOR_TEST"\n'
        '[[models]]\nname = "t"\n' + SIM + '[models.adapters]\nsft = "/nope"\n',
        [
            "bogus_top: unknown key (expected one of: prompts, models, output, seed, samples, "
            "grace_seconds, defaults, retry, preflight, budget_usd, scorers)",
            "models[0] (a): no API key: set the environment variable UNSET_KEY_FOR_TEST",
            'models[1].adapters: provider "simulated" cannot serve LoRA adapters',
        ],
    ),
    "an inline judge model's options are checked with the scorer's other mistakes": (
        '[[models]]\nname = "a"\n' + SIM + '[[scorers]]\nname = "j"\ntype = "judge"\n'
        'template = "{response}"\nlabels = ["a", "a"]\n'
        '[scorers.model]\nname = "judge"\nprovider = "anthropic"\n'
        "[scorers.model.options]\ntimeout = -1\nbogus = 2\n",
        [
            "scorers[0].labels: a label is listed twice",
            "scorers[0].model.options.bogus: unknown key (expected one of: api_key_env, "
            "api_key, base_url, timeout)",
            "scorers[0].model.options.timeout: must be >= 0.001, got -1.0",
        ],
    ),
    "an inline judge model's wrong options are told in a config right otherwise": (
        '[[models]]\nname = "a"\n' + SIM + '[[scorers]]\nname = "j"\ntype = "judge"\n'
        'template = "{response}"\nlabels = ["a"]\n'
        '[scorers.model]\nname = "judge"\nprovider = "anthropicx"\n'
        '[[scorers]]\nname = "k"\ntype = "judge"\ntemplate = "{response}"\nlabels = ["a"]\n'
        '[scorers.model]\nname = "judge"\nprovider = "anthropic"\n'
        "[scorers.model.options]\ntimeout = -1\n",
        [
            'scorers[0].model.provider: unknown provider "anthropicx" (known: anthropic, gemini, '
            "openai, simulated, transformers, vllm)",
            "scorers[1].model.options.timeout: must be >= 0.001, got -1.0",
        ],
    ),
    "a value whose ${...} cannot be resolved is told once": (
        'samples = "${UNSET_FOR_TEST}"\n[[models]]\nname = "a"\n'
        + SIM
        + '[models.options]\nlatency_ms = "${UNSET_FOR_TEST}"\nfoo = "${UNCLOSED"\n'
        'script = ["ok", "${UNSET_FOR_TEST}"]\n',
        [
            "samples: environment variable UNSET_FOR_TEST is not set",
            "models[0].options.latency_ms: environment variable UNSET_FOR_TEST is not set",
            "models[0].options.foo: unsupported ${...} form: use ${VAR} or ${VAR:-default}",
            "models[0].options.script[1]: environment variable UNSET_FOR_TEST is not set",
        ],
    ),
    "an empty string where an option cannot be empty": (
        '[[models]]\nname = "o"\nprovider = "openai"\n[models.options]\nbase_url = ""\n'
        '[[models]]\nname = "a"\nprovider = "anthropic"\n[models.options]\napi_key_env = ""\n'
        'api_key = "k"\n'
        '[[models]]\nname = "g"\nprovider = "gemini"\n[models.options]\napi_key_env = ""\n'
        '[[models]]\nname = "v"\nprovider = "vllm"\n[models.options]\ndtype = ""\n'
        '[[models]]\nname = "t"\nprovider = "transformers"\n[models.options]\ndevice = "gpu"\n',
        [
            "models[0].options.base_url: must not be empty",
            "models[2].options.api_key_env: must not be empty without api_key",
            "models[3].options.dtype: must not be empty",
            'models[4].options.device: must match auto|cpu|mps|cuda(:[0-9]+)?, got "gpu"',
        ],
    ),
    "a bound is written as the reference writes it": (
        'budget_usd = 2e9\n[[models]]\nname = "a"\n' + SIM + "unpriced_ok = true\n",
        ["budget_usd: must be <= 1_000_000_000, got 2000000000.0"],
    ),
}


@pytest.mark.parametrize(("body", "expected"), ALL_AT_ONCE.values(), ids=list(ALL_AT_ONCE))
def test_one_run_tells_every_mistake_once_a_line_each(tmp_path, run_cli, body, expected):
    config = write_config(tmp_path, body)
    code, out, err = run_cli("run", config)
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"error: {config}: {line}" for line in expected]
    assert not (tmp_path / "out").exists()


def test_a_missing_prompts_file_is_told_with_the_config_s_mistakes(tmp_path, run_cli):
    config = write_config(tmp_path, "bogus_top = 1\n[[models]]\nname = \"a\"\n" + SIM
                          + "[models.options]\nnonsense = 3\n")  # fmt: skip
    (tmp_path / "prompts.json").unlink()
    code, out, err = run_cli("run", config)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: {config}: bogus_top: unknown key (expected one of: prompts, models, output, seed, "
        "samples, grace_seconds, defaults, retry, preflight, budget_usd, scorers)",
        f"error: {config}: models[0].options.nonsense: unknown key (expected one of: "
        f"{KNOWN_OPTIONS})",
        f"error: {config}: prompts: {tmp_path / 'prompts.json'}: no such file or folder",
    ]
    assert not (tmp_path / "out").exists()


def test_a_prompt_set_naming_an_unset_variable_is_told_once(tmp_path, run_cli):
    config = write_config(tmp_path, '[[models]]\nname = "a"\n' + SIM)
    config.write_text(config.read_text().replace('"prompts.json"', '"${UNSET_FOR_TEST}/p.json"'))
    code, _out, err = run_cli("run", config)
    assert code == 2
    assert err.splitlines() == [
        f"error: {config}: prompts: environment variable UNSET_FOR_TEST is not set"
    ]


def test_a_prompt_set_given_on_the_command_line_that_is_missing_names_the_flag(tmp_path, run_cli):
    config = write_config(tmp_path, '[[models]]\nname = "a"\n' + SIM)
    code, _out, err = run_cli("run", config, "--prompts", tmp_path / "nope.json")
    assert code == 2
    assert err.splitlines() == [
        f"error: --prompts: {tmp_path / 'nope.json'}: no such file or folder"
    ]


def test_a_transformers_device_may_name_one_gpu(tmp_path):
    config = write_config(
        tmp_path,
        '[[models]]\nname = "t"\nprovider = "transformers"\nmodel = "/nonexistent/model"\n'
        '[models.options]\ndevice = "cuda:1"\n',
    )
    with pytest.raises(InputError) as caught:
        prepare(config)
    assert str(caught.value).splitlines() == [
        f'{config}: models[0] (t): no model at "/nonexistent/model" (expected a folder with '
        "config.json)"
    ]


# `prompts` as a config may give it, and every line `run` must print for it.
PROMPTS = {
    "every problem of a [prompts] table is told": (
        'prompts = {path = "prompts.json", format = "xml", text = "q", template = "{q"}',
        [
            "prompts.format: expected one of 'auto', 'json', 'jsonl', 'csv', 'tsv', 'parquet', "
            "'arrow', got \"xml\"",
            "prompts.template: set either text or template, not both",
            "prompts.template: not a valid template: expected '}' before end of string",
        ],
    ),
    "prompts that are neither a path nor a table": (
        "prompts = 5",
        ["prompts: expected a path or a table, got 5"],
    ),
}


@pytest.mark.parametrize(("line", "expected"), PROMPTS.values(), ids=list(PROMPTS))
def test_every_mistake_in_the_prompts_key_is_told_at_once(tmp_path, run_cli, line, expected):
    config = write_config(tmp_path, '[[models]]\nname = "a"\n' + SIM)
    config.write_text(config.read_text().replace('prompts = "prompts.json"', line))
    code, out, err = run_cli("run", config)
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"error: {config}: {line}" for line in expected]


@pytest.mark.parametrize("verb", ["run", "score", "plan"])
def test_a_folder_given_as_the_config_says_what_to_give_instead(tmp_path, run_cli, verb):
    config = write_config(tmp_path, '[[models]]\nname = "a"\n' + SIM)
    output = tmp_path / "out"
    output.mkdir()
    (output / "ledger.jsonl").write_bytes(b"")
    assert run_cli(verb, tmp_path)[::2] == (
        2,
        f"error: {tmp_path}: a folder, not a config: give the TOML config itself "
        f"(here: {config.name})\n",
    )
    assert run_cli(verb, output)[::2] == (
        2,
        f"error: {output}: a folder, not a config: a run's output; give the run's TOML config "
        "(status, stats, export, query and report take this folder)\n",
    )
