"""The command line: `run`, `rerun`, `status`, `plan`, `doctor`, `merge` and `batches cancel`
(and, from `harness.cli.answers`, `score` and `annotate`; from `harness.cli.results`, `stats` and
`export`; from `harness.cli.report`, `report`).

Exit codes: 0 every job answered, 1 some failed for good, 2 bad input or set-up, 3 the ledger
could not be written mid-run (disk full, file replaced), 4 a budget cap stopped the run (raise
budget_usd and run again), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO, cast

import anyio
from rich.console import Console
from rich.logging import RichHandler

from harness.cli.answers import add_analysis_verbs
from harness.cli.options import add_options_verb
from harness.cli.report import add_report_verb
from harness.cli.results import add_result_verbs
from harness.errors import (
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_LEDGER,
    EXIT_OK,
    InputError,
    LedgerWriteError,
    recorded_error_types,
)
from harness.ledger.index import ResumeIndex, build_index
from harness.ledger.lines import LEDGER_NAME
from harness.ledger.merge import merge
from harness.ledger.sets import Ledgers, ledgers_of, tree
from harness.ledger.shards import Shard
from harness.prompts.selection import Selection
from harness.run import open_batches
from harness.run.doctor import diagnose, probe_checks, report
from harness.run.execute import execute, left_to_do, pending, run_pending
from harness.run.plan import Assumptions, make_plan
from harness.run.plan_view import plan_json, show_plan
from harness.run.preflight import probe_all
from harness.run.prepare import Overrides, Prepared, prepare
from harness.run.progress import reading_bar
from harness.run.rerun import FailedJobs, failed_jobs, refuse_unknown_variants
from harness.run.run_ledger import RunLedger, open_index
from harness.run.summary import summarize, summary_table
from harness.scrub import SECRETS, ScrubbedStream, redact_urls, scrub_log_record
from harness.terminal import PROMPT_COUNT, TOKENS, Parser, error_lines, seconds
from harness.terminal import command_line as _command
from harness.terminal import say as _say


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the verb, return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    # Off a terminal rich would wrap tables at 80 columns; a log file can take wide lines. No
    # markup: names, paths and messages are shown as typed (`[/]` would crash rich, `[v2]` vanish);
    # styles are given as `Text` styles.
    console = Console(
        file=_scrubbed(sys.stdout),
        highlight=False,
        markup=False,
        width=None if sys.stdout.isatty() else 160,
    )
    _log_to(console)
    verb: Callable[[argparse.Namespace, Console], int] = args.verb  # set_defaults(verb=...)
    try:
        with _signals_interrupt():
            return verb(args, console)
    except InputError as exc:
        for line in error_lines(redact_urls(SECRETS.scrub(str(exc)))):
            print(f"error: {line}", file=sys.stderr)
        return EXIT_INPUT
    except LedgerWriteError as exc:  # one line, from the writer or the run's task group
        print(f"error: {' '.join(error_lines(str(exc)))}", file=sys.stderr)
        return EXIT_LEDGER
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Make SIGINT and SIGTERM alike raise KeyboardInterrupt wherever they land outside the running
    lanes (which take both over while they run: see harness.run.scheduler)."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _scrubbed(stream: TextIO) -> TextIO:
    """`stream`, with every secret scrubbed from what is written to it. A ScrubbedStream hands
    every attribute but `write` to the stream it wraps, so it serves where a TextIO is asked for."""
    return cast(TextIO, ScrubbedStream(stream))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _log_to(console: Console) -> None:
    """Send the harness's log lines (limit changes, pauses) through the progress console."""
    logger = logging.getLogger("harness")
    handler = RichHandler(console=console, show_path=False, markup=False)
    handler.addFilter(scrub_log_record)
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)


def _run(args: argparse.Namespace, console: Console) -> int:
    prepared = prepare(args.config, _overrides(args))
    _probe_first(prepared, console)
    ledger = RunLedger.open(prepared, fresh=args.fresh, console=console)
    try:
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
    prepared = prepare(args.config, _overrides(args))
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


