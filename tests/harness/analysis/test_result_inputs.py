"""What `stats` and `export` refuse, and what they say of the ledger's unreadable lines: a
target that is one of their inputs, a scores path that is not a file, a ledger with no records;
torn, damaged and odd lines are counted, as `status` counts them."""

from __future__ import annotations

import pytest

from tests.harness.analysis.ledgers import answer, failure, score, write_ledger, write_scores


@pytest.fixture
def output(tmp_path):
    records = [answer("a@t0", f"p{i}") for i in range(3)]
    write_ledger(tmp_path / "out" / "ledger.jsonl", records)
    write_scores(tmp_path / "out" / "scores.jsonl", [score(records[0], "claims", "yes")])
    return tmp_path / "out"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ledger.jsonl", "a ledger"),
        ("scores.jsonl", "a scores file"),
        ("./ledger.jsonl", "a ledger"),
    ],
)
@pytest.mark.parametrize(
    "verb", [("stats", "--json"), ("export", "--format", "csv", "--to")], ids=["stats", "export"]
)
@pytest.mark.parametrize("force", [[], ["--force"]], ids=["", "force"])
def test_a_target_that_is_an_input_is_refused_and_nothing_is_touched(
    output, run_cli, name, kind, verb, force
):
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    target = output / name
    code, _, err = run_cli(verb[0], output, *verb[1:], target, *force)
    assert code == 2
    option = f"{verb[0]} {verb[-1]}"
    assert err == f"error: {target}: is {kind}, which {option} never replaces; name another file\n"
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before


@pytest.mark.parametrize("verb", [("stats",), ("export", "--format", "parquet")])
def test_a_scores_path_that_is_a_folder_is_one_line_exit_2(output, run_cli, verb):
    (output / "scores.jsonl").unlink()
    (output / "scores.jsonl").mkdir()
    code, _, err = run_cli(*verb[:1], output, *verb[1:])
    assert (code, err) == (
        2,
        f"error: {output / 'scores.jsonl'}: is not a file (the scores file must be one)\n",
    )


def test_unreadable_ledger_lines_are_counted_by_stats_and_export(output, run_cli):
    ledger = output / "ledger.jsonl"
    good = ledger.read_bytes()
    damaged = good.splitlines(keepends=True)[1].replace(b"p1", b"p9")  # its checksum fails
    ledger.write_bytes(good + damaged + b'{"key": null}\n[1, 2]\nnot json\n{"key":"a@t0|p7|0","sta')
    code, out, _ = run_cli("stats", output, "--resamples", "0")
    assert code == 0
    assert f"{ledger}: skipped 5 unreadable line(s)" in " ".join(out.split())
    code, out, _ = run_cli("export", output, "--format", "jsonl")
    assert code == 0
    assert f"{ledger}: skipped 5 unreadable line(s)" in " ".join(out.split())
    assert len((output / "answers.jsonl").read_bytes().splitlines()) == 3


def test_exporting_a_ledger_without_records_is_exit_2_and_writes_nothing(tmp_path, run_cli):
    ledger = write_ledger(tmp_path / "ledger.jsonl", [])
    ledger.write_bytes(b'{"type":"run","run_id":"x"}\n')
    code, _, err = run_cli("export", tmp_path, "--format", "parquet")
    assert (code, err) == (2, f"error: {ledger}: no result records in it\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.jsonl"]


@pytest.mark.parametrize("verb", [("stats", "--resamples", "0"), ("status",)])
def test_markup_and_control_characters_in_the_data_print_as_text(tmp_path, run_cli, verb):
    variant, category = "a[/]@t0\x1b[31m", "cat[bold]\x00\x07"
    records = [answer(variant, f"p{i}", category=category) for i in range(3)]
    records.append(failure(variant, "p3", category=category))  # stats shows failures alone
    write_ledger(tmp_path / "ledger.jsonl", records)
    code, out, _ = run_cli(verb[0], tmp_path, *verb[1:])
    assert code == 0
    assert "\x1b" not in out and "\x00" not in out and "\x07" not in out
    assert "a[/]@t0\\x1b[31m" in out
    if verb[0] == "stats":
        assert "cat[bold]\\x00\\x07" in out
