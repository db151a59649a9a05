"""The verbs over ledgers as they are: `status` (done / failed / pending per variant, and open
batches' provider state), `merge` (join ledgers into one) and `batches cancel`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anyio
from rich.console import Console

from harness.cli.selection import add_filters, selection_of
from harness.errors import EXIT_FAILED, EXIT_OK, InputError
from harness.ledger.index import build_index
from harness.ledger.lines import LEDGER_NAME
from harness.ledger.merge import merge
from harness.ledger.sets import Ledgers, ledgers_of
from harness.run import open_batches
from harness.run.progress import reading_bar
from harness.run.summary import summarize, summary_table
from harness.terminal import Parser
from harness.terminal import command_line as _command
from harness.terminal import say as _say

_LEDGERS_HELP = (
    "ledger files or run output directories (a directory: its ledger and every shard's), "
    "read as one"
)


def add_ledger_verbs(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add `status`, `merge` and `batches cancel` to the command line's verbs."""
    status = verbs.add_parser(
        "status", help="done / failed / pending per variant, and open batches' provider state"
    )
    status.add_argument("ledger", nargs="+", help=_LEDGERS_HELP)
    add_filters(status)
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


def _add_batch_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        help="the config whose models' keys reach the open batches (default: the config of "
        "the run that sent each one, as its run line names it)",
    )


def _status(args: argparse.Namespace, console: Console) -> int:
    path = ledgers_of(args.ledger)
    selection = selection_of(args)
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
    elif len(args.ledger) == 1 and summary.records:  # what stats and report read: one output
        here = args.ledger[0]
        pending = sum(v.pending or 0 for v in summary.variants)
        if pending and keeps is None:
            _say(console, _pending_line(summary.last_config, here, pending))
        _say(console, f"Rates and comparisons: {_command('stats', here)}")
        _say(
            console, f"Every answer, figures and statistics on one page: {_command('report', here)}"
        )
    elif len(args.ledger) > 1 and summary.records:  # stats and report read one output
        merge = _command("merge", *args.ledger, "--into", "MERGED")
        _say(console, f"To read them as one in stats and report, merge them first: {merge}")
    return EXIT_OK


def _pending_line(config: str | None, here: str, pending: int) -> str:
    """What answers the jobs still pending: the last run's config run again on this output."""
    folder = str(Path(here).parent) if Path(here).is_file() else here
    return (
        f"{pending:,} job(s) not answered yet (the run stopped early, or is still going); run it "
        f"again, with the options it was run with, to answer them: "
        f"{_command('run', config or 'CONFIG', '--output', folder)}"
    )


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
