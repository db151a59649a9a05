"""LoRA adapters as variants, through the transformers backend and PEFT, on the tiny Llama with
tiny adapters made by PEFT on the spot; and the mistakes that stop a run before it starts."""

from __future__ import annotations

import shutil

import anyio
import pytest

from tests.conftest import ledger_lines, results, write_config
from tests.harness.providers.local.conftest import with_adapters

pytest.importorskip("peft")

from harness.api.types import Message, Request, SamplingParams
from harness.config.adapters import content_hash, read_adapter
from harness.errors import FatalError
from harness.ledger.record import utc_timestamp
from harness.ledger.writer import LedgerWriter
from harness.providers.transformers import TransformersOptions, TransformersProvider
from tests.harness.providers.local.test_transformers import hf_model, together
from tests.harness.providers.local.tiny_model import build_tiny_adapter
from tests.harness.providers.local.truth import Truth


def text_of(prompt_id: str) -> str:
    return f"Does thing number {prompt_id[1:].lstrip('0') or '0'} exist?"


def answers(ledger) -> dict[str, dict]:
    return {r["key"]: r for r in results(ledger)}


def run_in(tmp_path, run_cli, name: str, body: str, prompts: int = 3) -> dict[str, dict]:
    (tmp_path / name).mkdir()
    config = write_config(tmp_path / name, body, prompts=prompts)
    code, out, err = run_cli("run", config)
    assert code == 0, out + err
    return answers(tmp_path / name / "out" / "ledger.jsonl")


def test_each_adapter_answers_as_peft_does_and_as_it_does_alone(
    tmp_path, run_cli, tiny_llama, tiny_adapters
):
    both = run_in(
        tmp_path, run_cli, "both", with_adapters(hf_model("tiny", tiny_llama), tiny_adapters)
    )
    assert len(both) == 18 and {r["status"] for r in both.values()} == {"ok"}
    labels = {r["variant"].split("@")[0]: r["adapter"] for r in both.values()}
    assert labels == {"tiny": None, "tiny+sft": "sft", "tiny+dpo": "dpo"}

    run_line = ledger_lines(tmp_path / "both" / "out" / "ledger.jsonl")[0]
    covered = {v: entry.get("adapter") for v, entry in run_line["variants"].items()}
    for variant, adapter in covered.items():
        if adapter is not None:
            folder = tiny_adapters[adapter["name"]]
            assert variant.startswith(f"tiny+{adapter['name']}@")
            assert adapter["path"] == str(folder) and adapter["sha256"] == content_hash(folder)
            assert adapter["rank"] == 8 and adapter["base_model"] == str(tiny_llama)

    truth = Truth(tiny_llama, tiny_adapters)
    greedy = [r for r in both.values() if r["sampling_params"]["temperature"] == 0]
    per_prompt: dict[str, set[str]] = {}
    for record in greedy:
        tokens = [entry["token_id"] for entry in record["token_logprobs"]]
        assert tokens == truth.greedy(text_of(record["prompt_id"]), 12, record["adapter"])
        per_prompt.setdefault(record["prompt_id"], set()).add(record["full_response"])
    assert all(len(texts) == 3 for texts in per_prompt.values())  # each adapter answers its own

    alone = run_in(
        tmp_path,
        run_cli,
        "alone",
        with_adapters(hf_model("tiny", tiny_llama), {"sft": tiny_adapters["sft"]}),
    )
    plain = run_in(tmp_path, run_cli, "plain", hf_model("tiny", tiny_llama))
    assert len(alone) == 12 and len(plain) == 6
    for key, record in {**alone, **plain}.items():  # the same variants, the same answers
        assert record["full_response"] == both[key]["full_response"]


def provider_with(tiny_llama, adapters: dict) -> TransformersProvider:
    options = TransformersOptions(path=str(tiny_llama), dtype="float32", top_logprobs=0)
    read = [read_adapter(name, str(folder)) for name, folder in adapters.items()]
    return TransformersProvider("tiny", options, adapters=read)


def request(prompt: int, seed: int, adapter: str | None, temperature: float = 0.7) -> Request:
    sampling = SamplingParams(temperature, 1.0, 8, seed)
    message = (Message("user", f"Does thing number {prompt} exist?"),)
    return Request(f"{adapter}-{prompt}", "tiny", message, sampling, adapter=adapter)


def test_a_batch_holds_one_adapter_and_answers_as_each_request_alone(tiny_llama, tiny_adapters):
    from peft.tuners.lora import LoraLayer

    requests = [request(p, 10 + p, a, 0.0) for a in (None, "sft", "dpo") for p in (1, 2)]

    async def scenario() -> tuple[list[str], list[str], list[tuple[int, str | None]]]:
        provider = provider_with(tiny_llama, tiny_adapters)
        await provider.start()
        layer = next(m for m in provider._model.modules() if isinstance(m, LoraLayer))
        ours = {peft: name for name, peft in provider._adapters.items()}
        batches: list[tuple[int, str | None]] = []

        def on_forward(module, args, kwargs):
            if kwargs["input_ids"].shape[1] > 1:  # the prompt's pass, once per batch
                active = None if layer.disable_adapters else ours[layer.active_adapters[0]]
                batches.append((kwargs["input_ids"].shape[0], active))

        base = provider._model.get_base_model()
        base.register_forward_pre_hook(on_forward, with_kwargs=True)
        alone = [(await provider.generate(r)).text for r in requests]
        mixed = await together(provider, requests[::-1])
        await provider.aclose()
        return alone, mixed[::-1], batches

    alone, mixed, batches = anyio.run(scenario)
    assert alone == mixed and len(set(alone)) == 6
    assert [active for _, active in batches[:6]] == [None, None, "sft", "sft", "dpo", "dpo"]
    assert len(batches) == 9 and set(batches[6:]) == {(2, None), (2, "sft"), (2, "dpo")}


