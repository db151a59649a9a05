"""`harness score`: every configured scorer over the latest successful answers, into scores.jsonl.

`prepare_scoring` checks everything first (the config, the scorers asked for, the answers'
ledger, the prompts and rubric fields a judge needs, the judge's provider and key), so bad input
writes nothing. `score` then locks `OUTPUT/scores.jsonl`, reads which scores are current (the
same definition hash, answer digest and, for a judge, rendered rubric), and appends a line for
every other answer: the rule scorers in one pass over the answers, then each judge through its own
run (see `harness.analysis.judge`), made by the `JudgeRunner` the caller passes in, then the
target and Python scorers in one more pass (see `harness.analysis.targets`, which may read the
others' labels, and `harness.analysis.functions`). A killed
`score` loses at most scores not yet written; the next one skips those that were, and a judge sends
again only what its ledger lacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, TextColumn, TimeElapsedColumn

from harness.analysis.answers import Skipped, latest_records
from harness.analysis.functions import FunctionScorer, ImportProblem
from harness.analysis.judge import (
    JudgeRun,
    JudgeRunner,
    VerdictParser,
    check_fields,
    definition,
    judge_prompt,
    judged,
    setup_judge,
)
from harness.analysis.probe_labels import SCORERS_NAME, check_probe_labels, write_probe_labels
from harness.analysis.rules import RuleMatcher, seen_as
from harness.analysis.score_view import Tally
from harness.analysis.scores import (
    SCORES_NAME,
    ScoreState,
    Verdict,
    answer_digest,
    definition_hash,
    read_score_states,
    score_key,
    score_line,
)
from harness.analysis.targets import TargetError, TargetMatcher
from harness.config.run_config import RunConfig
from harness.config.scorers import (
    ExistenceScorer,
    JudgeScorer,
    PythonScorer,
    Scorer,
    TargetScorer,
)
from harness.errors import EXIT_OK, ConfigError, InputError
from harness.ledger.lines import LEDGER_NAME
from harness.ledger.record import utc_timestamp
from harness.ledger.sets import Ledgers, ledgers_of, tree
from harness.ledger.writer import LedgerWriter
from harness.prompts.load import Prompt, load_prompts

_SYNC_SECONDS = 1.0


@dataclass(frozen=True)
class _Judge:
    scorer: JudgeScorer
    run: JudgeRun  # the judge's run, checked, without prompts
    definition: str
    parse: VerdictParser


@dataclass(frozen=True)
class _Target:
    matcher: TargetMatcher
    definition: str
    targets: dict[str, tuple[str, ...]]  # per prompt id, its target's values


@dataclass(frozen=True)
class ScoringPlan:
    """Everything `score` needs, checked; nothing written yet."""

    config: RunConfig
    scorers: tuple[Scorer, ...]
    rules: dict[str, tuple[RuleMatcher, str]]  # scorer name -> its matcher, definition hash
    judges: tuple[_Judge, ...]
    targets: dict[str, _Target]  # scorer name -> its matcher, definition hash, targets
    functions: dict[str, tuple[FunctionScorer, str]]  # scorer name -> it, its definition hash
    prompts: dict[str, Prompt]  # by id; loaded only when a scorer needs them

    @property
    def ledger(self) -> Ledgers:
        """The answers' ledgers: the output's, and every shard's under it, read as one."""
        return ledgers_of([self.config.output])

    @property
    def scores_path(self) -> Path:
        """Where the scores go."""
        return self.config.output / SCORES_NAME

    @property
    def definitions(self) -> dict[str, str]:
        """The definition hash of every scorer that labels answers of its own (not a target
        scorer), by name."""
        found = {name: definition for name, (_, definition) in self.rules.items()}
        found |= {judge.scorer.name: judge.definition for judge in self.judges}
        return found | {name: definition for name, (_, definition) in self.functions.items()}


