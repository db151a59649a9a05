"""`harness plan`: estimates before any answer, calibrated ones after a sample run, wall time
from a lane's limits, the JSON shape, bad input, and that it never writes or locks the ledger."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict

import pytest

from harness.ledger.lines import sealed
from harness.ledger.writer import LedgerWriter
from harness.run import calibration
from tests.conftest import SIMPLE_MODEL, results, write_config

PRICED = SIMPLE_MODEL + "[models.price]\ninput = 1.0\noutput = 2.0\n"
PROMPT_CHARS = sum(len(f"Does thing number {i} exist?") for i in range(6))


def plan(run_cli, config, *args):
    code, out, err = run_cli("plan", config, "--json", *args)
    assert (code, err) == (0, "")
    return json.loads(out)


def test_before_any_answer_the_plan_assumes_and_says_so(tmp_path, run_cli):
    data = plan(run_cli, write_config(tmp_path, PRICED, prompts=6))
    assert set(data) == {"config", "ledger", "sampled", "assumptions", "variants", "total", "notes"}
    assert [v["variant"].split("@")[0] for v in data["variants"]] == ["sim", "sim"]
    for variant in data["variants"]:
        assert (variant["jobs"], variant["pending"], variant["calibrated_on"]) == (6, 6, 0)
        assert variant["input_tokens"] == round(PROMPT_CHARS / 4)
        assert (variant["output_tokens"], variant["worst_output_tokens"]) == (6 * 512, 6 * 1024)
        expected = (variant["input_tokens"] * 1.0 + 6 * 512 * 2.0) / 1e6
        assert variant["cost_usd"] == pytest.approx(expected, rel=1e-3)
        assert variant["worst_cost_usd"] > variant["cost_usd"]
        assert variant["price"] == "config"
    assert data["total"]["pending"] == 12
    assert data["total"]["cost_usd"] == pytest.approx(2 * data["variants"][0]["cost_usd"])
    assert data["assumptions"]["chars_per_token"] == 4
    assert not (tmp_path / "out").exists()  # nothing written, not even the output directory


def test_after_a_sample_run_the_plan_is_calibrated_on_its_answers(tmp_path, run_cli):
    config = write_config(tmp_path, PRICED, prompts=6)
    before = plan(run_cli, config)["variants"]
    assert run_cli("run", config, "--limit", "4")[0] == 0
    after = plan(run_cli, config)["variants"]

    answers = defaultdict(lambda: defaultdict(list))
    latencies = defaultdict(list)
    for record in results(tmp_path / "out" / "ledger.jsonl"):
        answers[record["variant"]][record["prompt_category"]].append(record["tokens"]["output"])
        latencies[record["variant"]].append(record["elapsed_seconds"])
    for old, new in zip(before, after, strict=True):
        means = {c: statistics.mean(outputs) for c, outputs in answers[new["variant"]].items()}
        assert (new["pending"], new["calibrated_on"]) == (2, 4)
        # The two prompts left are one of category "a" and one of "b": each at its own mean.
        assert new["output_tokens"] == round(means["a"] + means["b"])
        sample_mean = statistics.mean(
            o for outputs in answers[new["variant"]].values() for o in outputs
        )
        assert abs(new["output_tokens"] / 2 - sample_mean) < abs(
            old["output_tokens"] / 6 - sample_mean
        )
        assert new["latency_seconds"] == pytest.approx(statistics.median(latencies[new["variant"]]))


def test_the_table_says_what_each_estimate_comes_from(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=6)
    code, out, _ = run_cli("plan", config)
    assert code == 0 and "assumptions" in out and "unknown" in out
    assert "total: unknown (sim: no price" in out
    run_cli("run", config, "--limit", "2")
    code, out, _ = run_cli("plan", config)
    assert code == 0 and "2 answers" in out and "calibrated on" in out


def test_wall_time_follows_the_slowest_of_concurrency_and_requests_per_minute(tmp_path, run_cli):
    body = SIMPLE_MODEL.replace(
        "max_concurrency = 4", "max_concurrency = 2\nrequests_per_minute = 60"
    )
    config = write_config(tmp_path, body, prompts=10)
    # 20 jobs at 60/min take 20 s; at 1 s each, two at a time, 10 s.
    assert plan(run_cli, config, "--latency", "1")["total"]["wall_seconds"] == pytest.approx(20)
    # At 5 s each, two at a time: 50 s.
    assert plan(run_cli, config, "--latency", "5")["total"]["wall_seconds"] == pytest.approx(50)


def test_tokens_per_minute_and_the_assumed_output_bound_a_lane(tmp_path, run_cli):
    body = SIMPLE_MODEL.replace("max_concurrency = 4", "tokens_per_minute = 600")
    config = write_config(tmp_path, body, prompts=10)
    data = plan(run_cli, config, "--latency", "0.01", "--output-tokens", "100")
    tokens = sum(v["input_tokens"] + v["output_tokens"] for v in data["variants"])
    assert data["variants"][0]["output_tokens"] == 1000
    assert data["total"]["wall_seconds"] == pytest.approx(tokens / 10, rel=1e-3)


def test_gpu_time_is_priced_by_the_lane_wall_time(tmp_path, run_cli):
    body = SIMPLE_MODEL.replace("max_concurrency = 4", "requests_per_minute = 60")
    body += "cost_per_gpu_hour = 36.0\n"
    data = plan(run_cli, write_config(tmp_path, body, prompts=10), "--latency", "0.1")
    # 20 jobs at 60/min: 20 s of a $36/hour GPU is $0.20, shared by the two variants.
    assert [v["cost_usd"] for v in data["variants"]] == pytest.approx([0.1, 0.1])
    assert {v["price"] for v in data["variants"]} == {"gpu"}


def test_prompts_over_the_long_context_threshold_are_priced_at_its_rates(tmp_path, run_cli):
    long = PRICED + "long_context = {above = 5, input = 10.0, output = 20.0}\n"
    data = plan(run_cli, write_config(tmp_path, long, prompts=6), "--output-tokens", "10")
    variant = data["variants"][0]  # every prompt is over 5 tokens long
    expected = (variant["input_tokens"] * 10.0 + 60 * 20.0) / 1e6
    assert variant["cost_usd"] == pytest.approx(expected, rel=1e-3)


def test_a_large_ledger_is_sampled_and_still_calibrates_every_variant(
    tmp_path, run_cli, monkeypatch
):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=40)
    run_cli("run", config)
    ledger = tmp_path / "out" / "ledger.jsonl"
    monkeypatch.setattr(calibration, "WHOLE", ledger.stat().st_size // 4)
    monkeypatch.setattr(calibration, "WINDOWS", 8)
    monkeypatch.setattr(calibration, "WINDOW", 2048)
    data = plan(run_cli, config)
    assert data["sampled"] is True
    seen = [v["calibrated_on"] for v in data["variants"]]
    assert all(0 < n < 40 for n in seen)


def test_plan_neither_writes_nor_locks_the_ledger(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=6)
    run_cli("run", config, "--limit", "3")
    ledger = tmp_path / "out" / "ledger.jsonl"
    before = (ledger.read_bytes(), ledger.stat().st_mtime_ns, sorted(ledger.parent.iterdir()))
    writer = LedgerWriter(ledger)  # a run holding the lock does not stop a plan
    try:
        assert plan(run_cli, config)["total"]["pending"] == 6
    finally:
        writer.close()
    assert (
        ledger.read_bytes(),
        ledger.stat().st_mtime_ns,
        sorted(ledger.parent.iterdir()),
    ) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("absent.toml",), "absent.toml: no such file"),
        (("{config}", "--models", "nonesuch"), "--models: no model named nonesuch"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, run_cli, args, expected):
    config = write_config(tmp_path, SIMPLE_MODEL)
    args = [arg.format(config=config) for arg in args]
    code, out, err = run_cli("plan", *args)
    assert code == 2 and out == "" and expected in err


def test_a_bad_latency_is_refused_by_the_parser(tmp_path, run_cli):
    with pytest.raises(SystemExit) as stopped:
        run_cli("plan", write_config(tmp_path, SIMPLE_MODEL), "--latency", "0")
    assert stopped.value.code == 2


def test_calibration_reads_only_successful_records_of_planned_variants(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=6)
    run_cli("run", config, "--limit", "2")
    ledger = tmp_path / "out" / "ledger.jsonl"
    first = {k: v for k, v in results(ledger)[0].items() if k != "crc"}
    other = first | {"variant": "other@t0-000000", "key": "other@t0-000000|p000|0"}
    failed = first | {"status": "error", "tokens": None}
    with ledger.open("ab") as file:
        file.write(b"not json\n" + sealed(other))
        file.write(sealed(failed) + b'{"key": "torn')
    code, out, err = run_cli("plan", config, "--json")
    assert code == 0 and "skipped 2 unreadable line(s)" in err  # on stderr: stdout is the JSON
    assert [v["calibrated_on"] for v in json.loads(out)["variants"]] == [2, 2]


def test_a_batch_model_is_left_out_of_the_wall_time_and_says_so(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("PLAN_TEST_KEY", "sk-ant-test-0000")
    body = SIMPLE_MODEL.replace(
        "max_concurrency = 4", "max_concurrency = 2\nrequests_per_minute = 60"
    ) + (
        '\n[[models]]\nname = "claude"\nprovider = "anthropic"\nmodel = "claude-sonnet-4-5"\n'
        'mode = "batch"\ntemperatures = [0.0]\nrequests_per_minute = 1\n'
        '[models.options]\napi_key_env = "PLAN_TEST_KEY"\n'
    )
    data = plan(run_cli, write_config(tmp_path, body, prompts=10), "--latency", "1")
    assert data["total"]["wall_seconds"] == pytest.approx(20)  # the live lane's alone
    assert any(n.startswith("claude: batch mode") for n in data["notes"])


CLAUDE = """
[[models]]
name = "claude"
provider = "anthropic"
model = "claude-sonnet-4-5"
temperatures = [0.0]
"""
HUB_MODEL = """
[[models]]
name = "open"
provider = "vllm"
model = "example-org/not-in-the-cache"
temperatures = [0.0]
"""


def test_plan_prices_api_models_without_their_keys_and_says_what_a_run_needs(
    tmp_path, run_cli, monkeypatch
):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    data = plan(run_cli, write_config(tmp_path, CLAUDE, prompts=6))
    (variant,) = data["variants"]
    assert variant["pending"] == 6 and variant["cost_usd"] > 0
    assert any(
        "claude: no API key: set the environment variable ANTHROPIC_API_KEY" in note
        for note in data["notes"]
    )
    code, _, err = run_cli("run", write_config(tmp_path, CLAUDE, prompts=6))
    assert code == 2 and "ANTHROPIC_API_KEY" in err  # a run still needs it


def test_plan_neither_imports_a_local_engine_nor_needs_its_weights(tmp_path):
    config = write_config(tmp_path, SIMPLE_MODEL + HUB_MODEL, prompts=3)
    script = (
        "import json, sys\n"
        "from harness.cli.main import main\n"
        f"code = main(['plan', {str(config)!r}, '--json'])\n"
        "print(json.dumps([code, 'vllm' in sys.modules]))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    *printed, last = done.stdout.splitlines()
    assert json.loads(last) == [0, False], done.stderr
    data = json.loads("\n".join(printed))
    assert [v["pending"] for v in data["variants"]] == [3, 3, 3]
    (note,) = [n for n in data["notes"] if n.startswith("open: ")]
    assert "example-org/not-in-the-cache" in note and "counted as not done" in note


def test_plan_notes_a_local_model_whose_weights_it_cannot_look_up(tmp_path, run_cli, monkeypatch):
    from harness.providers import _hub

    def no_hub(repo, revision):  # as when huggingface_hub is not installed
        raise ModuleNotFoundError("No module named 'huggingface_hub'", name="huggingface_hub")

    monkeypatch.setattr(_hub, "_cached", no_hub)
    data = plan(run_cli, write_config(tmp_path, HUB_MODEL, prompts=3))
    assert [v["pending"] for v in data["variants"]] == [3]
    (note,) = [n for n in data["notes"] if n.startswith("open: ")]
    assert "huggingface_hub is not installed" in note
