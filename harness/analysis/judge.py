"""The judge scorer: a model grades each answer with a rubric, and its verdict becomes a label.

A judge is a run like any other (docs/architecture.md). Each answer to grade becomes a prompt: the
rubric `template` with `{prompt}` (the prompt's text, every turn), `{response}` (the answer),
`{prompt_id}`, `{category}`, `{is_synthetic_probe}`, `{labels}` (the label set, comma-separated)
and any field of the prompt (`{target}`, `{ground_truth}`: what the prompts file holds beside the
text) filled in, sent as the user turn after the optional `system` text. Its id is the answer's
key with `%` and `|` escaped (`%25`, `%7C`), so the judge's ledger,
`OUTPUT/judge/<scorer>/ledger.jsonl`, says which answer each verdict is about. The prompts run
through the run path as a run's do: the judge model's lane, rate limits, retries, concurrency,
cost and budget (`budget_usd` on the scorer caps its ledger), and the resume: a killed `score`
sends again only what its judge ledger lacks. This layer never imports the run path: it asks for
a judge's run through `JudgeRunner` (below), which the run path implements
(`harness.run.judge_runs`) and the command line passes in.

The verdict is the last match of `verdict_pattern` in the judge's answer (default `VERDICT:
<label>`, bold markdown allowed); its group, stripped, must be one of `labels` (ignoring case
unless `case_sensitive`). Anything else (no match, a word outside the set) is recorded as the
label `UNPARSEABLE` with the judge's whole answer in `detail`: never guessed. The pattern runs on
RE2 (`harness.patterns`), in time linear in the judge's answer. A judge request that failed for
good is a score with status "error", tried again by the next `score`.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson
from rich.console import Console

from harness.analysis.answers import latest_records
from harness.analysis.scores import Verdict, answer_digest
from harness.api.types import Message
from harness.config.models import ModelConfig
from harness.config.run_config import RunConfig
from harness.config.scorers import ANSWER_FIELDS, UNPARSEABLE, JudgeScorer
from harness.errors import ConfigError
from harness.patterns import compile_user_pattern
from harness.prompts.load import Prompt

# Bumped whenever the same judge answer would be parsed differently (it is in every definition).
PARSER_VERSION = 2  # 2: verdict_pattern on RE2


def judge_output(config: RunConfig, scorer: JudgeScorer) -> Path:
    """Where a judge scorer's own run keeps its ledger."""
    return config.output / "judge" / scorer.name


class JudgeRun(Protocol):
    """A judge model's own run, checked (provider, options, key): what scoring needs of it."""

    @property
    def variant(self) -> str:
        """The judge's variant id (provider, model, answer-defining options, sampling)."""
        ...

    @property
    def model(self) -> str:
        """The judge model's name, as the config gives it."""
        ...

    @property
    def ledger(self) -> Path:
        """The judge's ledger, where its answers are recorded."""
        ...

    def key(self, prompt_id: str) -> str:
        """The ledger key of the judge's answer to one prompt."""
        ...

    async def ask(
        self, prompts: Sequence[Prompt], *, command: str, console: Console, argv: Sequence[str]
    ) -> int | None:
        """Send every prompt the judge's ledger does not hold answered (resuming it), as `run`
        does; the exit code, or None when nothing was left to send."""
        ...


class JudgeRunner(Protocol):
    """Makes a judge's run: `config` says where its ledger goes and what limits it, `model` is
    the judge, defined in the config at `where` (`scorers[1].model`). Checks the model as a run
    does; raises InputError, naming the file and field, before anything is written."""

    def __call__(self, config: RunConfig, model: ModelConfig, where: str) -> JudgeRun: ...


def setup_judge(config: RunConfig, scorer: JudgeScorer, runner: JudgeRunner) -> JudgeRun:
    """The judge's run, checked (provider, options, key), with no prompts yet: its ledger beside
    the answers, one sample, the scorer's budget."""
    judge_config = dataclasses.replace(
        config,
        output=judge_output(config, scorer),
        samples=1,
        models=(scorer.model,),
        budget_usd=scorer.budget_usd,
        scorers=(),
    )
    return runner(judge_config, scorer.model, scorer.where)


