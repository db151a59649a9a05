"""The files the analysis verbs and merge write where they are told: a file of results (a ledger,
a scores file, an annotation key) is never replaced, another file only when the verb wrote it
before or with --force; a folder that cannot be written is one line, exit 2, nothing written;
temporaries left by a writer killed outright are removed by the next run of the verb, never a
live writer's."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from harness.analysis.view_cache import FOLDER
from tests.conftest import REPO, crash, harness_process
from tests.harness.analysis.ledgers import answer, score, write_ledger, write_scores
from tests.harness.report.project import write_project

# Each verb that writes a file the user names: its arguments before the file, and the file's
# default name when it has one.
WRITERS = {
    "export parquet": ("export", "{output}", "--format", "parquet", "--to"),
    "export csv": ("export", "{output}", "--format", "csv", "--to"),
    "export jsonl": ("export", "{output}", "--format", "jsonl", "--to"),
    "export pilot-json": ("export", "{output}", "--format", "pilot-json", "--to"),
    "stats --json": ("stats", "{output}", "--json"),
    "report --out": ("report", "{output}", "--out"),
}


@pytest.fixture
def output(tmp_path: Path) -> Path:
    """A run's output folder with a ledger and scores, a judge's beside it, a sibling shard's,
    and an annotation key."""
    records = [answer("a@t0", f"p{i}") for i in range(4)]
    write_ledger(tmp_path / "out" / "ledger.jsonl", records)
    write_scores(tmp_path / "out" / "scores.jsonl", [score(records[0], "claims", "yes")])
    scorer = {"key": "claims", "type": "scorer", "scorer": "claims", "definition": "d0d0d0d0d0d0"}
    write_ledger(tmp_path / "out" / "scorers.jsonl", [{**scorer, "claims": "yes", "schema": 1}])
    write_ledger(tmp_path / "judge" / "judge.jsonl", [answer("judge@t0", "q0")])
    write_ledger(tmp_path / "shard-1-of-2" / "ledger.jsonl", [answer("a@t0", "p9")])
    key = {"schema": 1, "type": "annotation", "name": "annotation", "items": {}}
    (tmp_path / "out" / "annotation.key.json").write_bytes(
        orjson.dumps(key, option=orjson.OPT_INDENT_2)
    )
    return tmp_path / "out"


def _args(writer: str, output: Path, target: Path, *more: str) -> list[str]:
    return [a.format(output=output) for a in WRITERS[writer]] + [str(target), *more]


def _option(writer: str) -> str:
    """How errors name the writer: its verb and option (`export --to`)."""
    return f"{WRITERS[writer][0]} {WRITERS[writer][-1]}"


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("judge/judge.jsonl", "a ledger"),
        ("shard-1-of-2/ledger.jsonl", "a ledger"),
        ("out/scores.jsonl", "a scores file"),
        ("out/scorers.jsonl", "a scorers file"),
        ("out/annotation.key.json", "an annotation key"),
    ],
)
def test_no_verb_replaces_a_ledger_a_scores_file_or_a_key_even_with_force(
    output, run_cli, writer, target, kind
):
    path = output.parent / target
    before = path.read_bytes()
    for force in ([], ["--force"]):
        code, _, err = run_cli(*_args(writer, output, path, *force))
        assert code == 2
        refused = f"is {kind}, which {_option(writer)} never replaces; name another file"
        assert err == f"error: {path}: {refused}\n"
        assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("writer", WRITERS)
def test_another_file_is_replaced_only_with_force_an_earlier_output_without(
    output, run_cli, writer
):
    notes = output.parent / "notes.out"
    notes.write_text("my own notes\n")
    code, _, err = run_cli(*_args(writer, output, notes))
    assert code == 2 and err.startswith(f"error: {notes}: is not an earlier ")
    hint = "(name another file, or add --force)"
    assert err.endswith(f"; {_option(writer)} replaces nothing else {hint}\n")
    assert notes.read_text() == "my own notes\n"
    assert run_cli(*_args(writer, output, notes, "--force"))[0] == 0
    made = notes.read_bytes()
    assert made != b"my own notes\n"
    assert run_cli(*_args(writer, output, notes))[0] == 0  # an earlier one: replaced
    assert sorted(p.name for p in notes.parent.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("writer", WRITERS)
def test_a_fifo_or_device_is_refused_unread(output, run_cli, writer):
    fifo = output / "pipe"
    os.mkfifo(fifo)
    code, _, err = run_cli(*_args(writer, output, fifo, "--force"))
    assert (code, err) == (2, f"error: {fifo}: is not a regular file; name a file to write\n")
    assert fifo.is_fifo()


def test_an_export_replaces_an_earlier_export_of_another_format(output, run_cli):
    target = output / "answers.data"
    for form in ("parquet", "csv", "jsonl", "pilot-json", "parquet"):
        assert run_cli("export", output, "--format", form, "--to", target)[0] == 0


def test_report_figures_replace_only_earlier_figures(tmp_path, run_cli):
    project = write_project(tmp_path)
    figures = tmp_path / "figures"
    assert run_cli("report", project.output, "--figures", figures)[0] == 0
    assert run_cli("report", project.output, "--figures", figures)[0] == 0  # its own: replaced
    (figures / "rates.png").write_bytes(b"\x89PNG a drawing of mine")
    code, _, err = run_cli("report", project.output, "--figures", figures)
    assert code == 2
    assert err.startswith(f"error: {figures / 'rates.png'}: is not a figure an earlier report")
    assert (figures / "rates.png").read_bytes() == b"\x89PNG a drawing of mine"


def test_annotate_export_and_merge_replace_no_file_of_another_kind(tmp_path, run_cli):
    project = write_project(tmp_path)
    sheets = project.output / "annotation"
    sheets.mkdir()
    (sheets / "r1.csv").write_text("my,own,table\n")
    code, _, err = run_cli("annotate", "export", project.output, "--labels", "a,b")
    assert (code, err) == (
        2,
        f"error: {sheets / 'r1.csv'}: is not a sheet an earlier export wrote; annotate export "
        "replaces nothing else (export under another --name)\n",
    )
    assert sorted(p.name for p in sheets.iterdir()) == ["r1.csv"]
    conflicts = project.output / "merge-conflicts.jsonl"
    conflicts.write_text('{"mine": 1}\n')
    ledger = project.output / "ledger.jsonl"
    before = ledger.read_bytes()
    code, _, err = run_cli("merge", ledger, "--into", project.output)
    assert code == 2 and err.startswith(f"error: {conflicts}: is not a list of conflicts")
    assert ledger.read_bytes() == before and conflicts.read_text() == '{"mine": 1}\n'


# --- a folder that cannot be written ------------------------------------------------------------


def _read_only(folder: Path) -> list[str]:
    """The command prefix that runs a command with `folder` read-only: a read-only bind mount in
    a namespace of its own (EROFS) where one can be made, else (not root) the folder's mode."""
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-Urm", "true"], capture_output=True).returncode == 0:
        return [unshare, "-Urm", "sh", "-c", script, str(folder)]
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    pytest.skip("no way here to make a folder read-only")


