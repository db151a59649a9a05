"""A judge's run, as the analysis layer asks for one (`harness.analysis.judge.JudgeRunner`).

The analysis layer never imports the run path: the command line passes `judge_run` to
`harness.analysis.scoring.prepare_scoring`. A judge's run is a run of prompts made in memory
through one model, with one sample per prompt: checked, resumed and recorded as `run` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness.config.models import ModelConfig
from harness.config.run_config import RunConfig
from harness.prompts.load import Prompt
from harness.run.execute import run_pending
from harness.run.jobs import job_key
from harness.run.prepare import Prepared, prepare_prompts


@dataclass(frozen=True)
class PreparedJudgeRun:
    """One judge model's run, checked, with no prompts until it is asked: the run path's
    `harness.analysis.judge.JudgeRun`."""

    prepared: Prepared

    @property
    def variant(self) -> str:
        """The judge's variant id."""
        return self.prepared.variants[0].id

    @property
    def model(self) -> str:
        """The judge model's name, as the config gives it."""
        return self.prepared.models[0].model.name

    @property
    def ledger(self) -> Path:
        """The judge's ledger."""
        return self.prepared.ledger_path

    def key(self, prompt_id: str) -> str:
        """The ledger key of the judge's answer to one prompt (its only sample)."""
        return job_key(self.variant, prompt_id, 0)

    async def ask(
        self, prompts: Sequence[Prompt], *, command: str, console: Console, argv: Sequence[str]
    ) -> int | None:
        """Send every prompt the ledger does not hold answered; the exit code, or None when
        nothing was left to send."""
        prepared = dataclasses.replace(self.prepared, prompts=list(prompts))
        return await run_pending(prepared, command=command, console=console, argv=argv)


def judge_run(config: RunConfig, model: ModelConfig, where: str) -> PreparedJudgeRun:
    """The judge `model` (defined in the config at `where`) checked as a run's models are, its
    ledger and limits from `config`; InputError before anything is written."""
    return PreparedJudgeRun(prepare_prompts(config, [], [(model, where)]))
