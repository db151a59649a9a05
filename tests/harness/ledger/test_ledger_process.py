"""The ledger's write-side edges with real `python -m harness run` processes: a second run while
one is live, the ledger deleted or replaced mid-run, a disk that fills, a signal after deletion."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.ledger.lines import read_ledger
from tests.conftest import REPO, harness_process, write_config

SLOW_MODEL = """
[retry]
max_attempts = 2
initial_wait = 0.0
max_wait = 0.0
attempt_timeout = 5.0

[[models]]
name = "sim"
provider = "simulated"
temperatures = [0.0, 0.7]
max_concurrency = {concurrency}
[models.options]
latency_ms = 50
"""

PROMPTS = 150  # x 2 temperatures = 300 jobs


def slow_config(tmp_path: Path, concurrency: int = 8) -> Path:
    return write_config(tmp_path, SLOW_MODEL.format(concurrency=concurrency), prompts=PROMPTS)


def wait_for_records(ledger: Path, count: int, process: subprocess.Popen[bytes]) -> int:
    """Wait until the ledger holds `count` records; returns how many it holds."""
    end = time.monotonic() + 20
    while time.monotonic() < end and process.poll() is None:
        held = ledger.read_bytes().count(b'"status"') if ledger.exists() else 0
        if held >= count:
            return held
        time.sleep(0.01)
    raise AssertionError(f"fewer than {count} records while the run was live")


def one_success_per_job(ledger: Path) -> None:
    ok = Counter(r["key"] for r in read_ledger(ledger).records if r["status"] == "ok")
    assert len(ok) == 2 * PROMPTS and set(ok.values()) == {1}


def finish(process: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out.decode(), err.decode()


def resume(config: Path, ledger: Path) -> None:
    code, _, err = finish(harness_process("run", str(config)))
    assert code == 0, err
    one_success_per_job(ledger)


@pytest.mark.slow
def test_fresh_while_a_run_is_live_exits_2_and_renames_nothing(tmp_path):
    config = slow_config(tmp_path, concurrency=2)  # about 8 s: time for a second process
    ledger = tmp_path / "out" / "ledger.jsonl"
    live = harness_process("run", str(config))
    wait_for_records(ledger, 1, live)
    code, _, err = finish(harness_process("run", str(config), "--fresh"))
    assert live.poll() is None, "the first run should still be going"
    assert code == 2
    assert err == f"error: {ledger}: in use by another harness run\n"
    assert finish(live)[0] == 0
    assert sorted(p.name for p in ledger.parent.iterdir()) == ["ledger.jsonl"]
    one_success_per_job(ledger)


@pytest.mark.slow
def test_a_ledger_deleted_mid_run_is_recreated_with_every_record(tmp_path):
    config = slow_config(tmp_path)
    ledger = tmp_path / "out" / "ledger.jsonl"
    process = harness_process("run", str(config))
    wait_for_records(ledger, 64, process)
    ledger.unlink()
    code, out, err = finish(process)
    assert code == 0, err
    assert "was deleted during the run; recreated it" in out
    assert read_ledger(ledger).runs
    one_success_per_job(ledger)


@pytest.mark.slow
def test_a_ledger_deleted_then_a_signal_still_leaves_every_record(tmp_path):
    config = slow_config(tmp_path, concurrency=2)
    ledger = tmp_path / "out" / "ledger.jsonl"
    process = harness_process("run", str(config))
    seen = wait_for_records(ledger, 10, process)
    ledger.unlink()
    process.send_signal(signal.SIGINT)
    code, out, err = finish(process)
    assert code == 130, err
    assert "Traceback" not in err and "recreated it" in out
    assert len(read_ledger(ledger).records) >= seen
    resume(config, ledger)


@pytest.mark.slow
def test_a_ledger_replaced_mid_run_is_left_alone_and_the_records_are_recovered(tmp_path):
    config = slow_config(tmp_path)
    ledger = tmp_path / "out" / "ledger.jsonl"
    process = harness_process("run", str(config))
    seen = wait_for_records(ledger, 64, process)
    (tmp_path / "other.jsonl").write_bytes(b'{"type": "someone else"}\n')
    os.replace(tmp_path / "other.jsonl", ledger)
    code, _, err = finish(process)
    assert code == 3
    (recovered,) = ledger.parent.glob("ledger.recovered-*.jsonl")
    assert err.count("\n") == 1 and "replaced by another file" in err and str(recovered) in err
    assert ledger.read_bytes() == b'{"type": "someone else"}\n'
    kept = read_ledger(recovered)
    assert len(kept.runs) == 1 and kept.skipped == 0
    keys = Counter(r["key"] for r in kept.records)
    assert len(keys) >= seen and set(keys.values()) == {1}
    os.replace(recovered, ledger)
    resume(config, ledger)


def limit_file_size(size: int):
    """A preexec_fn: files the child writes stop growing at `size` bytes (EFBIG, as when a
    disk fills; Python ignores SIGXFSZ)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


@pytest.mark.slow
def test_a_disk_full_mid_run_stops_cleanly_and_a_resume_loses_nothing(tmp_path):
    config = slow_config(tmp_path)
    ledger = tmp_path / "out" / "ledger.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=limit_file_size(60_000),
    )
    code, _, err = finish(process)
    assert code == 3
    assert err.count("\n") == 1
    assert err.startswith(f"error: {ledger}: cannot write the ledger: File too large; stopped")
    assert "finished record(s) not written, to run again on resume" in err
    written = read_ledger(ledger)
    assert 10 < len(written.records) < 2 * PROMPTS and written.skipped <= 1
    resume(config, ledger)


@pytest.mark.slow
def test_a_ledger_on_a_full_device_exits_2_with_one_line(tmp_path):
    config = slow_config(tmp_path)
    ledger = tmp_path / "out" / "ledger.jsonl"
    ledger.parent.mkdir()
    ledger.symlink_to("/dev/full")
    code, _, err = finish(harness_process("run", str(config), "--fresh"))
    assert code == 2
    assert err.startswith(f"error: {ledger}: is a character device, not a regular file;")
    assert err.count("\n") == 1
    code, _, err = finish(harness_process("run", str(config)))
    assert code == 2
    assert err.startswith(f"error: {ledger}: is a character device, not a regular file;")
    assert err.count("\n") == 1
