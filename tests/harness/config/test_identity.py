"""Results never mix: a variant's id covers every input that can change an answer, and a job is
done only from the prompt content it has now."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from harness.config.models import ModelConfig
from harness.config.run_config import make_variant
from harness.fields import answer_defining
from harness.providers import REGISTRY
from harness.providers.options import options_of
from tests.conftest import SIMPLE_MODEL, results, write_config

# What each provider may leave out of the variant id: how or where a request is made, never what
# it answers. A new option is answer-defining unless it is added here on purpose.
OPERATIONAL = {
    "simulated": {
        "latency_ms",
        "jitter_ms",
        "rate_limit_rate",
        "retry_after",
        "server_error_rate",
        "timeout_rate",
        "fatal_rate",
        "script",
        "batch_submit_ms",
        "batch_ready_ms",
        "batch_results_ms",
        "api_key",
    },
    "anthropic": {"api_key_env", "api_key", "timeout"},
    "gemini": {"api_key_env", "api_key", "timeout"},
    "openai": {"api_key_env", "api_key", "max_connections", "timeout"},
    "vllm": {
        "gpu_memory_utilization",
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "data_parallel_size",
        "distributed_executor_backend",
        "enable_prefix_caching",
        "max_num_seqs",
        "max_loras",
        "trust_remote_code",
        "enforce_eager",
        "chunked_prefill",
    },
    "transformers": {"device", "trust_remote_code", "batch_size"},
}


def changed(field: dataclasses.Field, hint: typing.Any, value: typing.Any) -> typing.Any:
    """Another valid value for an option."""
    if typing.get_origin(hint) is typing.Literal:
        return next(choice for choice in typing.get_args(hint) if choice != value)
    if value is None or hint in (int, float) or int in typing.get_args(hint):
        low = field.metadata.get("min", 0)
        return (value or low) + 1
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return f"{value}-other" if value else "other"
    if isinstance(value, tuple):
        return (*value, "ok")
    raise AssertionError(f"no other value for {field.name}")


def variant_id(provider: str, options: typing.Any) -> str:
    model = ModelConfig(name="m", provider=provider)
    return make_variant(model, 0.0, 1, answer_defining(options)).id


@pytest.mark.parametrize("provider", sorted(REGISTRY))
def test_every_answer_defining_option_changes_the_variant_id_and_no_other(provider):
    cls = options_of(provider)
    hints = typing.get_type_hints(cls)
    base = cls()
    for field in dataclasses.fields(cls):
        other = dataclasses.replace(
            base, **{field.name: changed(field, hints[field.name], getattr(base, field.name))}
        )
        same = variant_id(provider, base) == variant_id(provider, other)
        assert same == (field.name in OPERATIONAL[provider]), field.name


def test_two_models_differing_only_in_base_url_are_two_variants(tmp_path, run_cli, monkeypatch):
    from tests.harness.providers.servers import Loopback
    from tests.harness.providers.test_openai import openai_api

    monkeypatch.setenv("TEST_OPENAI_KEY", "k")
    body = """
[[models]]
name = "served"
provider = "openai"
model = "m"
[models.options]
base_url = "${SERVER}/v1"
api_key_env = "TEST_OPENAI_KEY"
"""
    config = write_config(tmp_path, body, prompts=3)
    with Loopback(openai_api) as first, Loopback(openai_api) as second:
        monkeypatch.setenv("SERVER", first.base_url)
        assert run_cli("run", config)[0] == 0
        monkeypatch.setenv("SERVER", second.base_url)
        assert run_cli("run", config)[0] == 0
        # The second server answered every job again: nothing was taken as done from the first.
        assert len(first.seen) == 3 and len(second.seen) == 3
    variants = {r["variant"] for r in results(tmp_path / "out" / "ledger.jsonl")}
    assert len(variants) == 2


def test_the_same_temperature_twice_is_rejected(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL.replace("[0.0, 0.5]", "[0.7, 0.7]"))
    code, _, err = run_cli("run", config)
    assert code == 2
    assert err == f"error: {config}: models[0].temperatures[1]: temperature 0.7 is listed twice\n"
    assert not (tmp_path / "out").exists()


def edit_prompt(path, index: int, text: str) -> None:
    data = json.loads(path.read_text())
    data["prompts"][index]["prompt"] = text
    path.write_text(json.dumps(data))


def test_an_edited_prompt_is_answered_again_and_the_run_says_so(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=4)
    assert run_cli("run", config)[0] == 0
    edit_prompt(tmp_path / "prompts.json", 2, "Does thing number 2 exist, really?")
    code, out, _ = run_cli("run", config)
    assert code == 0
    assert "2 job(s) were answered from other prompt content" in out
    records = results(tmp_path / "out" / "ledger.jsonl")
    again = [r for r in records[8:]]
    assert {r["prompt_id"] for r in again} == {"p002"} and len(again) == 2
    assert (
        again[0]["prompt_hash"]
        != next(r for r in records if r["prompt_id"] == "p002")["prompt_hash"]
    )
    assert run_cli("run", config)[1].startswith("nothing to do")


def test_another_prompts_file_with_the_same_ids_reuses_no_answer(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=3)
    assert run_cli("run", config)[0] == 0
    other = tmp_path / "other.json"
    items = [{"id": f"p{i:03d}", "prompt": f"Is CVE-2099-{i} real?"} for i in range(3)]
    other.write_text(json.dumps(items))
    code, out, _ = run_cli("run", config, "--prompts", other)
    assert code == 0 and "6 job(s) were answered from other prompt content" in out
    assert len(results(tmp_path / "out" / "ledger.jsonl")) == 12


def test_a_run_of_other_prompts_into_a_ledger_says_the_earlier_answers_stay(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=3)
    assert "holds answers to other prompts" not in run_cli("run", config)[1]
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"id": "new1", "prompt": "Is CVE-2099-1 real?"}]))
    out = run_cli("run", config, "--prompts", other)[1]
    ledger = tmp_path / "out" / "ledger.jsonl"
    assert (
        f"note: {ledger} holds answers to other prompts ({tmp_path / 'prompts.json'}): they "
        "stay beside this run's"
    ) in out
    assert "holds answers to other prompts" not in run_cli("run", config)[1]  # one it sent


def test_every_record_names_the_prompt_content_it_answered(tmp_path, run_cli):
    from harness.prompts.load import load_prompts

    config = write_config(tmp_path, SIMPLE_MODEL, prompts=3)
    run_cli("run", config)
    hashes = {p.id: p.hash for p in load_prompts(tmp_path / "prompts.json")}
    for record in results(tmp_path / "out" / "ledger.jsonl"):
        assert record["prompt_hash"] == hashes[record["prompt_id"]]


def test_an_option_answer_defining_when_set_leaves_the_ids_made_before_it_as_they_were():
    base = variant_id("simulated", options_of("simulated")())
    known = ModelConfig(name="m", provider="simulated")
    before = make_variant(known, 0.0, 1, {"output_tokens": 48, "top_logprobs": 0}).id
    assert base == before  # the ids of simulated models recorded before `judge` existed
    judging = variant_id("simulated", options_of("simulated")(judge=True))
    assert judging != base