def _status(args: argparse.Namespace, console: Console) -> int:
    path = ledgers_of(args.ledger)
    selection = _selection(args)
    keeps = selection.keeps_record() if selection.argv() else None
    summary = summarize(path, keeps=keeps)
    if not summary.runs and not summary.records:
        raise InputError(f"{path}: not a ledger (no run line or result record in it)")
    if keeps is not None:
        keeps.refuse_unmet(path)
    if keeps is not None and not summary.variants:
        raise InputError(f"{path}: no record of {selection.describe()}")
    console.print(summary_table(summary, _title(path)))
    if keeps is not None:
        console.print(
            f"Only the records of {selection.describe()}; pending jobs are counted for whole "
            "runs, so they are not shown (`plan CONFIG` with the same options counts them)."
        )
    if summary.skipped:
        console.print(f"{path}: skipped {summary.skipped} unreadable line(s)")
    index = build_index(path) if summary.batch_lines else None
    if index is not None and index.batches:
        runs = open_batches.senders(path)
        lines = anyio.run(lambda: open_batches.states(index, runs, args.config))
        _say(console, f"{len(lines):,} open batch(es), still owing results:")
        for _, line in lines:
            _say(console, f"  {line}")
        commands = open_batches.sender_commands(runs, [batch for batch, _ in lines])
        for words in commands:
            _say(console, f"collect them with: {_command(*words)}")
        _say(console, f"cancel them with: {_command('batches', 'cancel', *args.ledger)}")
    return EXIT_OK


def _title(ledgers: Ledgers) -> str:
    """A summary's title: the ledger, or the ledgers read as one."""
    if len(ledgers.paths) == 1:
        return str(ledgers.paths[0])
    return f"{ledgers} ({len(ledgers.paths)} ledgers read as one)"


def _cancel_batches(args: argparse.Namespace, console: Console) -> int:
    path = ledgers_of(args.ledger)
    index = build_index(path)
    if not index.batches:
        _say(console, f"{path}: no open batches; nothing to cancel")
        return EXIT_OK
    runs = open_batches.senders(path)
    lines = anyio.run(lambda: open_batches.cancel(index, runs, args.config))
    for _, line in lines:
        _say(console, line)
    commands = open_batches.sender_commands(runs, [batch for batch, _ in lines])
    _say(
        console,
        "The next run records what they answered, and the rest as BatchCancelled "
        "(rerun them with --error-type BatchCancelled):",
    )
    for words in commands:
        _say(console, f"  {_command(*words)}")
    return EXIT_FAILED if any(line.startswith("error:") for _, line in lines) else EXIT_OK


def _merge(args: argparse.Namespace, console: Console) -> int:
    sources = ledgers_of(args.ledgers)
    started = time.perf_counter()
    into = args.into
    if into.exists() and not into.is_dir():
        raise InputError(f"{into}: --into names a file; name the output directory")
    try:
        into.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{into}: cannot create the output directory: {exc.strerror}") from None
    existing = (into / LEDGER_NAME).stat().st_size if (into / LEDGER_NAME).is_file() else 0
    total = sum(path.stat().st_size for path in sources.paths) + existing
    with reading_bar(console, "merging", total) as advance:
        done = merge(sources, into, advance)
    left = f"{done.duplicates:,} exact duplicate line(s) left out"
    if done.unfinished:
        left += f"; {done.unfinished:,} unfinished last line(s) left out (a run still writing)"
    _say(
        console,
        f"Merged {done.ledgers:,} ledger(s) into {done.ledger}: {done.lines:,} lines ({left}) "
        f"in {time.perf_counter() - started:.1f} s",
    )
    if done.conflicts:
        _say(
            console,
            f"{done.conflicts:,} key(s) have different answers in different ledgers: every answer "
            f"is kept and the latest is read; each is listed in {done.conflicts_path}",
        )
    _say(console, f"See them with: {_command('status', str(done.ledger))}")
    return EXIT_FAILED if done.conflicts else EXIT_OK