@dataclass
class ScoringResult:
    """What `score` did: each scorer's labels over every answer, and the judges' exit code."""

    tallies: dict[str, Tally]
    skipped_lines: int = 0
    ledger_skipped: int = 0  # the ledger's lines left out (torn, damaged, of no known shape)
    code: int = EXIT_OK
    notes: list[str] = field(default_factory=list)


def prepare_scoring(
    config: RunConfig,
    runner: JudgeRunner,
    names: Sequence[str] = (),
    output: Path | None = None,
) -> ScoringPlan:
    """Check the chosen scorers of a loaded config (all when `names` is empty) and what they
    need, each judge's run made by `runner`; raises InputError before anything is written."""
    if output is not None:
        config = replace(config, output=output)
    scorers = _chosen(config, names)
    check_probe_labels(config.output / SCORERS_NAME)
    if not tree(config.output):
        ledger = config.output / LEDGER_NAME
        raise InputError(f"{ledger}: no answers to score (run `harness run {config.path}` first)")
    rules = {}
    for scorer in scorers:
        if not isinstance(scorer, JudgeScorer | TargetScorer | PythonScorer):
            matcher = RuleMatcher(scorer)
            rules[scorer.name] = (matcher, definition_hash(matcher.definition))
    judges = []
    chosen = {s.name for s in scorers}
    # The prompt set as the config names it (all of it: an answer's prompt is found by id).
    needed = any(isinstance(s, JudgeScorer | TargetScorer | PythonScorer) for s in scorers)
    prompts = load_prompts(config.prompts) if needed else []
    targets, functions = {}, {}
    for index, scorer in enumerate(config.scorers):
        if isinstance(scorer, JudgeScorer) and scorer.name in chosen:
            check_fields(config, index, scorer, prompts)
            run = setup_judge(config, scorer, runner)
            digest = definition_hash(definition(scorer, run.variant))
            judges.append(_Judge(scorer, run, digest, VerdictParser(scorer)))
        elif isinstance(scorer, TargetScorer) and scorer.name in chosen:
            target = TargetMatcher(scorer)
            values = _targets(config, index, target, prompts)
            targets[scorer.name] = _Target(target, definition_hash(target.definition), values)
        elif isinstance(scorer, PythonScorer) and scorer.name in chosen:
            try:
                function = FunctionScorer(scorer, config.path.parent)
            except ImportProblem as exc:
                raise ConfigError(config.path, f"scorers[{index}].function", str(exc)) from None
            functions[scorer.name] = (function, definition_hash(function.definition))
    by_id = {prompt.id: prompt for prompt in prompts}
    return ScoringPlan(config, scorers, rules, tuple(judges), targets, functions, by_id)


def _targets(
    config: RunConfig, index: int, matcher: TargetMatcher, prompts: list[Prompt]
) -> dict[str, tuple[str, ...]]:
    """Each prompt's target values; a ConfigError naming the first prompt without one (or with
    one the scorer cannot read), before anything is written."""
    field, found = matcher.scorer.field, {}
    for prompt in prompts:
        fields = {"category": prompt.category, **prompt.metadata}
        try:
            values = matcher.targets(fields)
        except TargetError as exc:
            where = f"prompt {prompt.id!r} in {config.prompts}"
            raise ConfigError(config.path, f"scorers[{index}].field", f"{where}: {exc}") from None
        if values is None:
            known = ", ".join(fields) or "none"
            raise ConfigError(
                config.path,
                f"scorers[{index}].field",
                f"{field} is not a field of prompt {prompt.id!r} in {config.prompts} "
                f"(its fields: {known})",
            )
        found[prompt.id] = values
    return found


def _chosen(config: RunConfig, names: Sequence[str]) -> tuple[Scorer, ...]:
    if not config.scorers:
        raise InputError(f"{config.path}: no [[scorers]] table: add one (see docs/scoring.md)")
    known = [s.name for s in config.scorers]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InputError(
            f"--scorers: no scorer named {', '.join(unknown)} in {config.path} "
            f"(scorers: {', '.join(known)})"
        )
    wanted = set(names or known)
    # A target scorer reads another's labels: the two are scored together, so that neither is
    # current while the other is not (a target scorer never reads another target scorer).
    reads = [(s.name, s.of) for s in config.scorers if isinstance(s, TargetScorer) and s.of]
    wanted |= {of for name, of in reads if name in wanted}
    wanted |= {name for name, of in reads if of in wanted}
    return tuple(s for s in config.scorers if s.name in wanted)


