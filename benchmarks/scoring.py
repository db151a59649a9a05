"""Rule scoring of 1,000,000 answers: `harness score` in a child process, its seconds and peak RSS.

The answers are those of the resume-index benchmark (`write_big_ledger`: 1.2 KB records whose
600-character answer matches no rule, so every pattern is searched through to the end: the worst
case), scored by a rules scorer (two keywords, two regular expressions) and the refusal scorer
(the twelve shipped patterns), then scored again with nothing left to do.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.ledger_file import write_big_ledger
from benchmarks.project import peak_rss_of_run

SCORERS = """
[[scorers]]
name = "existence"
type = "rules"
default = "other"
[[scorers.rules]]
label = "claims"
keywords = ["it exists", "is a real"]
[[scorers.rules]]
label = "denies"
regex = ['cannot\\s+find', 'does not exist']

[[scorers]]
name = "refusal"
type = "refusal"
"""


def write_scoring_project(folder: Path, answers: int) -> tuple[Path, int]:
    """A config with two rule scorers over `answers` answers; returns it and the ledger's size."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompts.json").write_text('[{"id": "p", "prompt": "q"}]')
    config = folder / "score.toml"
    config.write_text(
        f'prompts = "prompts.json"\noutput = "{folder / "out"}"\n'
        '[[models]]\nname = "claude"\nprovider = "simulated"\n' + SCORERS
    )
    return config, write_big_ledger(folder / "out" / "ledger.jsonl", answers)


def score_figures(config: Path) -> tuple[float, float]:
    """`harness score CONFIG` in a child process: (wall seconds, peak RSS MB)."""
    return peak_rss_of_run(config, verb="score")
