"""A small project to score: a config with scorers, a run of the simulated model, the files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.conftest import SIMPLE_MODEL, ledger_lines, write_config

# "sim" at two temperatures; the answers begin "Yes, it exists.", "No, I cannot find it." or
# "I am not certain." (see providers/simulated.py).
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
