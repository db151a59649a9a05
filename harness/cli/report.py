"""`harness report`: the run's results as one self-contained HTML file (figures, statistics,
every answer one click away), to open offline, share, or attach to a paper's supplement."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path

from rich.console import Console

from harness.cli.results import (
    add_bootstrap_arguments,
    add_by_argument,
    add_force_argument,
    add_threads_argument,
)
from harness.ledger.targets import check_target
from harness.terminal import Parser, file_to_write, say

REPORT_NAME = "report.html"


def add_report_verb(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add `report` to the command line's verbs."""
    report = verbs.add_parser("report", help="one self-contained HTML report: figures, records")
    report.add_argument("output", help="the run's output directory (or its ledger)")
    report.add_argument(
        "--out",
        type=file_to_write,
        metavar="PATH",
        help=f"where to write (default: OUTPUT/{REPORT_NAME})",
    )
    report.add_argument("--scorer", help="the scorer the figures show (default: the first)")
    report.add_argument("--label", help="only this label; also the ROC curves' target")
    add_by_argument(report)
    report.add_argument("--variant", action="append", default=[], help="only this variant (repeat)")
    report.add_argument("--prompts", type=Path, help="the prompts file, if not the run's")
    report.add_argument(
        "--figures", type=Path, metavar="DIR", help="also write each figure as SVG and PNG there"
    )
    add_bootstrap_arguments(report)
    add_force_argument(report, "--out or a file --figures")
    add_threads_argument(report)
    report.add_argument("--open", action="store_true", help="open it in the default browser")
    report.set_defaults(verb=_report)


def _report(args: argparse.Namespace, console: Console) -> int:
    from harness.cli.results import result_inputs
    from harness.report import ReportRequest, build_report
    from harness.report.figure_files import FIGURE, FIGURES
    from harness.report.page import PAGE
    from harness.run.progress import reading_bar

    ledger, scores, size = result_inputs(args.output)
    target = args.out or scores.with_name(REPORT_NAME)
    check_target(target, "report --out" if args.out else "report", PAGE, force=args.force)
    drawn = [f"{name}.{kind}" for name in FIGURES for kind in ("svg", "png")]
    for name in drawn if args.figures is not None else ():
        check_target(args.figures / name, "report --figures", FIGURE, force=args.force)
    request = ReportRequest(
        ledger,
        scores,
        target,
        scorer=args.scorer,
        label=args.label,
        variants=tuple(args.variant),
        prompts=args.prompts,
        figures=args.figures,
        resamples=args.resamples,
        seed=args.seed,
        threads=args.threads,
        one_family=args.one_family,
        by=tuple(dict.fromkeys(args.by)),
    )
    with reading_bar(console, "reading", size) as advance:
        built = build_report(request, advance)
    for note in built.notes:
        say(console, f"note: {note}")
    figures = ", ".join(f"{name} {bytes_ / 1000:.0f} KB" for name, bytes_ in built.figures)
    say(console, f"Figures inline: {figures}; records: {built.records_bytes / 1e6:.1f} MB packed")
    if args.figures is not None:
        say(console, f"Figures as SVG and PNG (300 dpi): {args.figures}")
    say(console, f"Report: {built.path} ({built.size / 1e6:.1f} MB, {built.records:,} jobs)")
    if built.next_command:
        first = ""
        if built.needs_scorers:
            first = f"add a [[scorers]] table to {built.needs_scorers} (docs/scoring.md), then "
        say(console, f"No scores yet: {first}{built.next_command}, then make the report again")
    uri = built.path.resolve().as_uri()
    if args.open and webbrowser.open(uri):
        say(console, f"Opened {uri} in the default browser")
    elif args.open:
        say(console, f"No browser could be started here; open {uri} in one (it works offline)")
    else:
        say(
            console,
            f"Open it in a browser: {uri} (--open opens it when the report is made); "
            "it works offline, to share whole",
        )
    return 0
