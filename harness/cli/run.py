"""The verbs of the run path: `run` (every job not yet done), `rerun` (the jobs whose latest record
failed), `plan` (what the pending jobs will cost and take) and `doctor` (dependencies, prompts,
keys, GPU, disk), and what they say when they end: where the results are and what to do next."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import anyio
from rich.console import Console

from harness.cli.given_config import (
    add_config_options,
    config_of,
    config_words,
    printed_config,
)
from harness.cli.selection import add_filters, selection_of
from harness.config.command_line import COMMAND_LINE
from harness.errors import (
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_OK,
    InputError,
    recorded_error_types,
)
from harness.ledger.index import ResumeIndex
from harness.ledger.sets import tree
from harness.ledger.shards import Shard
from harness.run.doctor import diagnose, probe_checks, report
from harness.run.execute import execute, left_to_do, pending, run_pending
from harness.run.plan import Assumptions, make_plan
from harness.run.plan_view import plan_json, show_plan
from harness.run.preflight import probe_all
from harness.run.prepare import Overrides, Prepared, prepare
from harness.run.rerun import FailedJobs, failed_jobs, refuse_unknown_variants
from harness.run.run_ledger import RunLedger, open_index
from harness.scrub import REDACTED, SECRETS, scrubbed
from harness.terminal import PROMPT_COUNT, TOKENS, Parser, seconds
from harness.terminal import command_line as _command
from harness.terminal import say as _say


def add_run_verbs(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add `run`, `rerun`, `plan` and `doctor` to the command line's verbs."""
    run = verbs.add_parser("run", help="run every job not yet done (resumes an existing ledger)")
    _add_selection(run)
    run.add_argument(
        "--fresh", action="store_true", help="set aside every ledger the run reads, start anew"
    )
    run.set_defaults(verb=_run)

    rerun = verbs.add_parser("rerun", help="run again only the jobs whose latest record failed")
    _add_selection(rerun)
    rerun.add_argument("--variant", action="append", default=[], help="variant id or model name")
    rerun.add_argument(
        "--error-type",
        action="append",
        default=[],
        choices=recorded_error_types(),
        metavar="TYPE",
        help=f"one of {', '.join(recorded_error_types())}",
    )
    rerun.set_defaults(verb=_rerun)

    plan = verbs.add_parser("plan", help="what the pending jobs will cost and take; sends nothing")
    _add_selection(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument(
        "--output-tokens",
        type=TOKENS,
        help="output tokens per answer until a variant has answers (default: half of max_tokens)",
    )
    plan.add_argument(
        "--latency",
        type=seconds,
        help="seconds per request until a variant has answers (default: 1 + 0.02 per token)",
    )
    plan.set_defaults(verb=_plan)

    doctor = verbs.add_parser("doctor", help="check dependencies, prompts, keys, GPU, disk")
    doctor.add_argument("config", help="the run's TOML config")
    doctor.add_argument(
        "--probe", action="store_true", help="send every API model one request (max_tokens 1)"
    )
    doctor.add_argument(
        "--probe-timeout",
        type=seconds,
        metavar="SECONDS",
        help="how long a probe may take (default: [preflight] timeout, 30)",
    )
    doctor.add_argument(
        "--probe-local", action="store_true", help="with --probe: load and probe local models too"
    )
    doctor.set_defaults(verb=_doctor)


def _run(args: argparse.Namespace, console: Console) -> int:
    if args.print_config:
        return _print_config(args, console)
    prepared = _prepared(args)
    _probe_first(prepared, console)
    ledger = RunLedger.open(prepared, fresh=args.fresh, console=console)
    try:
        _say_other_prompts(prepared, ledger, console)
        left = left_to_do(prepared, pending(ledger.index), ledger.index.answered)
        changed = left.changed
        if changed:  # those jobs are not done: the run goes on to run them
            _say(
                console,
                f"{changed:,} job(s) were answered from other prompt content than they have "
                "now (an edited prompt, or another prompts file with the same ids): running them "
                "again",
            )
        code = anyio.run(
            lambda: run_pending(
                prepared, command="run", console=console, argv=args.argv, ledger=ledger, left=left
            )
        )
    finally:
        ledger.close()
    if code is None:  # nothing appended: not even a run line (nor an empty ledger left)
        _say_nothing_to_do(prepared, console)
        return EXIT_OK
    _what_next(args, prepared, ledger.index, console, failures=code != EXIT_OK)
    return code


def _say_other_prompts(prepared: Prepared, ledger: RunLedger, console: Console) -> None:
    """Note that the ledger's earlier runs sent other prompts, whose answers it keeps."""
    here = prepared.config.prompts.location
    if ledger.prompt_sets and here not in ledger.prompt_sets:
        others = ", ".join(sorted(ledger.prompt_sets))
        _say(
            console,
            f"note: {prepared.ledger_path} holds answers to other prompts ({others}): they stay "
            "beside this run's, and status, stats and exports count them all (another "
            "--output keeps them apart)",
        )


def _say_nothing_to_do(prepared: Prepared, console: Console) -> None:
    """Say that every job is done, in which ledgers, and a `status` that shows them."""
    held = prepared.reads()
    if not held:
        _say(console, "nothing to do: no job falls to this run")
        return
    done = sum(prepared.totals().values())
    _say(console, f"nothing to do: {done:,} jobs already done ({', '.join(map(str, held))})")
    _say(console, f"see them with: {_command('status', *_status_words(prepared, held))}")


def _status_words(prepared: Prepared, held: list[Path]) -> list[str]:
    """What `status` takes to show the ledgers `held`: the run's output, else its root (a
    shard's), when that directory's tree holds them all; else the ledgers themselves."""
    wanted = {path.resolve() for path in held}
    for top in (prepared.config.output, prepared.root):
        if top is not None and wanted <= {path.resolve() for path in tree(top)}:
            return [str(top)]
    return [str(path) for path in held]


def _rerun(args: argparse.Namespace, console: Console) -> int:
    if args.print_config:
        return _print_config(args, console)
    prepared = _prepared(args)
    if not prepared.reads() and not prepared.ledger_path.exists():
        raise InputError(f"{prepared.ledger_path}: no such ledger, so no failed job to rerun")
    _probe_first(prepared, console)
    ledger = RunLedger.open(prepared, fresh=False, console=console, failures=True)
    try:
        return _rerun_locked(args, prepared, ledger, console)
    finally:
        ledger.close()


def _rerun_locked(
    args: argparse.Namespace, prepared: Prepared, ledger: RunLedger, console: Console
) -> int:
    index = ledger.index
    refuse_unknown_variants(prepared, index, args.variant)
    failed = failed_jobs(prepared, index, variants=args.variant, error_types=args.error_type)
    _say_what_cannot_rerun(args, prepared, failed, console)
    if not failed.runnable:
        console.print(f"{prepared.ledger_path}: no failed jobs match; nothing to rerun.")
        return EXIT_OK
    console.print(f"Rerunning {len(failed.runnable):,} failed job(s).")
    code = anyio.run(
        lambda: execute(
            prepared,
            command="rerun",
            wanted=lambda key, _: key in failed.runnable,
            console=console,
            ledger=ledger,
            argv=args.argv,
        )
    )
    _what_next(args, prepared, ledger.index, console)
    return EXIT_FAILED if failed.elsewhere and code == EXIT_OK else code


def _say_what_cannot_rerun(
    args: argparse.Namespace, prepared: Prepared, failed: FailedJobs, console: Console
) -> None:
    """Name the variants of failed jobs this run does not have (an error when it can do none of
    the jobs), and count those of prompts or samples it leaves out."""
    if failed.elsewhere:
        count = sum(failed.elsewhere.values())
        names = ", ".join(f"{v} ({n:,})" for v, n in sorted(failed.elsewhere.items()))
        message = f"{count:,} failed job(s) belong to variants not in this run: {names}"
        if not failed.runnable:
            raise InputError(f"{prepared.config.path}: {message}")
        console.print(f"{message}; not rerunning them.")
    if failed.left_out:
        console.print(
            f"{failed.left_out:,} failed job(s) are of prompts or samples this run leaves out "
            f"({_left_out_by(args, prepared)}); not rerunning them."
        )


def _left_out_by(args: argparse.Namespace, prepared: Prepared) -> str:
    """What makes a run leave prompts out, as the user set it."""
    words = [w for w in prepared.selection.argv() if w.startswith("--")]
    return ", ".join([*words, *(["--prompts"] if args.prompts else []), "samples"])


def _plan(args: argparse.Namespace, console: Console) -> int:
    if args.print_config:
        return _print_config(args, console)
    prepared = _prepared(args, planning=True)
    # With --json, stdout holds the JSON alone; what else there is to say goes to stderr.
    notes = (
        Console(file=scrubbed(sys.stderr), highlight=False, markup=False) if args.json else console
    )
    index = open_index(prepared, notes)
    plan = make_plan(prepared, index, Assumptions(args.output_tokens, args.latency))
    if args.json:
        console.file.write(plan_json(plan) + "\n")
    else:
        show_plan(plan, console)
    return EXIT_OK


def _probe_first(prepared: Prepared, console: Console) -> None:
    """With `[preflight] probe = true`, every API model answers one request before anything is
    written; otherwise an InputError with one line per model that did not."""
    policy = prepared.config.preflight
    if not policy.probe:
        return
    probes = anyio.run(lambda: probe_all(list(prepared.models), timeout=policy.timeout))
    failed = [p for p in probes if p.ok is False]
    if failed:
        where = prepared.config.path
        raise InputError("\n".join(f"{where}: {p.target.where}: probe: {p.detail}" for p in failed))
    for p in probes:
        _say(console, f"probe {p.target.model.name}: {p.detail}")


def _doctor(args: argparse.Namespace, console: Console) -> int:
    diagnosis = diagnose(Path(args.config))
    checks = diagnosis.checks
    if args.probe:
        checks += anyio.run(
            lambda: probe_checks(diagnosis, timeout=args.probe_timeout, local=args.probe_local)
        )
    return EXIT_OK if report(checks, console) else EXIT_INPUT


def _prepared(args: argparse.Namespace, *, planning: bool = False) -> Prepared:
    """The run the command line asks for: its config file, or the one it gives (`--model`),
    with the changes it makes (see `prepare`); InputError with every mistake found in either."""
    given = config_of(args)
    overrides = Overrides(
        prompts=args.prompts,
        output=args.output,
        selection=selection_of(args),
        models=tuple(args.models.split(",")) if args.models else (),
        mode=args.mode,
        shard=Shard.parse(args.shard) if args.shard is not None else None,
        inline=given.toml,
    )
    problems = list(given.problems)
    if given.toml is not None or given.path != COMMAND_LINE:
        try:
            prepared = prepare(given.path, overrides, planning=planning)
        except InputError as exc:
            problems.append(given.told(str(exc)))
        else:
            if not problems:
                return prepared
    raise InputError("\n".join(problems))


def _print_config(args: argparse.Namespace, console: Console) -> int:
    console.file.write(printed_config(args))
    return EXIT_OK


def _what_next(
    args: argparse.Namespace,
    prepared: Prepared,
    index: ResumeIndex,
    console: Console,
    *,
    failures: bool = True,
) -> None:
    """Say where the results are, how to see them, and (unless `failures` is false) for each
    type of error still failing (in `index`, the run's as it ended), the `rerun` line that
    retries those jobs."""
    output = str(prepared.config.output)
    _say(console, f"Results: {prepared.ledger_path} (see them with: {_command('status', output)})")
    if prepared.shard is not None:
        root = str(prepared.root)
        inside = prepared.config.output.resolve().is_relative_to(Path(root).resolve())
        sources = [root] if inside else [root, output, "(and the other shards' outputs)"]
        _say(
            console,
            f"Every shard's results together: {_command('status', *sources[:2])}; once the "
            f"shards are done, join them: {_command('merge', *sources[:2], '--into', root)}"
            + ("" if inside else f" {sources[2]}"),
        )
    if not failures:
        return
    failed = failed_jobs(prepared, index, variants=getattr(args, "variant", ()))
    by_type = Counter(failed.runnable.values()).most_common()
    if not by_type:
        return
    counts = ", ".join(f"{count:,} {error_type}" for error_type, count in by_type)
    _say(console, f"Still failing: {counts}. To retry them:")
    known = recorded_error_types()
    for error_type, count in by_type:
        if error_type in known:
            line = _command("rerun", *_same_jobs(args), "--error-type", error_type)
            _say(console, f"  {line}  # {count:,} job(s)")
    others = sum(count for error_type, count in by_type if error_type not in known)
    if others:  # a type no --error-type names (a record written by hand, say): all of them
        _say(console, f"  {_command('rerun', *_same_jobs(args))}  # every failed job")
    if any(SECRETS.scrub(word) != word for word in _same_jobs(args)):
        _say(
            console,
            f"  (a secret typed on the command line shows as {REDACTED}: give it from a "
            "variable, --option api_key='${VAR}', for lines that paste)",
        )


def _same_jobs(args: argparse.Namespace) -> list[str]:
    """The config and the options that make another command pick the jobs this one picked."""
    words = [*config_words(args), *selection_of(args).argv()]
    for flag in ("prompts", "output", "models", "mode", "shard"):
        if getattr(args, flag) is not None:
            words += [f"--{flag}", str(getattr(args, flag))]
    for value in getattr(args, "variant", ()):
        words += ["--variant", value]
    return words


def _add_selection(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    add_filters(parser)
    parser.add_argument(
        "--sample",
        type=PROMPT_COUNT,
        metavar="N",
        help="N prompts drawn by category and probe flag, the same for the same seed",
    )
    parser.add_argument(
        "--limit", type=PROMPT_COUNT, help="only the first N prompts (after filters)"
    )
    parser.add_argument(
        "--prompts", help="another prompts file, dataset folder or hf://datasets/ORG/NAME"
    )
    parser.add_argument("--output", type=Path, help="another output directory")
    parser.add_argument("--models", help="comma-separated model names to run")
    parser.add_argument(
        "--mode",
        choices=("live", "batch"),
        help="run every model live or through its provider's batch API (default: each "
        "model's mode)",
    )
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="only part K of N of the jobs (0-based: $SLURM_ARRAY_TASK_ID/"
        "$SLURM_ARRAY_TASK_COUNT), into OUTPUT/shards/K-of-N unless --output is given",
    )