READ_ONLY_VERBS = {
    "export parquet": ("export", "{output}", "--format", "parquet"),
    "export csv": ("export", "{output}", "--format", "csv"),
    "export jsonl": ("export", "{output}", "--format", "jsonl"),
    "export pilot-json": ("export", "{output}", "--format", "pilot-json"),
    "stats --json": ("stats", "{output}", "--json", "{output}/stats.json"),
    "report": ("report", "{output}"),
    "report --figures": ("report", "{output}", "--out", "{tmp}/r.html", "--figures", "{output}/f"),
    "annotate export": ("annotate", "export", "{output}", "--labels", "a,b"),
}


@pytest.mark.slow
@pytest.mark.parametrize("verb", READ_ONLY_VERBS)
def test_a_read_only_output_folder_is_one_line_exit_2_nothing_written(tmp_path, verb):
    project = write_project(tmp_path)
    before = sorted(p.name for p in project.output.iterdir())
    args = [a.format(output=project.output, tmp=tmp_path) for a in READ_ONLY_VERBS[verb]]
    prefix = _read_only(project.output)
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "harness", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        project.output.chmod(0o755)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "cannot write" in lines[0] or "cannot create" in lines[0], lines[0]
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in project.output.iterdir()) == before


# --- temporaries left by a writer killed outright -------------------------------------------------


def test_only_temporaries_whose_writer_is_gone_are_removed(tmp_path):
    from harness.whole import remove_stale, temporary_path

    code = (
        "import sys; from pathlib import Path; from harness.whole import temporary_path;"
        "path = temporary_path(Path(sys.argv[1]), 'answers.csv'); path.touch(); print(path)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True, text=True
    )
    dead = Path(done.stdout.strip())  # its writer has ended
    live = temporary_path(tmp_path, "answers.csv")  # this process's: it runs
    live.touch()
    host, pid, start = live.name.split(".")[-3].rsplit("-", 2)
    reused = tmp_path / f".answers.csv.{host}-{pid}-{int(start) + 1}.00000000.tmp"  # pid reused
    reused.touch()
    other_host = tmp_path / f".answers.csv.{host}x-{pid}-{start}.00000000.tmp"
    other_host.touch()
    other_file = temporary_path(tmp_path, "answers.parquet")
    other_file.with_name(other_file.name.replace(f"-{pid}-", "-1-")).touch()
    assert dead.exists() and host == socket.gethostname().replace(".", "_")
    remove_stale(tmp_path, "answers.csv")
    left = {p.name for p in tmp_path.iterdir()}
    assert dead.name not in left and reused.name not in left
    assert {live.name, other_host.name} <= left and len(left) == 3


