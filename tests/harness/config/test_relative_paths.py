"""A relative path in a config resolves against the config file's folder, wherever the harness is
run from; a ledger left where a relative `output` resolved before (the working directory) is
named, not silently started anew."""

from __future__ import annotations

from tests.conftest import SIMPLE_MODEL, results, write_prompts


def _config(folder, output="results"):
    folder.mkdir(parents=True, exist_ok=True)
    write_prompts(folder / "prompts.json", 3)
    path = folder / "run.toml"
    path.write_text(f'prompts = "prompts.json"\noutput = "{output}"\n' + SIMPLE_MODEL)
    return path


def test_a_relative_output_lands_beside_the_config_wherever_it_is_run(
    tmp_path, run_cli, monkeypatch
):
    config = _config(tmp_path / "project")
    monkeypatch.chdir(tmp_path)
    assert run_cli("run", config)[0] == 0
    assert len(results(tmp_path / "project" / "results" / "ledger.jsonl")) == 6
    assert not (tmp_path / "results").exists()
    code, out, _ = run_cli("run", "project/run.toml")
    assert code == 0 and "nothing to do: 6 jobs already done" in out


def test_a_ledger_where_output_resolved_before_is_named_not_started_anew(
    tmp_path, run_cli, monkeypatch
):
    _config(tmp_path / "project")
    monkeypatch.chdir(tmp_path)
    config = "project/run.toml"
    assert run_cli("run", config, "--output", "results")[0] == 0  # where it used to go
    code, out, err = run_cli("run", config)
    assert code == 2 and out == ""
    assert (
        'output: "results" resolves against the config\'s folder (project/results), but its '
        'ledger is at results, where it resolved before: write output = "../results", or give '
        "--output results"
    ) in err
    assert not (tmp_path / "project" / "results").exists()
    assert run_cli("run", config, "--output", "results")[0] == 0  # the way out it names


def test_a_command_line_path_resolves_against_the_working_directory(tmp_path, run_cli, monkeypatch):
    config = _config(tmp_path / "project")
    write_prompts(tmp_path / "other.json", 2)
    monkeypatch.chdir(tmp_path)
    assert run_cli("run", config, "--prompts", "other.json", "--output", "mine")[0] == 0
    assert len(results(tmp_path / "mine" / "ledger.jsonl")) == 4


def test_a_dot_dot_in_output_is_folded_where_it_names_the_same_place(
    tmp_path, run_cli, monkeypatch
):
    _config(tmp_path / "configs", output="../results")
    elsewhere = tmp_path / "elsewhere" / "deep"
    _config(elsewhere, output="../results")
    (tmp_path / "linked").symlink_to(elsewhere)
    monkeypatch.chdir(tmp_path)
    out = run_cli("run", "configs/run.toml")[1]
    assert "Results: results/ledger.jsonl" in out
    out = run_cli("run", "linked/run.toml")[1]  # linked/.. is elsewhere, not here
    assert "Results: linked/../results/ledger.jsonl" in out
    assert (tmp_path / "elsewhere" / "results" / "ledger.jsonl").is_file()


def test_the_default_output_is_guarded_as_a_written_one(tmp_path, run_cli, monkeypatch):
    folder = tmp_path / "cfg"
    folder.mkdir()
    write_prompts(folder / "prompts.json", 3)
    (folder / "run.toml").write_text('prompts = "prompts.json"\n' + SIMPLE_MODEL)
    monkeypatch.chdir(tmp_path)
    assert run_cli("run", "cfg/run.toml", "--output", "results/run")[0] == 0  # the old default
    code, _, err = run_cli("run", "cfg/run.toml")
    assert code == 2 and "its ledger is at results/run, where it resolved before" in err
    assert not (folder / "results").exists()


def test_score_and_doctor_name_the_ledger_where_output_resolved_before(
    tmp_path, run_cli, monkeypatch
):
    _config(tmp_path / "project")
    monkeypatch.chdir(tmp_path)
    assert run_cli("run", "project/run.toml", "--output", "results")[0] == 0
    code, _, err = run_cli("score", "project/run.toml")
    assert code == 2 and "its ledger is at results, where it resolved before" in err
    code, out, _ = run_cli("doctor", "project/run.toml")
    assert code == 2 and "where it resolved" in " ".join(out.split())
