"""Config loading: typed values, defaults, `${ENV}`, variant ids, and errors that say where."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from harness.config.models import BatchPolicy, Defaults, ModelConfig
from harness.config.run_config import ConfigKeys, RetryPolicy, load_config
from harness.errors import ConfigError
from harness.fields import FieldError, from_table
from harness.run.prepare import prepare
from tests.bounds import unbounded_numbers
from tests.conftest import SIMPLE_MODEL, write_config


def config_error(tmp_path, body: str, environ=None) -> str:
    path = write_config(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return str(caught.value)


def test_models_inherit_defaults_and_override_them(tmp_path):
    body = """
[defaults]
temperatures = [0.0, 1]
max_tokens = 64

[[models]]
name = "a"
provider = "simulated"

[[models]]
name = "b"
provider = "simulated"
model = "b-2024"
temperatures = [0.3]
"""
    config = load_config(write_config(tmp_path, body), {})
    a, b = config.models
    assert a.temperatures == (0.0, 1.0) and a.max_tokens == 64 and a.model_id == "a"
    assert b.temperatures == (0.3,) and b.max_tokens == 64 and b.model_id == "b-2024"
    variants = prepare(config.path).variants
    assert [v.id.split("-")[0] for v in variants] == ["a@t0", "a@t1", "b@t0.3"]


def test_variant_id_is_stable_and_changes_with_sampling_parameters(tmp_path):
    first = prepare(write_config(tmp_path, SIMPLE_MODEL)).variants
    again = prepare(write_config(tmp_path, SIMPLE_MODEL)).variants
    changed = SIMPLE_MODEL.replace('provider = "simulated"', 'provider = "simulated"\ntop_p = 0.9')
    other = prepare(write_config(tmp_path, changed)).variants
    assert [v.id for v in first] == [v.id for v in again]
    assert not {v.id for v in first} & {v.id for v in other}


def test_env_references_are_filled_in_and_the_raw_table_keeps_them(tmp_path):
    body = SIMPLE_MODEL + '[models.options]\napi_key = "${SIM_KEY}"\nlatency_ms = 1\n'
    body = body.replace('name = "sim"', 'name = "${NAME:-sim}"')
    config = load_config(write_config(tmp_path, body), {"SIM_KEY": "s3cret"})
    assert config.models[0].options["api_key"] == "s3cret"
    assert config.models[0].name == "sim"
    assert config.raw["models"][0]["options"]["api_key"] == "${SIM_KEY}"


def test_unset_env_reference_names_the_variable_and_key(tmp_path):
    message = config_error(tmp_path, SIMPLE_MODEL.replace('"sim"', '"${NOPE}"', 1))
    assert message.endswith("models[0].name: environment variable NOPE is not set")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            SIMPLE_MODEL.replace("[0.0, 0.5]", '[0.0, "hot"]'),
            'models[0].temperatures[1]: expected a number, got "hot"',
        ),
        (
            SIMPLE_MODEL.replace("max_concurrency = 4", "max_concurrency = 0"),
            "models[0].max_concurrency: must be >= 1, got 0",
        ),
        (SIMPLE_MODEL + "colour = 1\n", "models[0].colour: unknown key"),
        (
            SIMPLE_MODEL.replace("max_attempts = 3", "max_attempts = true"),
            "retry.max_attempts: expected an integer, got true",
        ),
        ("samples = 0\n" + SIMPLE_MODEL, "samples: must be >= 1, got 0"),
        (
            SIMPLE_MODEL.replace('provider = "simulated"\n', ""),
            "models[0].provider: missing required key",
        ),
        (
            SIMPLE_MODEL + SIMPLE_MODEL.split("[[models]]")[1].join(["[[models]]", ""]),
            'models[1].name: duplicate model name "sim"',
        ),
        ("[defaults]\ntop_p = 2\n" + SIMPLE_MODEL, "defaults.top_p: must be <= 1, got 2"),
        ("", "models: missing required key"),
        (
            SIMPLE_MODEL.replace('name = "sim"', 'name = "sim+sft"'),
            "models[0].name: must be non-empty without '|', '@' or '+'",
        ),
        (
            SIMPLE_MODEL + "[models.adapters]\nsft = 3\n",
            "models[0].adapters.sft: expected the adapter's folder, a non-empty string",
        ),
        (
            SIMPLE_MODEL + '[models.adapters]\n"s ft" = "x"\n',
            "models[0].adapters.s ft: an adapter's name is 1-64 letters",
        ),
    ],
)
def test_bad_values_name_the_file_and_key_path(tmp_path, body, expected):
    message = config_error(tmp_path, body)
    assert message.startswith(str(tmp_path / "run.toml") + ": ")
    assert expected in message


def test_invalid_toml_names_the_file_and_line(tmp_path):
    message = config_error(tmp_path, "broken = = 1\n" + SIMPLE_MODEL)
    assert str(tmp_path / "run.toml") in message and "invalid TOML" in message
    assert "line 4" in message


def test_missing_config_file_is_an_input_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize("cls", [ConfigKeys, RetryPolicy, Defaults, ModelConfig, BatchPolicy])
def test_every_numeric_config_key_has_a_min_and_a_max(cls):
    assert unbounded_numbers(cls) == []


@dataclass(frozen=True)
class _Limits:
    finite: float = 0.0
    ceiling: float = field(default=0.0, metadata={"nonfinite": True})


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_floats_must_be_finite_unless_the_field_allows_it(value):
    with pytest.raises(FieldError, match=r"limits\.finite: must be a finite number"):
        from_table(_Limits, {"finite": value}, "limits")
    assert str(from_table(_Limits, {"ceiling": value}, "limits").ceiling) == str(value)


def test_a_models_batch_table_adds_to_the_defaults_one_and_mode_is_not_in_the_variant(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-TESTONLY-0000")
    model = '[[models]]\nname = "claude"\nprovider = "anthropic"\n'
    batched = '[defaults]\nmode = "batch"\n[defaults.batch]\npoll_interval = 5.0\n\n' + model
    batched += "[models.batch]\nmax_requests = 10\n"
    (config,) = load_config(write_config(tmp_path, batched)).models
    assert config.mode == "batch"
    assert config.batch_policy == BatchPolicy(max_requests=10, poll_interval=5.0)
    batch_ids = [v.id for v in prepare(write_config(tmp_path, batched)).variants]
    assert batch_ids == [v.id for v in prepare(write_config(tmp_path, model)).variants]


def test_every_number_a_config_table_takes_declares_its_range():
    import dataclasses
    import types
    import typing

    from harness.config import prices as cost
    from harness.config import run_config as config
    from harness.config import scorers as scorer_config
    from harness.prompts import sources as prompt_files

    def numeric(hint: object) -> bool:
        if typing.get_origin(hint) in (typing.Union, types.UnionType, tuple):
            return any(numeric(arg) for arg in typing.get_args(hint))
        return hint in (int, float)

    tables = [
        config.ConfigKeys, config.Defaults, config.ModelConfig, config.RetryPolicy,
        config.Preflight, config.BatchPolicy, prompt_files.PromptTable, cost.PriceKeys,
        cost.LongContextPriceKeys, cost.ShippedPriceKeys, scorer_config.JudgeScorerKeys,
        scorer_config.RulesScorerKeys, scorer_config.RefusalScorerKeys, scorer_config.Rule,
    ]  # fmt: skip
    unbounded = [
        f"{table.__name__}.{field.name}"
        for table in tables
        for field in dataclasses.fields(table)
        if numeric(typing.get_type_hints(table)[field.name])
        and not {"min", "max"} <= set(field.metadata)
    ]
    assert unbounded == []


def test_a_temperature_of_minus_zero_is_the_variant_of_zero(tmp_path):
    minus = load_config(write_config(tmp_path, SIMPLE_MODEL.replace("[0.0, 0.5]", "[-0.0]")), {})
    plus = load_config(write_config(tmp_path, SIMPLE_MODEL.replace("[0.0, 0.5]", "[0.0]")), {})
    assert minus.models[0].temperatures == (0.0,)
    assert str(minus.models[0].temperatures[0]) == "0.0"
    assert minus.models == plus.models