async def score(plan: ScoringPlan, console: Console, argv: Sequence[str] = ()) -> ScoringResult:
    """Append every score not yet current; returns the labels of all answers per scorer."""
    # What the labels mean first: the scores made below are under these definitions.
    meant = write_probe_labels(plan.config.output, _probe_labels(plan))
    writer = LedgerWriter(plan.scores_path, batch=1024)
    try:
        states, skipped = read_score_states(plan.scores_path, [s.name for s in plan.scorers])
        result = ScoringResult({s.name: Tally(s.name) for s in plan.scorers}, skipped)
        result.notes += [
            f"{name}: its claims and denies labels recorded in {plan.config.output / SCORERS_NAME}"
            for name in meant
        ]
        read = frozenset(t.matcher.scorer.of for t in plan.targets.values())
        scores = _Scores(writer, states, result, read)
        if plan.rules:
            _score_rules(plan, scores, console)
        for judge in plan.judges:
            code = await _score_judge(plan, judge, scores, console, argv)
            result.code = max(result.code, code)
        # The target scorers that read no Python scorer's labels, in a pass of their own: a
        # Python scorer that raises stops `score`, and none of them is left behind the labels it
        # reads. Those that read a Python scorer's come with it, answer by answer.
        of_python = {
            name: target
            for name, target in plan.targets.items()
            if target.matcher.scorer.of in plan.functions
        }
        alone = {name: t for name, t in plan.targets.items() if name not in of_python}
        if alone:
            _score_by_prompt(plan, scores, console, alone, {})
        if plan.functions:
            _score_by_prompt(plan, scores, console, of_python, plan.functions)
    finally:
        writer.close()
    return result


def _probe_labels(plan: ScoringPlan) -> dict[str, tuple[str, str | None, str | None]]:
    """Each scorer scored that can say whether an item exists: its definition hash, and the
    labels that claim and deny it (see `harness.analysis.probe_labels`)."""
    definitions = plan.definitions
    found: dict[str, tuple[str, str | None, str | None]] = {}
    for scorer in plan.scorers:
        if isinstance(scorer, ExistenceScorer) and scorer.name in definitions:
            found[scorer.name] = (definitions[scorer.name], scorer.claims, scorer.denies)
    return found


@dataclass(frozen=True)
class _Scores:
    """What every scoring pass writes to: the scores file, each score key's state as it is now
    (a target scorer reads the labels given before it), and the tallies."""

    writer: LedgerWriter
    states: dict[str, ScoreState]
    result: ScoringResult
    read: frozenset[str]  # the scorers a target scorer reads: their new states are held

    def counted(self, record: dict[str, Any], name: str, made: tuple[str, str, str | None]) -> bool:
        """Whether `record` has a current score from scorer `name` (made of its definition, the
        answer's digest and its input), counted when it has."""
        state = self.states.get(score_key(record["key"], name))
        if state is None or not state.current(*made):
            return False
        self.result.tallies[name].add(record, state.label)
        return True

    def give(
        self,
        record: dict[str, Any],
        name: str,
        made: tuple[str, str, str | None],
        verdict: Verdict,
        now: str,
    ) -> None:
        """Write the score `verdict` of `record` from scorer `name`, and count it."""
        definition, digest, input_id = made
        self.write(score_line(
            record["key"], name, definition=definition, answer=digest, label=verdict.label,
            value=verdict.value, detail=verdict.detail, input=input_id, timestamp=now))  # fmt: skip
        self.result.tallies[name].add(record, verdict.label, new=True)

    def write(self, line: dict[str, Any]) -> None:
        """Append a score line (held as its key's state when a target scorer reads it)."""
        self.writer.append(line)
        if line["scorer"] in self.read:
            self.states[line["key"]] = ScoreState.of(line)


