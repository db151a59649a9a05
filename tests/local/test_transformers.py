"""The transformers backend on the same tiny Llama: batched, top-5 logprobs, resumable."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import crash, harness_process, results, write_config
from tests.harness.test_crash import count_records, wait_for_records
from tests.local.conftest import local_model

pytest.importorskip("transformers")
pytest.importorskip("torch")


def hf_model(name: str, path, *, chat: bool = True, temperatures="[0.0, 0.7]") -> str:
    body = local_model(name, path, chat=chat, temperatures=temperatures)
    body = body.replace('provider = "vllm"', 'provider = "transformers"')
    for line in ("max_model_len = 256\n", "enforce_eager = true\n"):
        body = body.replace(line, "")
    return body


def test_records_carry_top5_logprobs_exact_counts_and_reproduce(tmp_path, run_cli, tiny_llama):
    body = hf_model("hf", tiny_llama) + hf_model(
        "hf-raw", tiny_llama, chat=False, temperatures="[0.0]"
    )
    config = write_config(tmp_path, body, prompts=6)
    assert run_cli("run", config)[0] == 0
    first = {r["key"]: r for r in results(tmp_path / "out" / "ledger.jsonl")}
    assert len(first) == 18

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    for record in first.values():
        entries = record["token_logprobs"]
        assert len(entries) == record["tokens"]["output"] <= 12
        assert all(len(entry["top"]) == 5 for entry in entries)
        text = f"Does thing number {record['prompt_id'][1:].lstrip('0') or '0'} exist?"
        if record["variant"].startswith("hf-raw@"):
            assert record["tokens"]["input"] == len(tokenizer.encode(text))
        else:
            chat = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
            )
            assert record["tokens"]["input"] == len(
                tokenizer.encode(chat, add_special_tokens=False)
            )
        greedy = record["sampling_params"]["temperature"] == 0
        if greedy:  # the chosen token is the most likely one
            assert all(entry["top"][0][0] == entry["token"] for entry in entries)

    assert run_cli("run", config, "--fresh")[0] == 0
    again = {r["key"]: r for r in results(tmp_path / "out" / "ledger.jsonl")}
    assert {k: r["full_response"] for k, r in again.items()} == {
        k: r["full_response"] for k, r in first.items()
    }


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_gives_one_success_per_key(tmp_path, tiny_llama):
    body = hf_model("hf", tiny_llama).replace("max_tokens = 12", "max_tokens = 64")
    body = body.replace("max_concurrency = 64", "max_concurrency = 4")
    config = write_config(tmp_path, body, prompts=60)
    ledger = tmp_path / "out" / "ledger.jsonl"
    process = harness_process("run", str(config))
    wait_for_records(ledger, 8, process, deadline=120)
    killed = process.poll() is None
    crash(process)
    assert killed and 0 < count_records(ledger) < 120
    process = harness_process("run", str(config))
    assert process.wait(timeout=300) == 0
    ok = Counter(r["key"] for r in results(ledger) if r["status"] == "ok")
    assert len(ok) == 120 and set(ok.values()) == {1}