def test_an_adapter_edited_after_planning_stops_the_model_at_load(
    tmp_path, tiny_llama, tiny_adapters
):
    folder = shutil.copytree(tiny_adapters["sft"], tmp_path / "sft")
    provider = provider_with(tiny_llama, {"sft": folder})
    build_tiny_adapter(tiny_llama, folder, seed=9)

    async def start() -> None:
        await provider.start()

    with pytest.raises(FatalError, match="sft changed on disk after the run was planned"):
        anyio.run(start)


def test_new_weights_at_the_same_path_are_a_new_variant(
    tmp_path, run_cli, tiny_llama, tiny_adapters
):
    folder = shutil.copytree(tiny_adapters["sft"], tmp_path / "sft")
    adapters = {"sft": folder, "dpo": tiny_adapters["dpo"]}
    config = write_config(
        tmp_path, with_adapters(hf_model("tiny", tiny_llama), adapters), prompts=2
    )
    assert run_cli("run", config)[0] == 0
    build_tiny_adapter(tiny_llama, folder, seed=9)  # retrained in place
    assert run_cli("run", config)[0] == 0
    records = results(tmp_path / "out" / "ledger.jsonl")
    first, second = records[:12], records[12:]
    old = {r["variant"] for r in first}
    assert len(second) == 4 and {r["adapter"] for r in second} == {"sft"}
    assert not {r["variant"] for r in second} & old  # answered again, as new variants
    assert run_cli("run", config)[1].startswith("nothing to do")


def fail_every_job(ledger) -> None:
    """Append a failure after every record, as a run whose jobs all failed would."""
    writer = LedgerWriter(ledger, fresh=False)
    for record in results(ledger):
        error = {"type": "ServerError", "message": "503", "retryable": True, "status": 503}
        writer.append({**record, "status": "error", "error": error, "timestamp": utc_timestamp()})
    writer.close()


def test_rerun_picks_an_adapters_variants_by_name_and_a_models_with_its_adapters(
    tmp_path, run_cli, tiny_llama, tiny_adapters
):
    body = with_adapters(hf_model("tiny", tiny_llama, temperatures="[0.0]"), tiny_adapters)
    config = write_config(tmp_path, body, prompts=2)
    assert run_cli("run", config)[0] == 0
    fail_every_job(tmp_path / "out" / "ledger.jsonl")
    code, out, _ = run_cli("rerun", config, "--variant", "tiny+sft")
    assert code == 0 and "Rerunning 2 failed job(s)." in out
    code, out, _ = run_cli("rerun", config, "--variant", "tiny")
    assert code == 0 and "Rerunning 4 failed job(s)." in out


def refused(tmp_path, run_cli, body: str) -> str:
    """Run a config that must stop at preflight: exit 2, one line, nothing written."""
    code, out, err = run_cli("run", write_config(tmp_path, body))
    assert code == 2 and len(err.splitlines()) == 1, out + err
    assert not (tmp_path / "out").exists()
    return err


def test_adapter_mistakes_stop_the_run_before_it_starts(
    tmp_path, run_cli, tiny_llama, tiny_adapters
):
    model = hf_model("tiny", tiny_llama)
    config = tmp_path / "run.toml"
    where = f"error: {config}: models[0].adapters"

    err = refused(tmp_path, run_cli, with_adapters(model, {"sft": tmp_path / "nowhere"}))
    assert err.startswith(f"{where}.sft: no adapter at") and "no such folder" in err

    (tmp_path / "empty").mkdir()
    err = refused(tmp_path, run_cli, with_adapters(model, {"sft": tmp_path / "empty"}))
    assert err.startswith(f"{where}.sft: no adapter at") and "adapter_config.json" in err

    other = build_tiny_adapter(tiny_llama, tmp_path / "narrow", seed=3, hidden_size=64)
    err = refused(tmp_path, run_cli, with_adapters(model, {"narrow": other}))
    assert err.startswith(f"{where}.narrow: does not fit the model") and "size mismatch" in err

    err = refused(tmp_path, run_cli, with_adapters(model, {"a|b": tiny_adapters["sft"]}))
    assert err.startswith(f"{where}.a|b: an adapter's name is")

    simulated = '\n[[models]]\nname = "sim"\nprovider = "simulated"\n'
    err = refused(tmp_path, run_cli, with_adapters(simulated, {"sft": tiny_adapters["sft"]}))
    assert err == f'{where}: provider "simulated" cannot serve LoRA adapters\n'


def test_an_adapter_made_for_another_base_is_served_with_a_warning(
    tmp_path, run_cli, tiny_llama, tiny_adapters
):
    import json

    folder = shutil.copytree(tiny_adapters["sft"], tmp_path / "sft")
    settings = json.loads((folder / "adapter_config.json").read_text())
    settings["base_model_name_or_path"] = "meta-llama/Llama-3.1-8B"
    (folder / "adapter_config.json").write_text(json.dumps(settings))
    body = with_adapters(hf_model("tiny", tiny_llama, temperatures="[0.0]"), {"sft": folder})
    code, out, _ = run_cli("run", write_config(tmp_path, body, prompts=1))
    assert code == 0
    assert "adapter sft" in out and "was made for meta-llama/Llama-3.1-8B" in out