def _score_rules(plan: ScoringPlan, scores: _Scores, console: Console) -> None:
    """One pass over the answers for every rule scorer."""
    for record in _each_answer(plan, scores, console, "rule scoring: answers"):
        digest, now, seen = answer_digest(record), utc_timestamp(), None
        for name, (matcher, definition_id) in plan.rules.items():
            made = (definition_id, digest, None)
            if not scores.counted(record, name, made):
                seen = seen or seen_as(record["full_response"] or "")  # once for all scorers
                label, detail = matcher.label_seen(*seen)
                scores.give(record, name, made, Verdict(label, None, detail), now)


def _each_answer(
    plan: ScoringPlan, scores: _Scores, console: Console, label: str
) -> Iterator[dict[str, Any]]:
    """Every latest successful answer, counted on a terminal as `label`; the scores written
    meanwhile are synced every second, and the ledger's lines left out counted in `result`."""
    synced = time.monotonic()
    skipped = Skipped()
    with _counter(console, label) as advance:
        for record in latest_records(plan.ledger, successes_only=True, skipped=skipped):
            yield record
            advance()
            if time.monotonic() - synced > _SYNC_SECONDS:
                scores.writer.sync()
                synced = time.monotonic()
    scores.result.ledger_skipped = max(scores.result.ledger_skipped, skipped.lines)


async def _score_judge(
    plan: ScoringPlan, judge: _Judge, scores: _Scores, console: Console, argv: Sequence[str]
) -> int:
    """Ask the judge about every answer without a current score, then turn its answers into
    scores; the judge run's exit code."""
    result = scores.result
    name, tally = judge.scorer.name, result.tallies[judge.scorer.name]
    todo = _questions(plan, judge, scores.states, result)
    if not todo:
        return EXIT_OK
    console.print(f"{name}: asking {judge.run.model} about {len(todo):,} answer(s)")
    prompts = [asked for asked, _ in todo.values()]
    code = await judge.run.ask(prompts, command="score", console=console, argv=argv)
    for asked, record in judged(judge.run, prompts):
        line = _judge_score(judge, asked, record)
        scores.write(line)
        tally.add(todo.pop(asked.id)[1], line["label"], new=True)
    if todo:
        tally.unscored += len(todo)
        result.notes.append(
            f"{name}: {len(todo):,} answer(s) not judged yet (stopped early): "
            "run the same command again to continue"
        )
    return EXIT_OK if code is None else code


def _questions(
    plan: ScoringPlan, judge: _Judge, states: dict[str, ScoreState], result: ScoringResult
) -> dict[str, tuple[Prompt, dict[str, Any]]]:
    """The judge's prompt for every answer without a current score (by prompt id, with what a
    tally needs of the answer); answers with a current score are counted as they are."""
    name, tally = judge.scorer.name, result.tallies[judge.scorer.name]
    todo: dict[str, tuple[Prompt, dict[str, Any]]] = {}
    changed = 0
    skipped = Skipped()
    for record in latest_records(plan.ledger, successes_only=True, skipped=skipped):
        prompt = plan.prompts.get(record["prompt_id"])
        if prompt is None or prompt.hash != record.get("prompt_hash"):
            changed += 1  # the prompt set no longer has the text this answer was made from
            continue
        asked = judge_prompt(judge.scorer, record, prompt)
        state = states.get(score_key(record["key"], name))
        if state is not None and state.current(judge.definition, answer_digest(record), asked.hash):
            tally.add(record, state.label)
        else:
            todo[asked.id] = (asked, _slim(record))
    result.ledger_skipped = max(result.ledger_skipped, skipped.lines)
    if changed:
        tally.unscored += changed
        result.notes.append(
            f"{name}: {changed:,} answer(s) were made from prompt text the prompt set no "
            "longer has (edited or removed): not judged; `harness run` answers them again"
        )
    return todo


