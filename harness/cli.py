"""The command line: `run`, `rerun`, `status`, `plan`, `doctor`, `stats` and `export`.

Exit codes: 0 every job answered, 1 some failed for good, 2 bad input or set-up, 3 the ledger
could not be written mid-run (disk full, file replaced), 4 a budget cap stopped the run (raise
budget_usd and run again), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import signal
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import anyio
from rich.console import Console
from rich.logging import RichHandler

from harness.analysis.scores import SCORES_NAME
from harness.doctor import diagnose, probe_checks, report
from harness.errors import InputError, LedgerWriteError, recorded_error_types
from harness.ledger import LEDGER_NAME, LedgerWriter, build_index
from harness.plan import Assumptions, make_plan
from harness.plan_view import plan_json, show_plan
from harness.probe import probe_all
from harness.report import summarize, summary_table
from harness.run import (
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_LEDGER,
    EXIT_OK,
    FailedJobs,
    Overrides,
    Prepared,
    changed_content,
    execute,
    failed_jobs,
    nothing_wanted,
    open_index,
    open_writer,
    pending,
    prepare,
)
from harness.scrub import SECRETS, ScrubbedStream, scrub_log_record


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the verb, return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    # Off a terminal rich would wrap tables at 80 columns; a log file can take wide lines.
    console = Console(
        file=ScrubbedStream(sys.stdout),
        highlight=False,
        width=None if sys.stdout.isatty() else 160,
    )
    _log_to(console)
    try:
        with _signals_interrupt():
            return args.verb(args, console)
    except InputError as exc:
        for line in SECRETS.scrub(str(exc)).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_INPUT
    except LedgerWriteError as exc:  # one line, from the writer or the run's task group
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LEDGER
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Make SIGINT and SIGTERM alike raise KeyboardInterrupt wherever they land outside the running
    lanes (which take both over while they run: see harness.scheduler)."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    writer = open_writer(prepared, fresh=args.fresh, console=console)
    try:
        index = open_index(prepared, console)
    except BaseException:
        writer.close()
        raise
    wanted = pending(index)
    if nothing_wanted(prepared, wanted):
        writer.close()  # nothing appended: not even a run line
        done = sum(prepared.totals().values())
        _say(console, f"nothing to do: {done:,} jobs already done ({prepared.ledger_path})")
        _say(console, f"see them with: {_command('status', str(prepared.config.output))}")
        return EXIT_OK
    changed = changed_content(prepared, index) if index.answered else 0
    if changed:
        _say(
            console,
            f"{changed:,} job(s) were answered from other prompt content than they have now "
            "(an edited prompt, or another prompts file with the same ids): running them again",
        )
    code = anyio.run(
        lambda: execute(
            prepared,
            command="run",
            wanted=wanted,
            console=console,
            writer=writer,
            argv=args.argv,
        )
    )
    # Every job of the plan answered: no failure is left to name, no need to read the ledger again.
    _what_next(args, prepared, console, failures=code != EXIT_OK)
    return code


def _rerun(args: argparse.Namespace, console: Console) -> int:
    prepared = prepare(args.config, _overrides(args))
    if not prepared.ledger_path.exists():
        raise InputError(f"{prepared.ledger_path}: no such ledger, so no failed job to rerun")
    _probe_first(prepared, console)
    writer = open_writer(prepared, fresh=False, console=console)
    try:
        return _rerun_locked(args, prepared, writer, console)
    finally:
        writer.close()


def _rerun_locked(
    args: argparse.Namespace, prepared: Prepared, writer: LedgerWriter, console: Console
) -> int:
    index = open_index(prepared, console)
    failed = failed_jobs(
        prepared,
        index,
        variants=args.variant,
        error_types=args.error_type,
        categories=args.category,
    )
    _say_what_cannot_rerun(prepared, failed, console)
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
            writer=writer,
            argv=args.argv,
        )
    )
    _what_next(args, prepared, console)
    return EXIT_FAILED if failed.elsewhere and code == EXIT_OK else code


def _say_what_cannot_rerun(prepared: Prepared, failed: FailedJobs, console: Console) -> None:
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
            "(--limit, --prompts, samples); not rerunning them."
        )


def _status(args: argparse.Namespace, console: Console) -> int:
    path = _ledger_at(args.ledger)
    summary = summarize(path)
    if not summary.runs and not summary.records:
        raise InputError(f"{path}: not a ledger (no run line or result record in it)")
    console.print(summary_table(summary, str(path)))
    if summary.skipped:
        console.print(f"{path}: skipped {summary.skipped} unreadable line(s)")
    return EXIT_OK


def _stats(args: argparse.Namespace, console: Console) -> int:
    # The analysis layer's libraries (scipy, statsmodels, pyarrow) load only for its verbs.
    from harness.analysis.reading import reading
    from harness.analysis.stats import compute_stats
    from harness.analysis.stats_view import show_stats
    from harness.analysis.whole import written_whole

    ledger, scores, size = _analysis_inputs(args.output)
    with reading(console, "reading", size) as advance:
        stats = compute_stats(
            ledger,
            scores,
            scorers=args.scorer,
            label=args.label,
            resamples=args.resamples,
            seed=args.seed,
            advance=advance,
        )
    if not stats.answers:
        raise InputError(f"{ledger}: no result records in it")
    show_stats(stats, console)
    if args.json is not None:
        with written_whole(args.json) as temporary:
            temporary.write_bytes(stats.as_json())
        _say(console, f"Statistics: {args.json}")
    export = _command("export", args.output, "--format", "parquet")
    _say(console, f"Every answer with its scores, for a notebook: {export}")
    return EXIT_OK


# What `export --format` writes: its file name in the output directory without `--to`, and how
# Python reads it.
_EXPORTS = {
    "parquet": ("answers.parquet", "pandas.read_parquet({path!r})"),
    "csv": ("answers.csv", "pandas.read_csv({path!r})"),
    "jsonl": ("answers.jsonl", "pandas.read_json({path!r}, lines=True)"),
    "pilot-json": ("pilot_results.json", "json.loads(pathlib.Path({path!r}).read_text())"),
}


def _export(args: argparse.Namespace, console: Console) -> int:
    from harness.analysis.export import write_export
    from harness.analysis.pilot import write_pilot_json
    from harness.analysis.reading import reading

    ledger, scores, size = _analysis_inputs(args.output)
    name, reader = _EXPORTS[args.format]
    target = args.to or ledger.with_name(name)
    with reading(console, f"exporting to {target.name}", size) as advance:
        if args.format == "pilot-json":
            exported = write_pilot_json(ledger, scores, target, advance)
        else:
            exported = write_export(ledger, scores, args.format, target, advance)
    if exported.skipped_scores:
        _say(console, f"{scores}: skipped {exported.skipped_scores} unreadable line(s)")
    _say(console, f"Exported {exported.rows:,} job(s) to {target}")
    _say(console, f"Read it in Python: {reader.format(path=str(target))}")
    return EXIT_OK


def _analysis_inputs(text: str) -> tuple[Path, Path, int]:
    """The ledger an analysis verb reads, the scores file beside it (which may not exist), and
    the bytes its two passes through the ledger and one through the scores will read."""
    ledger = _ledger_at(text)
    scores = ledger.with_name(SCORES_NAME)
    size = ledger.stat().st_size * 2 + (scores.stat().st_size if scores.exists() else 0)
    return ledger, scores, size


def _ledger_at(text: str) -> Path:
    """The ledger a read verb names: a ledger file or the run's output directory."""
    path = Path(text)
    if path.is_dir():
        path = path / LEDGER_NAME
    if not path.is_file():
        raise InputError(f"{path}: no such ledger")
    return path


