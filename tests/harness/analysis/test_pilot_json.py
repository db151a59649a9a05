"""`harness export --format pilot-json`: the legacy pilot's combined results file."""

from __future__ import annotations

import json

from harness.ledger.writer import LedgerWriter
from tests.harness.analysis.ledgers import answer, failure, logprobs, score, write_scores

VARIANT = "sim-local@t0.7-43794d"


def run_line(run_id: str, variants: dict) -> dict:
    return {
        "type": "run",
        "schema": 2,
        "run_id": run_id,
        "prompts": {"path": "/data/prompts.json", "file_sha256": "ab" * 32},
        "variants": variants,
    }


IDENTITY = {
    "name": "sim-local",
    "version": 2,
    "provider": "simulated",
    "model": "sim-qwen-14b",
    "sampling": {"temperature": 0.7, "top_p": 1.0, "max_tokens": 256, "seed": 42, "stop": []},
    "options": {"top_logprobs": 5},
}


def test_pilot_json_has_metadata_runs_model_config_and_results(tmp_path, run_cli):
    with_logprobs = answer(VARIANT, "cve_001", token_logprobs=logprobs([-0.2, -1.7], [-0.05]))
    other = answer("api@t0", "cve_001", probe=True)
    writer = LedgerWriter(tmp_path / "ledger.jsonl")
    writer.append(run_line("r1", {VARIANT: IDENTITY}))
    for record in (with_logprobs, other, failure(VARIANT, "cve_002")):
        writer.append(record)
    writer.close()
    write_scores(tmp_path / "scores.jsonl", [score(with_logprobs, "claims", "exists")])
    code, out, err = run_cli("export", tmp_path, "--format", "pilot-json")
    assert code == 0, err
    assert f"Exported 3 job(s) to {tmp_path / 'pilot_results.json'}" in out
    document = json.loads((tmp_path / "pilot_results.json").read_text())
    assert list(document) == ["metadata", "runs"]
    metadata = document["metadata"]
    assert metadata["format"] == "harness pilot-json 1"
    assert metadata["run_ids"] == ["r1"]
    assert metadata["prompts_file"] == "/data/prompts.json"
    assert (metadata["total_runs"], metadata["total_results"]) == (2, 3)
    assert (metadata["successful"], metadata["failed"]) == (2, 1)
    assert metadata["scorers"] == ["claims"]
    local, api = document["runs"]
    assert local["model_config"] == {
        "name": "sim-local",
        "variant": VARIANT,
        "provider": "simulated",
        "model": "sim-qwen-14b",
        "temperature": 0.7,
        "top_p": 1.0,
        "max_tokens": 256,
        "seed": 42,
        "stop": [],
        "options": {"top_logprobs": 5},
    }
    answered, failed = local["results"]
    assert answered["response"] == with_logprobs["full_response"]
    assert answered["success"] is True and answered["error"] is None
    assert (answered["tokens_used"], answered["input_tokens"], answered["output_tokens"]) == (
        30,
        10,
        20,
    )
    assert answered["scores"] == {"claims": "exists"}
    assert answered["token_logprobs"] == [
        {
            "token_position": 0,
            "token": "t0",
            "logprob": -0.2,
            "top_tokens": ["t0_0", "t0_1"],
            "top_logprobs": [-0.2, -1.7],
        },
        {
            "token_position": 1,
            "token": "t1",
            "logprob": -0.05,
            "top_tokens": ["t1_0"],
            "top_logprobs": [-0.05],
        },
    ]
    assert failed["success"] is False and failed["response"] is None
    assert failed["error"] == "ServerError: 503 overloaded" and failed["tokens_used"] is None
    # a variant no run line names takes its config from its first record
    assert api["model_config"]["name"] == "api"
    assert api["model_config"]["temperature"] == 0.0 and api["model_config"]["options"] == {}
    assert api["results"][0]["is_synthetic_probe"] is True
    assert api["results"][0]["token_logprobs"] is None
    assert api["results"][0]["scores"] == {"claims": None}


def test_the_latest_run_line_naming_a_variant_gives_its_config(tmp_path, run_cli):
    changed = {**IDENTITY, "options": {"top_logprobs": 3}}
    writer = LedgerWriter(tmp_path / "ledger.jsonl")
    writer.append(run_line("r1", {VARIANT: IDENTITY}))
    writer.append(answer(VARIANT, "p0"))
    writer.append(run_line("r2", {VARIANT: changed, "other@t0": IDENTITY}))
    writer.append(answer(VARIANT, "p1"))
    writer.close()
    assert run_cli("export", tmp_path, "--format", "pilot-json")[0] == 0
    document = json.loads((tmp_path / "pilot_results.json").read_text())
    (run,) = document["runs"]
    assert run["model_config"]["options"] == {"top_logprobs": 3}
    assert [r["prompt_id"] for r in run["results"]] == ["p0", "p1"]
    assert document["metadata"]["run_ids"] == ["r1", "r2"]
