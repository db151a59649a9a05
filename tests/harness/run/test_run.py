"""Whole runs through the command line: resume, rerun of failures, status, fresh starts, secrets."""

from __future__ import annotations

import shlex
import subprocess
from collections import Counter

import pytest

from harness.ledger.lines import sealed
from tests.conftest import SIMPLE_MODEL, ledger_lines, results, write_config

TWO_MODELS = """
[retry]
max_attempts = 1
attempt_timeout = 2.0

[[models]]
name = "good"
provider = "simulated"
temperatures = [0.0, 0.7]

[[models]]
name = "flaky"
provider = "simulated"
[models.options]
fatal_rate = 0.3
server_error_rate = 0.3
"""


def test_run_records_every_job_once_and_exits_0(tmp_path, run_cli):
    code, out, _ = run_cli("run", write_config(tmp_path, SIMPLE_MODEL, prompts=5))
    assert code == 0
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert len(records) == 10 and {r["status"] for r in records} == {"ok"}
    assert Counter(r["key"] for r in records).most_common(1)[0][1] == 1
    assert "sim@t0-" in out and "sim@t0.5-" in out


def test_resume_skips_done_keys_and_runs_only_the_rest(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=6)
    assert run_cli("run", config, "--limit", "2")[0] == 0
    assert run_cli("run", config)[0] == 0
    lines = ledger_lines(tmp_path / "out" / "ledger.jsonl")
    runs = [line["run_id"] for line in lines if line.get("type") == "run"]
    records = [line for line in lines if line.get("type") != "run"]
    assert len(runs) == 2
    per_run = Counter(r["run_id"] for r in records)
    assert [per_run[run] for run in runs] == [4, 8]
    assert sorted(Counter(r["key"] for r in records).values()) == [1] * 12


def test_a_run_with_nothing_left_to_do_says_so_and_appends_nothing(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=6)
    run_cli("run", config)
    ledger = tmp_path / "out" / "ledger.jsonl"
    before = ledger.read_bytes()
    code, out, err = run_cli("run", config)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"nothing to do: 12 jobs already done ({ledger})"
    assert out.splitlines()[1].endswith(f"-m harness status {tmp_path / 'out'}")
    assert ledger.read_bytes() == before


def test_failed_jobs_exit_1_and_rerun_runs_only_them(tmp_path, run_cli):
    config = write_config(tmp_path, TWO_MODELS, prompts=20)
    assert run_cli("run", config)[0] == 1
    ledger = tmp_path / "out" / "ledger.jsonl"
    failed = {r["key"] for r in results(ledger) if r["status"] == "error"}
    assert failed and all(key.startswith("flaky@") for key in failed)

    config.write_text(config.read_text().replace("0.3", "0.0"))
    code, out, _ = run_cli("rerun", config)
    assert code == 0 and f"Rerunning {len(failed)} failed job(s)" in out
    lines = ledger_lines(ledger)
    rerun_id = [line["run_id"] for line in lines if line.get("type") == "run"][-1]
    rerun = [r for r in results(ledger) if r["run_id"] == rerun_id]
    assert {r["key"] for r in rerun} == failed and len(rerun) == len(failed)
    assert {r["status"] for r in rerun} == {"ok"}
    assert len(results(ledger)) == 60 + len(failed)  # the old failure lines stay as history


def test_rerun_narrows_by_error_type(tmp_path, run_cli):
    config = write_config(tmp_path, TWO_MODELS, prompts=20)
    run_cli("run", config)
    ledger = tmp_path / "out" / "ledger.jsonl"
    by_type = Counter(r["error"]["type"] for r in results(ledger) if r["error"])
    assert set(by_type) == {"FatalError", "ServerError"}
    config.write_text(config.read_text().replace("0.3", "0.0"))
    code, out, _ = run_cli("rerun", config, "--error-type", "ServerError")
    assert code == 0 and f"Rerunning {by_type['ServerError']} failed job(s)" in out
    code, out, _ = run_cli("rerun", config, "--error-type", "ServerError")
    assert code == 0 and "no failed jobs match" in out


