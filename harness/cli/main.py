"""The command line: `main` parses the arguments, runs the verb and turns its errors into exit
codes; the verbs are in one module per group (`harness.cli.run`: `run`, `rerun`, `plan`, `doctor`;
`harness.cli.ledgers`: `status`, `merge`, `batches cancel`; `harness.cli.answers`: `score`,
`annotate`; `harness.cli.results`: `stats`, `export`; `harness.cli.query`: `query`;
`harness.cli.report`: `report`;
`harness.cli.options`: `options`; `harness.cli.new_config`: `init`, `convert`).

Exit codes: 0 every job answered, 1 some failed for good, 2 bad input or set-up, 3 the ledger
could not be written mid-run (disk full, file replaced), 4 a budget cap stopped the run (raise
budget_usd and run again), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler

from harness.cli.answers import add_analysis_verbs
from harness.cli.ledgers import add_ledger_verbs
from harness.cli.new_config import add_config_verbs
from harness.cli.options import add_options_verb
from harness.cli.query import add_query_verb
from harness.cli.report import add_report_verb
from harness.cli.results import add_result_verbs
from harness.cli.run import add_run_verbs
from harness.errors import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_LEDGER, InputError, LedgerWriteError
from harness.scrub import SECRETS, redact_urls, scrub_log_record, scrubbed
from harness.terminal import Parser, error_lines


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the verb, return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    # Off a terminal rich would wrap tables at 80 columns; a log file can take wide lines. No
    # markup: names, paths and messages are shown as typed (`[/]` would crash rich, `[v2]` vanish);
    # styles are given as `Text` styles.
    console = Console(
        file=scrubbed(sys.stdout),
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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _log_to(console: Console) -> None:
    """Send the harness's log lines (limit changes, pauses) through the progress console."""
    logger = logging.getLogger("harness")
    handler = RichHandler(console=console, show_path=False, markup=False)
    handler.addFilter(scrub_log_record)
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)


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
    add_run_verbs(verbs)
    add_ledger_verbs(verbs)
    add_analysis_verbs(verbs)
    add_result_verbs(verbs)
    add_query_verb(verbs)
    add_report_verb(verbs)
    add_options_verb(verbs)
    add_config_verbs(verbs)
    return parser


if __name__ == "__main__":
    sys.exit(main())