def _plan(args: argparse.Namespace, console: Console) -> int:
    prepared = prepare(args.config, _overrides(args))
    # With --json, stdout holds the JSON alone; what else there is to say goes to stderr.
    notes = Console(file=ScrubbedStream(sys.stderr), highlight=False) if args.json else console
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
        limit=args.limit,
        models=tuple(args.models.split(",")) if args.models else (),
    )


def _what_next(
    args: argparse.Namespace, prepared: Prepared, console: Console, *, failures: bool = True
) -> None:
    """Say where the results are, how to see them, and (unless `failures` is false) for each
    type of error still failing, the `rerun` line that retries those jobs."""
    output = str(prepared.config.output)
    _say(console, f"Results: {prepared.ledger_path} (see them with: {_command('status', output)})")
    if not failures:
        return
    failed = failed_jobs(
        prepared,
        build_index(prepared.ledger_path),
        variants=getattr(args, "variant", ()),
        categories=getattr(args, "category", ()),
    )
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
    words = [args.config]
    for flag in ("limit", "prompts", "output", "models"):
        if getattr(args, flag) is not None:
            words += [f"--{flag}", str(getattr(args, flag))]
    for flag in ("variant", "category"):
        for value in getattr(args, flag, ()):
            words += [f"--{flag}", value]
    return words