def _score_by_prompt(
    plan: ScoringPlan,
    scores: _Scores,
    console: Console,
    targets: dict[str, _Target],
    functions: dict[str, tuple[FunctionScorer, str]],
) -> None:
    """One pass over the answers for these Python and target scorers (they are given the
    answer's prompt), each answer's Python scorers first (a target scorer may read one's)."""
    result, states = scores.result, scores.states
    changed, waiting = 0, dict.fromkeys(targets, 0)
    definitions = plan.definitions
    given: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}  # the prompt as a function has it
    for record in _each_answer(plan, scores, console, "scoring by prompt: answers"):
        prompt = plan.prompts.get(record["prompt_id"])
        if prompt is None or prompt.hash != record.get("prompt_hash"):
            changed += 1  # made from prompt text the prompt set no longer has
            continue
        digest, now = answer_digest(record), utc_timestamp()
        for name, (function, definition_id) in functions.items():
            if (name, prompt.id) not in given:
                fields = function.prompt_fields(prompt)
                given[name, prompt.id] = (fields, function.input_digest(fields))
            fields, input_id = given[name, prompt.id]
            made = (definition_id, digest, input_id)
            if not scores.counted(record, name, made):
                scores.give(record, name, made, function.label(record, fields), now)
        for name, target in targets.items():
            values, of = target.targets[prompt.id], target.matcher.scorer.of
            read = None
            if of:
                state = states.get(score_key(record["key"], of))
                if state is None or not state.made_by(definitions[of], digest):
                    waiting[name] += 1
                    continue
                read = (state.label or "", state.definition)
            made = (target.definition, digest, target.matcher.input_digest(values, read))
            if not scores.counted(record, name, made):
                text, label = record["full_response"] or "", read[0] if read else None
                verdict = target.matcher.verdict(text, values, label)
                scores.give(record, name, made, verdict, now)
    for name, count in waiting.items():
        result.tallies[name].unscored += count + changed
        if count:
            of = targets[name].matcher.scorer.of
            result.notes.append(
                f"{name}: {count:,} answer(s) have no current {of} label (not scored yet, or "
                f"its request failed): run the same command again once {of} has scored them"
            )
    if changed:
        for name in functions:
            result.tallies[name].unscored += changed
        result.notes.append(
            f"{', '.join([*targets, *functions])}: {changed:,} answer(s) were made "
            "from prompt text the prompt set no longer has: not scored (an edited prompt: "
            "`harness run` answers it again; a removed one stays unscored)"
        )


def _judge_score(judge: _Judge, asked: Prompt, record: dict[str, Any]) -> dict[str, Any]:
    """The score line of one judge record: its verdict, or the error that ended its request."""
    answer_key, answer = asked.metadata["answer_key"], asked.metadata["answer"]
    common = {"definition": judge.definition, "answer": answer, "input": asked.hash}
    if record["status"] != "ok":
        return score_line(
            answer_key, judge.scorer.name, status="error", error=record.get("error"), **common
        )
    verdict = judge.parse(record["full_response"] or "")
    return score_line(
        answer_key, judge.scorer.name, label=verdict.label, detail=verdict.detail, **common
    )


def _slim(record: dict[str, Any]) -> dict[str, Any]:
    """What a tally needs of an answer."""
    return {"variant": record["variant"], "prompt_category": record.get("prompt_category", "")}


class _counter:
    """A live count of items done and their rate on a terminal; nothing elsewhere. Entering
    gives the function that counts one."""

    def __init__(self, console: Console, label: str) -> None:
        self._progress = Progress(
            TextColumn(label, markup=False),
            TextColumn("{task.completed:,}"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self._task = self._progress.add_task(label, total=None)
        self._count = 0

    def __enter__(self) -> Callable[[], None]:
        self._progress.start()
        return self._advance

    def __exit__(self, *exc: object) -> None:
        self._progress.update(self._task, completed=self._count)
        self._progress.stop()

    def _advance(self) -> None:
        self._count += 1
        if self._count % 1024 == 0:
            self._progress.update(self._task, completed=self._count)
