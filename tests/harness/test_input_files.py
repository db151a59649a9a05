"""Inputs that are not regular files (a FIFO, a device) are refused in one line, exit 2, before
anything opens them: no verb ever waits on one. Each test uses a real FIFO; a watchdog frees a
reader that blocks on it anyway, so a regression fails instead of hanging."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import SIMPLE_MODEL, write_config

REFUSED = "is a FIFO (named pipe), not a regular file"


@contextmanager
def never_blocked(*fifos: Path, grace: float = 3.0) -> Iterator[list[Path]]:
    """Watch `fifos` while the body runs: a reader still blocked on one after `grace` seconds is
    freed (a writer opens and closes it: the reader sees an empty file) and the FIFO listed."""
    freed: list[Path] = []
    stop = threading.Event()

    def watch() -> None:
        if stop.wait(grace):
            return
        while not stop.is_set():
            for fifo in fifos:
                try:
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:  # ENXIO: no reader waiting
                    continue
                os.close(fd)
                freed.append(fifo)
            stop.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield freed
    finally:
        stop.set()
        thread.join()


def fifo_at(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


@pytest.fixture
def done(tmp_path: Path, run_cli) -> Path:
    """A config whose run is done (tmp/out holds its ledger)."""
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=4)
    assert run_cli("run", config)[0] == 0
    return config


@pytest.mark.parametrize("verb", ["run", "plan", "rerun", "doctor"])
def test_a_fifo_as_the_prompts_file_is_refused_at_once(tmp_path, run_cli, verb):
    config = write_config(tmp_path, SIMPLE_MODEL)
    prompts = fifo_at(tmp_path / "prompts.json")
    with never_blocked(prompts) as freed:
        code, out, err = run_cli(verb, config)
    assert not freed, "a reader blocked on the FIFO"
    assert code == 2
    if verb == "doctor":  # a failed check in its table
        assert REFUSED in " ".join(out.split())
    else:
        assert err.startswith(f"error: {config}: prompts: {prompts}: {REFUSED}")
        assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("verb", ["run", "plan", "doctor", "score"])
def test_a_fifo_as_the_config_is_refused_at_once(tmp_path, run_cli, verb):
    config = fifo_at(tmp_path / "run.toml")
    with never_blocked(config) as freed:
        code, out, err = run_cli(verb, config)
    assert not freed and code == 2
    assert f"{config}: {REFUSED}" in " ".join((out + err).split())


@pytest.mark.parametrize("verb", [("run", "{config}"), ("status", "{out}")])
def test_a_fifo_as_the_ids_file_is_refused_at_once(tmp_path, run_cli, done, verb):
    ids = fifo_at(tmp_path / "ids.txt")
    args = [word.format(config=done, out=tmp_path / "out") for word in verb]
    with never_blocked(ids) as freed:
        code, _, err = run_cli(*args, "--ids", ids)
    assert not freed and code == 2
    assert err.startswith(f"error: --ids {ids}: {REFUSED}") and err.count("\n") == 1


@pytest.mark.parametrize(
    "verb",
    [
        ("status",),
        ("stats",),
        ("export", "--format", "csv", "--to", "{tmp}/a.csv"),
        ("report", "--out", "{tmp}/r.html"),
        ("merge", "--into", "{tmp}/merged"),
    ],
)
def test_a_fifo_as_a_ledger_to_read_is_refused_at_once(tmp_path, run_cli, done, verb):
    ledger = fifo_at(tmp_path / "other.jsonl")
    args = [word.format(tmp=tmp_path) for word in verb]
    with never_blocked(ledger) as freed:
        code, _, err = run_cli(args[0], ledger, *args[1:])
    assert not freed and code == 2
    assert err.startswith(f"error: {ledger}: {REFUSED}") and err.count("\n") == 1


@pytest.mark.parametrize("verb", [("stats",), ("export", "--format", "csv"), ("report",)])
def test_a_fifo_as_the_scores_file_is_refused_at_once(tmp_path, run_cli, done, verb):
    scores = fifo_at(tmp_path / "out" / "scores.jsonl")
    with never_blocked(scores) as freed:
        code, _, err = run_cli(verb[0], tmp_path / "out", *verb[1:])
    assert not freed and code == 2
    assert err.startswith(f"error: {scores}: {REFUSED}") and err.count("\n") == 1


def test_a_fifo_as_an_annotation_sheet_is_refused_at_once_and_nothing_is_stored(
    tmp_path, run_cli, done
):
    out = tmp_path / "out"
    assert run_cli("annotate", "export", out, "--labels", "yes,no", "--raters", "1")[0] == 0
    sheet = fifo_at(tmp_path / "r1.csv")
    with never_blocked(sheet) as freed:
        code, _, err = run_cli("annotate", "import", out, sheet)
    assert not freed and code == 2
    assert f"error: {sheet}: {REFUSED}" in err
    assert not (out / "scores.jsonl").exists()


def test_a_device_as_the_prompts_file_is_refused_not_read_forever(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL)
    (tmp_path / "prompts.json").unlink()
    (tmp_path / "prompts.json").symlink_to("/dev/zero")
    code, _, err = run_cli("plan", config)
    assert code == 2
    # the link resolved, named after the config and its key
    assert err.startswith(f"error: {config}: prompts: /dev/zero: is a character device, not a")


def test_a_fifo_inside_a_dataset_folder_is_never_opened(tmp_path, run_cli):
    folder = tmp_path / "set"
    folder.mkdir()
    shutil.copy(write_config(tmp_path, SIMPLE_MODEL).with_name("prompts.json"), folder / "a.json")
    info = fifo_at(folder / "dataset_dict.json")
    config = tmp_path / "run.toml"
    config.write_text(config.read_text().replace('"prompts.json"', '"set"'))
    with never_blocked(info) as freed:
        code, _, err = run_cli("plan", config)
    assert not freed and code == 2
    assert err.startswith(f"error: {config}: prompts: {info}: {REFUSED}")


def test_a_sheet_or_ids_file_with_a_byte_that_is_not_utf8_names_its_line(tmp_path, run_cli, done):
    out = tmp_path / "out"
    assert run_cli("annotate", "export", out, "--labels", "yes,no", "--raters", "1")[0] == 0
    sheet = out / "annotation" / "r1.csv"
    lines = sheet.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b",", b",\xe9", 1)  # on line 3
    sheet.write_bytes(b"".join(lines))
    code, _, err = run_cli("annotate", "import", out, sheet)
    assert code == 2 and f"{sheet}: line 3: not UTF-8 text (invalid continuation byte)" in err
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"p000\np001\ncaf\xe9\n")
    code, _, err = run_cli("plan", done, "--ids", ids)
    assert (code, err) == (
        2,
        f"error: --ids {ids}: line 3: not UTF-8 text (invalid continuation byte)\n",
    )


@pytest.mark.parametrize("kind", ["fifo", "broken link"])
def test_a_data_file_of_a_dataset_folder_that_is_not_a_file_is_refused_not_skipped(
    tmp_path, run_cli, kind
):
    folder = tmp_path / "pdir"
    folder.mkdir()
    prompts = write_config(tmp_path, SIMPLE_MODEL, prompts=2).with_name("prompts.json")
    shutil.copy(prompts, folder / "test-00000-of-00002.json")
    second = folder / "test-00001-of-00002.json"
    if kind == "fifo":
        fifo_at(second)
    else:
        second.symlink_to(tmp_path / "gone.json")
    config = tmp_path / "run.toml"
    text = config.read_text().replace('prompts = "prompts.json"\n', "")
    config.write_text(text + '\n[prompts]\npath = "pdir"\nsplit = "test"\n')
    with never_blocked(second) if kind == "fifo" else never_blocked() as freed:
        code, _, err = run_cli("plan", config)
    assert not freed and code == 2 and err.count("\n") == 1
    shown = REFUSED if kind == "fifo" else "is a symbolic link to"
    assert err.startswith(f"error: {config}: prompts: {second}: {shown}")


@pytest.mark.parametrize(
    "verb",
    [
        ("status", "{out}"),
        ("report", "{out}"),
        ("score", "{config}"),
        ("annotate", "export", "{out}"),
    ],
)
def test_a_fifo_as_the_ledger_of_an_output_folder_is_named_not_called_missing(
    tmp_path, run_cli, done, verb
):
    ledger = fifo_at(tmp_path / "out" / "ledger.jsonl")
    done.write_text(done.read_text() + '\n[[scorers]]\nname = "r"\ntype = "refusal"\n')
    args = [word.format(out=tmp_path / "out", config=done) for word in verb]
    if verb[0] == "annotate":
        args += ["--labels", "yes,no", "--raters", "1"]
    with never_blocked(ledger) as freed:
        code, _, err = run_cli(*args)
    assert not freed and code == 2
    assert err.startswith(f"error: {ledger}: {REFUSED}") and err.count("\n") == 1


def test_a_fifo_as_the_scores_file_that_score_writes_is_named_as_such(tmp_path, run_cli, done):
    done.write_text(done.read_text() + '\n[[scorers]]\nname = "r"\ntype = "refusal"\n')
    scores = fifo_at(tmp_path / "out" / "scores.jsonl")
    with never_blocked(scores) as freed:
        code, _, err = run_cli("score", done)
    assert not freed and code == 2
    assert err.startswith(f"error: {scores}: {REFUSED}") and err.count("\n") == 1