def _command(verb: str, *words: str) -> str:
    """A harness command line, quoted for the shell, that works as printed."""
    return shlex.join([_python(), "-m", "harness", verb, *words])


def _python() -> str:
    """This interpreter as the user's shell finds it: `python` when that is it, else its path
    (relative to the working directory when it lies inside)."""
    found = shutil.which("python")
    if found and os.path.abspath(found) == os.path.abspath(sys.executable):
        return "python"
    path = Path(os.path.abspath(sys.executable))
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _say(console: Console, text: str) -> None:
    """Print a line as it is: no markup, no wrapping (so a command can be copied whole)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    run.add_argument("--fresh", action="store_true", help="set the old ledger aside, start anew")
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
    rerun.add_argument("--category", action="append", default=[], help="prompt category")
    rerun.set_defaults(verb=_rerun)

    plan = verbs.add_parser("plan", help="what the pending jobs will cost and take; sends nothing")
    _add_selection(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument(
        "--output-tokens",
        type=_positive,
        help="output tokens per answer until a variant has answers (default: half of max_tokens)",
    )
    plan.add_argument(
        "--latency",
        type=_seconds,
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
        type=_seconds,
        metavar="SECONDS",
        help="how long a probe may take (default: [preflight] timeout, 30)",
    )
    doctor.add_argument(
        "--probe-local", action="store_true", help="with --probe: load and probe local models too"
    )
    doctor.set_defaults(verb=_doctor)

    status = verbs.add_parser("status", help="done / failed / pending per variant")
    status.add_argument("ledger", help="a ledger file or the run's output directory")
    status.set_defaults(verb=_status)

    stats = verbs.add_parser(
        "stats", help="rates with intervals, paired comparisons, uncertainty AUROC"
    )
    stats.add_argument("output", help="the run's output directory (or its ledger)")
    stats.add_argument(
        "--scorer", action="append", default=[], help="only this scorer (repeatable)"
    )
    stats.add_argument("--label", help="only this label; also the target of the uncertainty AUROC")
    stats.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    stats.add_argument(
        "--resamples",
        type=_count,
        default=1000,
        help="bootstrap resamples of each AUROC interval (default 1000; 0: none)",
    )
    stats.add_argument("--seed", type=_count, default=0, help="the bootstrap's seed (default 0)")
    stats.set_defaults(verb=_stats)

    export = verbs.add_parser(
        "export", help="every job's latest answer with its scores, for pandas, polars, DuckDB"
    )
    export.add_argument("output", help="the run's output directory (or its ledger)")
    export.add_argument("--format", required=True, choices=list(_EXPORTS))
    export.add_argument(
        "--to", type=Path, metavar="PATH", help="where to write (default: OUTPUT/answers.<ext>)"
    )
    export.set_defaults(verb=_export)
    return parser


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the run's TOML config")
    parser.add_argument("--limit", type=_positive, help="only the first N prompts")
    parser.add_argument("--prompts", type=Path, help="another prompts file")
    parser.add_argument("--output", type=Path, help="another output directory")
    parser.add_argument("--models", help="comma-separated model names to run")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < 86_400:
        raise argparse.ArgumentTypeError("must be more than 0 and less than 86400")
    return value


if __name__ == "__main__":
    sys.exit(main())