def _plan(args: argparse.Namespace, console: Console) -> int:
    prepared = prepare(args.config, _overrides(args))
    # With --json, stdout holds the JSON alone; what else there is to say goes to stderr.
    notes = (
        Console(file=_scrubbed(sys.stderr), highlight=False, markup=False) if args.json else console
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


def _overrides(args: argparse.Namespace) -> Overrides:
    return Overrides(
        prompts=args.prompts,
        output=args.output,
        selection=_selection(args),
        models=tuple(args.models.split(",")) if args.models else (),
        mode=args.mode,
        shard=Shard.parse(args.shard) if args.shard is not None else None,
    )


def _selection(args: argparse.Namespace) -> Selection:
    categories = [c.strip() for given in args.category for c in given.split(",") if c.strip()]
    if args.category and not categories:
        raise InputError("--category: no category named (an empty value would run them all)")
    return Selection(
        categories=tuple(dict.fromkeys(categories)),
        ids_file=args.ids,
        probes=args.probes,
        sample=getattr(args, "sample", None),
        limit=getattr(args, "limit", None),
    )


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


def _same_jobs(args: argparse.Namespace) -> list[str]:
    """The config and the options that make another command pick the jobs this one picked."""
    words = [args.config, *_selection(args).argv()]
    for flag in ("prompts", "output", "models", "mode", "shard"):
        if getattr(args, flag) is not None:
            words += [f"--{flag}", str(getattr(args, flag))]
    for value in getattr(args, "variant", ()):
        words += ["--variant", value]
    return words


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m harness",
        description="Run LLM evaluations concurrently, resumably.",
        epilog=(
            "exit codes: 0 every job answered, 1 some jobs failed for good, 2 bad input or "
            "set-up (nothing written), 3 the ledger could not be written mid-run, 4 a budget "
            "cap stopped the run (raise budget_usd and run again), 130 interrupted"
        ),
    )
    verbs = parser.add_subparsers(required=True, metavar="VERB")

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

    status = verbs.add_parser(
        "status", help="done / failed / pending per variant, and open batches' provider state"
    )
    status.add_argument("ledger", nargs="+", help=_LEDGERS_HELP)
    _add_filters(status)
    _add_batch_config(status)
    status.set_defaults(verb=_status)

    merging = verbs.add_parser(
        "merge",
        help="join ledgers (a shard tree, runs made elsewhere) into OUTPUT's ledger; nothing "
        "recorded is dropped",
        epilog="exit 1 when some key has different answers in different ledgers (listed in "
        "OUTPUT/merge-conflicts.jsonl; the merge is complete)",
    )
    merging.add_argument("ledgers", nargs="+", help=_LEDGERS_HELP)
    merging.add_argument(
        "--into", type=Path, required=True, metavar="OUTPUT", help="the output directory"
    )
    merging.set_defaults(verb=_merge)

    batches = verbs.add_parser("batches", help="the ledger's open provider batches")
    batch_verbs = batches.add_subparsers(required=True, metavar="ACTION")
    cancel = batch_verbs.add_parser(
        "cancel", help="cancel every open batch at its provider (the next run records them)"
    )
    cancel.add_argument("ledger", nargs="+", help=_LEDGERS_HELP)
    _add_batch_config(cancel)
    cancel.set_defaults(verb=_cancel_batches)
    add_analysis_verbs(verbs)
    add_result_verbs(verbs)
    add_report_verb(verbs)
    add_options_verb(verbs)
    return parser


_LEDGERS_HELP = (
    "ledger files or run output directories (a directory: its ledger and every shard's), "
    "read as one"
)


def _add_batch_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        help="the config whose models' keys reach the open batches (default: the config of "
        "the run that sent each one, as its run line names it)",
    )


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the run's TOML config")
    _add_filters(parser)
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


def _add_filters(parser: argparse.ArgumentParser) -> None:
    """The filters a ledger's records can be read by as well as a prompt set."""
    parser.add_argument(
        "--category",
        action="append",
        default=[],
        metavar="A,B",
        help="only prompts of these categories (comma-separated, repeatable)",
    )
    parser.add_argument("--ids", type=Path, metavar="FILE", help="only the ids in FILE (1/line)")
    probes = parser.add_mutually_exclusive_group()
    probes.add_argument(
        "--probes-only", dest="probes", action="store_const", const=True, help="only probes"
    )
    probes.add_argument(
        "--no-probes", dest="probes", action="store_const", const=False, help="no probes"
    )


if __name__ == "__main__":
    sys.exit(main())
