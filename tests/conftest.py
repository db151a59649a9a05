"""Shared fixtures: a small project on disk (config + prompts) and ways to run the harness."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from harness.cli.main import main

REPO = Path(__file__).resolve().parents[1]


def write_prompts(path: Path, count: int, *, categories: tuple[str, ...] = ("a", "b")) -> Path:
    """A legacy-format prompts file of `count` prompts, every third one a synthetic probe."""
    items = [
        {
            "id": f"p{i:03d}",
            "prompt": f"Does thing number {i} exist?",
            "category": categories[i % len(categories)],
            "is_synthetic_probe": i % 3 == 0,
            "source": "test",
        }
        for i in range(count)
    ]
    path.write_text(json.dumps({"prompts": items}))
    return path


def write_config(tmp: Path, body: str, *, prompts: int = 6) -> Path:
    """A config in `tmp` whose prompts file holds `prompts` prompts and whose output is tmp/out."""
    write_prompts(tmp / "prompts.json", prompts)
    path = tmp / "run.toml"
    head = f'prompts = "prompts.json"\noutput = "{tmp / "out"}"\nseed = 7\n'
    path.write_text(head + body)
    return path


SIMPLE_MODEL = """
[retry]
max_attempts = 3
initial_wait = 0.0
max_wait = 0.0
attempt_timeout = 2.0

[[models]]
name = "sim"
provider = "simulated"
temperatures = [0.0, 0.5]
max_concurrency = 4
"""


def ledger_lines(path: Path) -> list[dict]:
    """Every line of a ledger, parsed."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def results(path: Path) -> list[dict]:
    """Only the result records of a ledger."""
    return [line for line in ledger_lines(path) if line.get("type") != "run"]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `python -m harness ARGS` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def harness_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `python -m harness ARGS` as a real process, leading a process group of its own
    (so a crash can take its engine processes down with it: see `crash`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def crash(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and every process it started, as a machine crash or OOM kill would."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def kill_until_finished(
    start: Callable[[], subprocess.Popen[bytes]],
    until: Callable[[subprocess.Popen[bytes]], None],
    rounds: int,
) -> int:
    """Start a run and, once `until(process)` returns, crash it if it still runs; again, until a
    run ends on its own (it must exit 0) or `rounds` runs were started. Returns the crashes."""
    kills = 0
    for _ in range(rounds):
        process = start()
        until(process)
        if process.poll() is None:
            crash(process)
            kills += 1
            continue
        assert process.wait() == 0, process.stderr.read().decode()  # type: ignore[union-attr]
        return kills
    pytest.fail("the run never finished")


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A temporary folder to hold a config, its prompts and its output."""
    yield tmp_path


def _can_write(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory in which no file can be created: a read-only one, or /sys when running as
    root (which chmod does not stop)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if _can_write(folder):
            folder = Path("/sys")
            if _can_write(folder):
                pytest.skip("no directory here refuses writes")
        yield folder
    finally:
        (tmp_path / "read-only").chmod(0o755)
