"""A small project to score: a config with scorers, a run of the simulated model, the files."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.api.types import Completion, Message, Usage
from harness.config.models import ModelConfig
from harness.config.run_config import make_variant
from harness.ledger.lines import sealed
from harness.prompts.load import Prompt
from harness.run.jobs import Job, job_key
from harness.run.records import success_record
from tests.conftest import SIMPLE_MODEL, ledger_lines, write_config

# "sim" at two temperatures; the answers begin "Yes, it exists.", "No, I cannot find it." or
# "I am not certain." (see harness/providers/simulated.py).
EXISTENCE = """
[[scorers]]
name = "existence"
type = "rules"
default = "other"
[[scorers.rules]]
label = "claims"
keywords = ["it exists"]
[[scorers.rules]]
label = "denies"
regex = ["cannot\\\\s+find"]
"""

REFUSAL = """
[[scorers]]
name = "refusal"
type = "refusal"
"""


def project(tmp_path: Path, run_cli, scorers: str, *, prompts: int = 6) -> Path:
    """A config with `scorers`, its answers already in the ledger; returns the config's path."""
    config = write_config(tmp_path, SIMPLE_MODEL + scorers, prompts=prompts)
    code, _, err = run_cli("run", config)
    assert code == 0, err
    return config


def rewrite_scorers(config: Path, old: str, new: str) -> None:
    """Edit the config in place (a scorer changed between two `score` commands)."""
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


def score_lines(output: Path) -> list[dict]:
    """Every line of the scores file."""
    path = output / "scores.jsonl"
    return ledger_lines(path) if path.exists() else []


def per_key(output: Path) -> Counter[str]:
    """How many lines each score key has."""
    return Counter(line["key"] for line in score_lines(output))


def answers(output: Path) -> list[dict]:
    """The answers of the run."""
    return [line for line in ledger_lines(output / "ledger.jsonl") if line.get("type") != "run"]


_TEXTS = (
    "Yes, it exists: the advisory describes a remote code execution in the parser. " * 4,
    "No, I cannot find any record of it in the registry or the advisories. " * 4,
    "I'm sorry, but I can't help with that request. " * 4,
)


def write_answers(ledger: Path, count: int, texts: Sequence[str] = _TEXTS) -> None:
    """`count` answers of one variant (`texts` in turn), written as a run writes them (sealed
    records)."""
    variant = make_variant(ModelConfig(name="sim", provider="simulated"), 0.0, 7, {})
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("wb") as file:
        for n in range(count):
            prompt = Prompt(f"p{n:06d}", (Message("user", "q"),), "c", n % 3 == 0, {})
            job = Job(job_key(variant.id, prompt.id, 0), variant, prompt, 0)
            completion = Completion(texts[n % len(texts)], "stop", Usage(10, 40), "sim")
            file.write(sealed(success_record("run-0", job, completion, elapsed=0.1)))


class Overran(Exception):
    """Raised in the main thread when a `deadline` passes."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail with Overran after `seconds` rather than hang (Python's `re` checks for signals while
    it backtracks, so a runaway pattern is stopped too)."""

    def overran(signum: int, frame: object) -> None:
        raise Overran(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, overran)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