def test_temporaries_of_earlier_versions_are_removed_once_an_hour_unchanged(tmp_path):
    from harness.whole import LEGACY_AGE, remove_stale

    # Earlier versions named them `.<name>.<hex>.tmp` (a merge's ledger, an export) and
    # `.export-parts-<host>-<pid>-<random>` (an export's parts): nothing says who wrote them.
    old = tmp_path / ".ledger.jsonl.0badcafe.tmp"
    fresh = tmp_path / ".ledger.jsonl.feedf00d.tmp"  # perhaps still being written
    parts = tmp_path / f".export-parts-{socket.gethostname()}-123-abcd_123"
    mine = tmp_path / ".ledger.jsonl-backup"  # the user's, of no temporary's form
    for path in (old, fresh, mine):
        path.write_bytes(b"x")
    parts.mkdir()
    (parts / "0.arrow").write_bytes(b"x")
    hour_ago = time.time() - LEGACY_AGE - 1
    for path in (old, mine, parts, parts / "0.arrow"):
        os.utime(path, (hour_ago, hour_ago))
    remove_stale(tmp_path, "ledger.jsonl")
    remove_stale(tmp_path, "export-parts")
    assert {p.name for p in tmp_path.iterdir()} == {fresh.name, mine.name}


def _killed_while(process: subprocess.Popen[bytes], folder: Path, prefix: str) -> Path:
    """SIGKILL `process` once a temporary whose name begins with `prefix` is in `folder`."""
    deadline = time.monotonic() + 120
    while not (found := [p for p in folder.iterdir() if p.name.startswith(prefix)]):
        assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    crash(process)
    return found[0]


def _big_ledger(path: Path, count: int, variant: str = "a@t0") -> Path:
    records = [answer(variant, f"p{i:06d}", response="word " * 100) for i in range(count)]
    return write_ledger(path, records)


@pytest.mark.slow
def test_the_next_export_removes_the_temporary_a_killed_one_left(tmp_path):
    _big_ledger(tmp_path / "ledger.jsonl", 40_000)
    process = harness_process("export", str(tmp_path), "--format", "csv", "--threads", "1")
    left = _killed_while(process, tmp_path, ".answers.csv.")
    assert left.exists()
    again = harness_process("export", str(tmp_path), "--format", "csv", "--threads", "1")
    assert again.wait(timeout=120) == 0
    # the export's snapshot of the view kept beside it (see harness.analysis.view_cache)
    assert sorted(p.name for p in tmp_path.iterdir()) == [FOLDER, "answers.csv", "ledger.jsonl"]


@pytest.mark.slow
def test_the_next_merge_removes_the_temporary_a_killed_one_left(tmp_path):
    shards = [_big_ledger(tmp_path / f"s{n}" / "ledger.jsonl", 20_000, f"v{n}@t0") for n in (0, 1)]
    into = tmp_path / "merged"
    into.mkdir()
    process = harness_process("merge", *map(str, shards), "--into", str(into))
    left = _killed_while(process, into, ".ledger.jsonl.")
    assert left.exists()
    again = harness_process("merge", *map(str, shards), "--into", str(into))
    assert again.wait(timeout=120) == 0
    assert sorted(p.name for p in into.iterdir()) == ["ledger.jsonl"]


@pytest.mark.slow
def test_the_next_report_removes_the_figures_folder_a_killed_one_left(tmp_path):
    project = write_project(tmp_path)
    figures = tmp_path / "figures"
    process = harness_process("report", str(project.output), "--figures", str(figures))
    left = _killed_while(process, tmp_path, ".figures.")
    assert left.is_dir()
    again = harness_process("report", str(project.output), "--figures", str(figures))
    assert again.wait(timeout=120) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert [p.name for p in project.output.iterdir() if p.name.startswith(".")] == [FOLDER]


def test_a_jsonl_export_whose_first_row_is_longer_than_a_mebibyte_replaces_itself(
    tmp_path, run_cli
):
    long = "yes " * (1 << 19)  # 2 MiB: more than a target's first line is read for
    write_ledger(tmp_path / "ledger.jsonl", [answer("a@t0", "p0", response=long)])
    for _ in range(2):
        assert run_cli("export", tmp_path, "--format", "jsonl")[:3:2] == (0, "")


@pytest.mark.parametrize(
    ("name", "kind"), [("scores.jsonl", "a scores file"), ("scorers.jsonl", "a scorers file")]
)
def test_an_empty_scores_or_scorers_file_is_known_by_its_name_and_never_replaced(
    tmp_path, run_cli, name, kind
):
    records = [answer("a@t0", f"p{i}") for i in range(2)]
    write_ledger(tmp_path / "out" / "ledger.jsonl", records)
    target = tmp_path / "out" / name
    target.write_bytes(b"")
    code, _, err = run_cli(
        "export", tmp_path / "out", "--format", "jsonl", "--to", target, "--force"
    )
    assert (code, err) == (
        2,
        f"error: {target}: is {kind}, which export --to never replaces; name another file\n",
    )
    assert target.read_bytes() == b""