def definition(scorer: JudgeScorer, variant_id: str) -> dict[str, Any]:
    """Everything that can change a judge's labels: its variant (provider, model, options,
    sampling, seed), rubric, label set and verdict parser."""
    return {
        "type": "judge",
        "version": PARSER_VERSION,
        "variant": variant_id,
        "system": scorer.system,
        "template": scorer.template,
        "labels": list(scorer.labels),
        "verdict_pattern": scorer.verdict_pattern,
        "case_sensitive": scorer.case_sensitive,
    }


def check_fields(config: RunConfig, index: int, scorer: JudgeScorer, prompts: list[Prompt]) -> None:
    """Every placeholder of the rubric must be an answer field or a field of every prompt: a
    ConfigError naming the first prompt that lacks one, before anything is sent."""
    wanted = [name for name in scorer.placeholders if name not in ANSWER_FIELDS]
    for prompt in prompts:
        missing = [name for name in wanted if name not in prompt.metadata]
        if missing:
            fields = ", ".join([*ANSWER_FIELDS, *prompt.metadata]) or "none"
            raise ConfigError(
                config.path,
                f"scorers[{index}].template",
                f"{{{missing[0]}}} is not a field of prompt {prompt.id!r} in {config.prompts} "
                f"(its fields: {fields})",
            )


def judge_prompt(scorer: JudgeScorer, answer: Mapping[str, Any], prompt: Prompt) -> Prompt:
    """The judge's prompt for one answer: the rubric filled in from the answer and its prompt."""
    values = {
        **{name: _text(value) for name, value in prompt.metadata.items()},
        "prompt": prompt.text,
        "response": answer["full_response"] or "",
        "prompt_id": prompt.id,
        "category": prompt.category,
        "is_synthetic_probe": _text(prompt.is_synthetic_probe),
        "labels": ", ".join(scorer.labels),
    }
    turns = [Message("user", scorer.template.format_map(values))]
    if scorer.system:
        turns.insert(0, Message("system", scorer.system.format_map(values)))
    return Prompt(
        id=answer["key"].replace("%", "%25").replace("|", "%7C"),
        messages=tuple(turns),
        category=prompt.category,
        is_synthetic_probe=prompt.is_synthetic_probe,
        metadata={"answer_key": answer["key"], "answer": answer_digest(answer)},
    )


def _text(value: Any) -> str:
    """A prompt field as the rubric shows it: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class VerdictParser:
    """The last match of the scorer's verdict pattern, checked against its labels."""

    def __init__(self, scorer: JudgeScorer) -> None:
        self._pattern = compile_user_pattern(scorer.verdict_pattern)
        fold = (lambda text: text) if scorer.case_sensitive else str.casefold
        self._fold = fold
        self._labels = {fold(label): label for label in scorer.labels}

    def __call__(self, text: str) -> Verdict:
        """The verdict in `text` (a label and the text it came from); UNPARSEABLE (with the
        whole text) when there is none."""
        last = collections.deque(self._pattern.finditer(text), maxlen=1)
        if not last:
            return Verdict(UNPARSEABLE, None, text)
        found = last[0]
        label = self._labels.get(self._fold((found.group(1) or "").strip()))
        if label is None:
            return Verdict(UNPARSEABLE, None, text)
        return Verdict(label, None, found.group(0) or "")


def judged(run: JudgeRun, prompts: Iterable[Prompt]) -> Iterable[tuple[Prompt, dict[str, Any]]]:
    """Each prompt with the judge's latest record for it, made from that same prompt content;
    prompts the judge has not (yet) answered are left out."""
    wanted = {run.key(p.id): p for p in prompts}
    ledger = run.ledger
    if not ledger.exists():
        return
    for record in latest_records(ledger):
        prompt = wanted.get(record["key"])
        if prompt is not None and record.get("prompt_hash") == prompt.hash:
            yield prompt, record