def test_status_counts_done_failed_and_pending_from_the_ledger(tmp_path, run_cli):
    config = write_config(tmp_path, TWO_MODELS, prompts=20)
    run_cli("run", config)
    records = results(tmp_path / "out" / "ledger.jsonl")
    flaky_failed = sum(r["status"] == "error" for r in records)
    code, out, _ = run_cli("status", tmp_path / "out")
    assert code == 0
    row = next(line for line in out.splitlines() if "flaky@" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[1:4] == [str(20 - flaky_failed), str(flaky_failed), "0"]


def test_fresh_sets_the_old_ledger_aside_and_starts_again(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=3)
    run_cli("run", config)
    code, out, _ = run_cli("run", config, "--fresh")
    assert code == 0 and "the old one is now" in out
    ledgers = sorted(p.name for p in (tmp_path / "out").glob("ledger*.jsonl"))
    assert len(ledgers) == 2
    for name in ledgers:
        assert len(results(tmp_path / "out" / name)) == 6


def test_models_filter_runs_only_the_named_model(tmp_path, run_cli):
    config = write_config(tmp_path, TWO_MODELS, prompts=4)
    run_cli("run", config, "--models", "good")
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert {r["variant"].split("@")[0] for r in records} == {"good"}


def test_secrets_from_env_and_config_never_reach_any_output(tmp_path, run_cli, monkeypatch):
    env_secret, literal_secret = "sk-env-4c1d9e-TESTONLY", "sk-literal-77aa21-TESTONLY"
    monkeypatch.setenv("HARNESS_TEST_KEY", env_secret)
    body = SIMPLE_MODEL + '[models.options]\napi_key = "${HARNESS_TEST_KEY}"\n'
    body += '\n[[models]]\nname = "other"\nprovider = "simulated"\n'
    body += f'[models.options]\napi_key = "{literal_secret}"\nfatal_rate = 0.5\n'
    config = write_config(tmp_path, body, prompts=6)
    outputs = [
        run_cli("run", config),
        run_cli("rerun", config),
        run_cli("status", tmp_path / "out"),
    ]
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert files
    for secret in (env_secret, literal_secret):
        assert not any(secret.encode() in p.read_bytes() for p in files)
        assert not any(secret in out + err for _, out, err in outputs)
    run_line = ledger_lines(tmp_path / "out" / "ledger.jsonl")[0]
    assert run_line["config"]["models"][0]["options"]["api_key"] == "[redacted]"


FLAKY_PAIR = """
[retry]
max_attempts = 1
attempt_timeout = 2.0

[[models]]
name = "one"
provider = "simulated"
[models.options]
fatal_rate = 0.5

[[models]]
name = "two"
provider = "simulated"
[models.options]
fatal_rate = 0.5
"""


def failed_per_variant(ledger) -> Counter:
    """Jobs whose latest record failed, per variant."""
    latest = {r["key"]: r for r in results(ledger)}
    return Counter(r["variant"] for r in latest.values() if r["status"] == "error")


def test_rerun_of_failures_whose_variants_the_config_lacks_exits_2_naming_them(tmp_path, run_cli):
    config = write_config(tmp_path, FLAKY_PAIR, prompts=20)
    assert run_cli("run", config)[0] == 1
    ledger = tmp_path / "out" / "ledger.jsonl"
    failed, before = failed_per_variant(ledger), ledger.read_bytes()
    renamed = FLAKY_PAIR.replace('"one"', '"three"').replace('"two"', '"four"')
    config = write_config(tmp_path, renamed, prompts=20)
    code, out, err = run_cli("rerun", config)
    assert code == 2 and "Rerunning" not in out
    names = ", ".join(f"{variant} ({count})" for variant, count in sorted(failed.items()))
    assert err == (
        f"error: {config}: {sum(failed.values())} failed job(s) belong to variants not in this "
        f"run: {names}\n"
    )
    assert ledger.read_bytes() == before


def test_rerun_counts_only_the_jobs_the_config_can_run_and_names_the_others(tmp_path, run_cli):
    config = write_config(tmp_path, FLAKY_PAIR, prompts=20)
    run_cli("run", config)
    ledger = tmp_path / "out" / "ledger.jsonl"
    failed = failed_per_variant(ledger)
    (one,) = [variant for variant in failed if variant.startswith("one@")]
    (two,) = [variant for variant in failed if variant.startswith("two@")]
    only_two = FLAKY_PAIR.replace('"one"', '"three"').replace("fatal_rate = 0.5", "")
    code, out, _ = run_cli("rerun", write_config(tmp_path, only_two, prompts=20))
    assert f"Rerunning {failed[two]} failed job(s)." in out
    assert f"{failed[one]} failed job(s) belong to variants not in this run: {one} " in out
    assert code == 1  # the failures it could not rerun are still there
    assert failed_per_variant(ledger) == Counter({one: failed[one]})


def test_rerun_rejects_an_unknown_error_type_listing_the_known_ones(tmp_path, run_cli, capsys):
    config = write_config(tmp_path, FLAKY_PAIR)
    with pytest.raises(SystemExit) as exited:
        run_cli("rerun", config, "--error-type", "Bogus")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'Bogus'" in err
    for known in ("RateLimited", "ServerError", "AttemptTimeout", "ConnectionFailed", "FatalError"):
        assert known in err
    assert not (tmp_path / "out").exists()


def test_a_run_ends_with_where_results_are_and_a_rerun_line_per_error_type_that_works(
    tmp_path, run_cli
):
    config = write_config(tmp_path, TWO_MODELS, prompts=20)
    output = tmp_path / "elsewhere"
    code, out, _ = run_cli("run", config, "--output", output, "--limit", "12")
    assert code == 1
    ledger = output / "ledger.jsonl"
    failed = Counter(r["error"]["type"] for r in results(ledger) if r["error"])
    assert set(failed) == {"FatalError", "ServerError"}
    lines = out.splitlines()
    results_line = next(line for line in lines if line.startswith("Results: "))
    assert results_line.startswith(f"Results: {ledger} (see them with: ")
    assert results_line.endswith(f"-m harness status {output})")
    still = next(line for line in lines if line.startswith("Still failing: "))
    assert all(f"{count} {kind}" in still for kind, count in failed.items())
    retry = next(line for line in lines if "--error-type ServerError" in line)
    assert retry.endswith(f"  # {failed['ServerError']} job(s)")

    config.write_text(config.read_text().replace("0.3", "0.0"))
    rerun = subprocess.run(shlex.split(retry, comments=True), capture_output=True, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert f"Rerunning {failed['ServerError']} failed job(s)." in rerun.stdout.decode()
    latest = {r["key"]: r for r in results(ledger)}
    still_failed = Counter(r["error"]["type"] for r in latest.values() if r["error"])
    assert still_failed == Counter(FatalError=failed["FatalError"])


def test_rerun_without_a_ledger_exits_2_and_creates_none(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL)
    code, _, err = run_cli("rerun", config, "--output", tmp_path / "typo")
    assert code == 2 and "no such ledger" in err
    assert not (tmp_path / "typo").exists()


def test_failures_of_a_type_no_option_names_get_a_rerun_line_that_works(tmp_path, run_cli):
    config = write_config(tmp_path, TWO_MODELS, prompts=6)
    run_cli("run", config)
    ledger = tmp_path / "out" / "ledger.jsonl"
    record = next(r for r in results(ledger) if r["error"])
    with ledger.open("ab") as file:  # a failure whose type no --error-type names
        file.write(sealed({**record, "error": {**record["error"], "type": "InternalError"}}))
    _, out, _ = run_cli("rerun", config, "--error-type", "FatalError")
    lines = out.splitlines()
    assert "InternalError" in next(line for line in lines if line.startswith("Still failing"))
    catch_all = next(line for line in lines if line.endswith("# every failed job"))
    assert "--error-type" not in catch_all
    rerun = subprocess.run(shlex.split(catch_all, comments=True), capture_output=True, check=False)
    assert rerun.returncode in (0, 1), rerun.stderr.decode()
