"""SIGINT and SIGTERM outside the running lanes, with real processes: one line, exit 130, no
traceback, whether the prompts are still loading or the closing summary is being printed."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import termios
import time

import pytest

from tests.conftest import REPO, harness_process, results, write_config

SIGNALS = [signal.SIGINT, signal.SIGTERM]

MANY_VARIANTS = """
[[models]]
name = "sim"
provider = "simulated"
temperatures = [{temperatures}]
"""


def wait_for(probe, process: subprocess.Popen[bytes], deadline: float = 20.0):
    """The first truthy value of `probe()`, polled while the process runs."""
    end = time.monotonic() + deadline
    while not (value := probe()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)
    return value


def reading(process: subprocess.Popen[bytes], path) -> bool:
    """Whether the process holds `path` open."""
    fds = f"/proc/{process.pid}/fd"
    try:
        return any(os.readlink(f"{fds}/{fd}") == str(path) for fd in os.listdir(fds))
    except OSError:  # an fd closed while we looked
        return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_signal_while_prompts_load_exits_130_with_one_line(tmp_path, sig):
    # Enough prompts that reading them, a line at a time with the file open, takes a while.
    prompts = tmp_path / "many.jsonl"
    prompts.write_bytes(
        b"".join(b'{"id": "p%d", "prompt": "Does %d exist?"}\n' % (i, i) for i in range(400_000))
    )
    config = write_config(tmp_path, MANY_VARIANTS.format(temperatures="0.0"))
    config.write_text(config.read_text().replace('"prompts.json"', '"many.jsonl"'))
    process = harness_process("run", str(config))
    wait_for(lambda: reading(process, prompts), process)
    process.send_signal(sig)
    out, err = process.communicate(timeout=10)
    assert (process.returncode, err, out) == (130, b"interrupted\n", b"")
    assert not (tmp_path / "out").exists()


def pipe_bytes(fd: int) -> int:
    """How many bytes wait unread in a pipe."""
    buffer = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buffer)
    return int.from_bytes(buffer, sys.byteorder)


def blocked_writing(fd: int) -> bool:
    """True once the writer has put output in the pipe and, for 0.3 s, no more: it is blocked.
    (The process prints nothing before its lanes end.)"""
    before = pipe_bytes(fd)
    time.sleep(0.3)
    return 0 < before == pipe_bytes(fd)


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_signal_while_the_summary_prints_exits_130_with_one_line(tmp_path, sig):
    temperatures = ", ".join(f"{t / 20:g}" for t in range(30))
    config = write_config(tmp_path, MANY_VARIANTS.format(temperatures=temperatures), prompts=2)
    # Standard output is a one-page pipe nobody reads: the process blocks once the closing table
    # fills it, after the lanes have ended.
    read_end, write_end = os.pipe()
    fcntl.fcntl(read_end, fcntl.F_SETPIPE_SZ, 4096)
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(config)],
        cwd=REPO,
        stdout=write_end,
        stderr=subprocess.PIPE,
    )
    os.close(write_end)
    wait_for(lambda: blocked_writing(read_end), process)
    assert len(results(tmp_path / "out" / "ledger.jsonl")) == 60  # every job done and recorded
    process.send_signal(sig)
    time.sleep(0.2)
    with os.fdopen(read_end, "rb") as stdout:
        stdout.read()  # let it finish writing and exit
    assert process.wait(timeout=10) == 130
    assert process.stderr.read() == b"interrupted\n"
