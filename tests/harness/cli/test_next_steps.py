"""Every next step a verb prints works as printed and keeps the output the user named: from a run
of the demo into a folder of the user's choosing, each command line printed is run in turn (and
each one those print), and each exits 0 on that same folder."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.harness.analysis.test_annotation import read_sheet, write_sheet

# Where a harness command line begins in what a verb prints; it ends at the end of its
# sentence: a `;`, `)` or `,` outside quotes (`shlex`), or the end of the line.
_HINT = re.compile(r"\S*python\S* -m harness ")
_END = ";),"
# Hints that name what the user must fill in, run with the same words in the test's place.
_PLACEHOLDERS = {"CONFIG": "demo.toml"}


def _hints(out: str) -> list[list[str]]:
    found = []
    for line in out.splitlines():
        for rest in _HINT.split(line)[1:]:
            lexer = shlex.shlex(rest, posix=True, punctuation_chars=_END)
            lexer.whitespace_split = True
            words = []
            for token in lexer:
                if token[0] in _END:
                    break
                words.append(token)
            found.append(words)
    return found


def test_every_printed_next_step_runs_as_printed_on_the_users_output(
    tmp_path, run_cli, monkeypatch
):
    shutil.copytree(REPO / "configs" / "prompts", tmp_path / "prompts")
    shutil.copy(REPO / "configs" / "demo.toml", tmp_path / "demo.toml")
    monkeypatch.chdir(tmp_path)
    output = str(tmp_path / "elsewhere" / "pilot")
    todo = [
        ["run", "demo.toml", "--output", output],
        ["report", output, "--out", str(tmp_path / "before.html")],  # no scores yet: says how
        ["query", output, "SELECT variant, count(*) AS n FROM answers GROUP BY variant"],
    ]
    done: list[list[str]] = []
    while todo:
        argv = [_PLACEHOLDERS.get(word, word) for word in todo.pop(0)]
        if argv in done:
            continue
        if argv[:2] == ["annotate", "import"]:  # the rater's part: the sheets filled in
            for sheet in map(Path, argv[3:]):
                rows = read_sheet(sheet)
                write_sheet(sheet, [rows[0], *([*row[:3], "denies", *row[4:]] for row in rows[1:])])
        code, out, err = run_cli(*argv)
        # The demo's run ends with a few jobs failed for good (its injected 400s): its rerun
        # line, followed below, brings them in.
        assert code == (1 if argv[0] == "run" else 0), (argv, err)
        done.append(argv)
        for hint in _hints(out):
            assert output in hint, (argv, hint)  # the user's folder, never the config's own
            todo.append(hint)
    verbs = {argv[0] for argv in done}
    assert {"run", "rerun", "status", "score", "stats", "report", "export", "annotate"} <= verbs
    assert "query" in verbs
    assert not (tmp_path / "results").exists()  # the config's own output was never written


@pytest.fixture
def demo(tmp_path, monkeypatch):
    """A folder with the demo's config and prompts, made the working directory."""
    shutil.copytree(REPO / "configs" / "prompts", tmp_path / "prompts")
    shutil.copy(REPO / "configs" / "demo.toml", tmp_path / "demo.toml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_status_of_a_ledger_without_results_suggests_nothing_that_would_fail(demo, run_cli):
    assert run_cli("run", "demo.toml", "--output", "out")[0] == 1  # the demo's injected 400s
    ledger = demo / "out" / "ledger.jsonl"
    ledger.write_bytes(ledger.read_bytes().splitlines(keepends=True)[0])  # the run line alone
    code, out, err = run_cli("status", "out")
    assert (code, err) == (0, "") and _hints(out) == []


def test_status_of_a_run_stopped_early_says_how_to_answer_the_jobs_left(demo, run_cli):
    assert run_cli("run", "demo.toml", "--output", "out")[0] == 1  # the demo's injected 400s
    ledger = demo / "out" / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    ledger.write_bytes(b"".join(lines[:-10]))  # as a run killed before its last 10 records
    code, out, err = run_cli("status", "out")
    assert (code, err) == (0, "")
    assert "10 job(s) not answered yet" in out
    again = [hint for hint in _hints(out) if hint[0] == "run"]
    assert again == [["run", str(demo / "demo.toml"), "--output", "out"]]
    assert run_cli(*again[0])[0] in (0, 1)  # the demo's 400s fail for good: exit 1
    assert "not answered yet" not in run_cli("status", "out")[1]


def test_status_of_several_ledgers_says_to_merge_them_for_stats_and_report(demo, run_cli):
    assert run_cli("run", "demo.toml", "--output", "out", "--limit", "3")[0] in (0, 1)
    shutil.copytree(demo / "out", demo / "again")
    code, out, err = run_cli("status", "out", "again")
    assert (code, err) == (0, "")
    (merge,) = _hints(out)
    assert merge == ["merge", "out", "again", "--into", "MERGED"]
    assert run_cli(*merge)[0] == 0  # the same answers in both: no conflict
    assert run_cli("stats", "MERGED")[0] == 0
