"""Every verb on a real pseudo-terminal, as users run them: rich's live displays are on there and
nowhere else, so a crash in them is invisible to every other test (rich 15 once killed `run` at
its first frame). Model, variant and scorer names carry markup-like brackets, which must show as
typed and never be read as rich markup."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, write_prompts

pytestmark = pytest.mark.slow

# A model whose name rich would read as markup: `[/]` closes a style that was never opened (an
# error), `[v2]` would vanish as an unknown style.
MODEL = "llama[v2]-[/]"
CONFIG = f"""
prompts = "prompts.json"
output = "out"
seed = 7

[retry]
max_attempts = 1
initial_wait = 0.0
max_wait = 0.0
attempt_timeout = 5.0

[[models]]
name = "{MODEL}"
provider = "simulated"
temperatures = [0.0, 0.5]
max_concurrency = 4
[models.options]
latency_ms = 5
server_error_rate = 0.2
top_logprobs = 3

[[scorers]]
name = "rules"
type = "rules"
default = "other"
[[scorers.rules]]
label = "yes[/]"
regex = ["(?i)yes"]

[[scorers]]
name = "judge"
type = "judge"
model = "{MODEL}"
labels = ["Yes", "No"]
verdict_pattern = "\\\\A(\\\\w+)"
template = "Grade: {{response}}"
"""


def on_terminal(cwd: Path, *args: str, timeout: float = 120.0) -> tuple[int, str]:
    """Run `python -m harness ARGS` with stdin, stdout and stderr on a pseudo-terminal of 120
    columns; returns its exit code and all it wrote there."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    # PYTHONPATH given to the tests comes first: `make test-rich-floor` puts an older rich there.
    path = os.pathsep.join(filter(None, (os.environ.get("PYTHONPATH"), str(REPO))))
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": path, "COLUMNS": "120"}
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        start_new_session=True,
    )
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        else:
            process.kill()
            pytest.fail(f"harness {' '.join(args)} did not finish on a terminal in {timeout} s")
        code = process.wait(timeout=30)
    finally:
        os.close(controller)
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("terminal")
    write_prompts(root / "prompts.json", 12)
    (root / "run.toml").write_text(CONFIG)
    return root


# In the order a user takes them: each one reads what the ones before it wrote.
VERBS = [
    ("run", ("run", "run.toml"), (0, 1)),
    ("rerun", ("rerun", "run.toml"), (0, 1)),
    ("plan", ("plan", "run.toml"), (0,)),
    ("doctor", ("doctor", "run.toml"), (0, 1)),
    ("status", ("status", "out"), (0, 1)),
    ("score", ("score", "run.toml"), (0, 1)),
    ("stats", ("stats", "out", "--scorer", "rules", "--resamples", "50"), (0,)),
    ("export", ("export", "out", "--format", "parquet"), (0,)),
    ("report", ("report", "out", "--scorer", "rules", "--resamples", "50"), (0,)),
    ("annotate export", ("annotate", "export", "out", "--scorer", "rules"), (0,)),
    ("merge", ("merge", "--into", "merged[/]", "out"), (0,)),
    ("status of the merge", ("status", "merged[/]"), (0, 1)),
]


@pytest.mark.parametrize(("verb", "args", "codes"), VERBS, ids=[verb for verb, _, _ in VERBS])
def test_every_verb_runs_on_a_terminal_and_shows_names_as_typed(project, verb, args, codes):
    code, screen = on_terminal(project, *args)
    assert "Traceback" not in screen, screen
    assert code in codes, f"exit {code}:\n{screen}"
    if verb in ("run", "rerun", "status", "plan", "score", "status of the merge"):
        assert MODEL in screen, screen
    if verb in ("merge", "status of the merge"):
        assert "merged[/]" in screen, screen
    # Wherever the name shows, it shows as typed, or cut short by a table with an ellipsis.
    for shown in re.findall(r"llama[^\s│┃]*", screen):
        whole = shown.startswith(MODEL)
        assert whole or (shown.endswith("…") and MODEL.startswith(shown[:-1])), shown
