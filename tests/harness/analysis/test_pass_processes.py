"""The sealed passes over large files run in forked processes of their own
(`harness.analysis.pass_processes`): same results, progress reported, a dead child one clear
error, children never outliving the reading."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.analysis import pass_processes
from harness.analysis.pass_processes import SealedPass, run_passes
from harness.analysis.sealed_pass import SealedLines, sealed_lines
from harness.analysis.view import _is_record, _parse_record
from harness.errors import InputError
from harness.ledger.lines import sealed
from tests.harness.analysis.ledgers import answer

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork"
)


def _ledger(path: Path, count: int) -> Path:
    lines = [sealed(answer("a@t0", f"p{i}")) for i in range(count)]
    lines[3] = lines[3].replace(b"a@t0 on p3", b"a@t0 on pX")  # damaged: its seal fails
    path.write_bytes(b"".join(lines))
    return path


def _pass(path: Path) -> SealedPass:
    return SealedPass(
        str(path), lambda advance: sealed_lines(path, _parse_record, _is_record, advance=advance)
    )


def test_large_files_are_passed_in_processes_of_their_own_with_the_same_result(tmp_path):
    ledger = _ledger(tmp_path / "ledger.jsonl", 200)
    where = SealedPass("pid", lambda advance: SealedLines(skipped=os.getpid()))
    with run_passes([_pass(ledger), where], 0, None) as running:
        here = running.result(0)  # small: passed in this process
        assert running.result(1).skipped == os.getpid()
    with run_passes([_pass(ledger), where], pass_processes.APART_FROM, None) as running:
        apart = running.result(0)
        assert running.result(1).skipped != os.getpid()
    assert (apart.keys, apart.numbers, apart.crcs, apart.damaged, apart.skipped) == (
        here.keys,
        here.numbers,
        here.crcs,
        here.damaged,
        here.skipped,
    )
    assert len(apart.numbers) == 199 and apart.skipped == 1


def test_the_bytes_the_children_read_are_reported_as_they_go(tmp_path, monkeypatch):
    monkeypatch.setattr(pass_processes, "APART_FROM", 0)
    monkeypatch.setattr("harness.analysis.sealed_pass._REPORT_EVERY", 32 << 10)
    first = _ledger(tmp_path / "first.jsonl", 300)
    second = _ledger(tmp_path / "second.jsonl", 100)

    def slow(path: Path) -> SealedPass:  # a report every 32 KiB, 50 ms apart
        def run(advance):
            def slowly(count: int) -> None:
                advance(count)
                time.sleep(0.05)

            return sealed_lines(path, _parse_record, _is_record, advance=slowly)

        return SealedPass(str(path), run)

    reported: list[int] = []
    with run_passes([slow(first), slow(second)], 0, reported.append) as running:
        running.result(1)
        running.result(0)
    assert sum(reported) == first.stat().st_size + second.stat().st_size
    assert len(reported) > 1


def test_an_error_in_a_child_is_raised_in_the_parent_as_it_was(tmp_path, monkeypatch):
    monkeypatch.setattr(pass_processes, "APART_FROM", 0)
    missing = _pass(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError), run_passes([missing], 0, None) as running:
        running.result(0)


def test_a_child_that_dies_without_its_result_is_one_line_naming_its_file(monkeypatch):
    monkeypatch.setattr(pass_processes, "APART_FROM", 0)
    dies = SealedPass("runs/x/ledger.jsonl", lambda advance: os._exit(9))
    with pytest.raises(InputError) as raised, run_passes([dies], 0, None) as running:
        running.result(0)
    assert str(raised.value) == (
        "runs/x/ledger.jsonl: the process reading it ended without its result "
        "(exit code 9; out of memory?)"
    )


def test_children_still_reading_are_ended_when_the_parent_stops(tmp_path, monkeypatch):
    monkeypatch.setattr(pass_processes, "APART_FROM", 0)
    pid_file = tmp_path / "pid"

    def forever(advance: object) -> None:
        pid_file.write_text(str(os.getpid()))
        time.sleep(600)

    with pytest.raises(KeyboardInterrupt), run_passes([SealedPass("x", forever)], 0, None):
        while not pid_file.exists() or not pid_file.read_text():
            time.sleep(0.01)
        raise KeyboardInterrupt
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # ended and reaped


class _Odd(Exception):
    """An exception whose class takes other arguments than it keeps: it pickles, but does not
    unpickle."""

    def __init__(self, file: str, detail: str) -> None:
        super().__init__(f"{file}: {detail}")


def test_an_exception_that_would_not_cross_the_pipe_arrives_as_its_text(monkeypatch):
    monkeypatch.setattr(pass_processes, "APART_FROM", 0)

    def odd(advance: object) -> None:
        raise _Odd("ledger.jsonl", "bad")

    raised = pytest.raises(RuntimeError, match=r"^_Odd: ledger.jsonl: bad$")
    with raised, run_passes([SealedPass("x", odd)], 0, None) as running:
        running.result(0)


_ORPHAN = """
import os, sys, time
from harness.analysis import pass_processes
from harness.analysis.pass_processes import SealedPass, run_passes
pass_processes.APART_FROM = 0

def slow(advance):
    with open(sys.argv[1], "w") as file:
        file.write(str(os.getpid()))
    for _ in range(6000):
        time.sleep(0.01)
        advance(1)

with run_passes([SealedPass("x", slow)], 0, None) as running:
    while not os.path.getsize(sys.argv[1]):
        time.sleep(0.01)
    os._exit(0)  # the parent dies without ending its child
"""


def test_a_child_whose_parent_died_stops_at_its_next_report(tmp_path):
    pid_file = tmp_path / "pid"
    pid_file.write_text("")
    subprocess.run([sys.executable, "-c", _ORPHAN, str(pid_file)], check=True, timeout=60)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    raise AssertionError("the orphaned child was still running 10 s after its parent died")


def test_an_interrupt_while_children_start_is_raised_once_they_have_started():
    before = signal.getsignal(signal.SIGINT)  # ignored, where the tests run in the background
    reached = False
    with pytest.raises(KeyboardInterrupt), pass_processes.interrupts_held():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the signal is handled here: noted, not raised
        reached = True
    assert reached
    assert signal.getsignal(signal.SIGINT) is before
