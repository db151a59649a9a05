"""The verbs over a run's results as a whole: `stats` (rates with intervals, paired comparisons,
uncertainty AUROC) and `export` (every job's answer and scores as Parquet, CSV, JSONL or the
legacy pilot's JSON). Their libraries (scipy, statsmodels, pyarrow) load only when they run."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from harness.analysis.scores import SCORES_NAME
from harness.errors import InputError
from harness.input_files import refuse_special
from harness.ledger.sets import Ledgers, ledgers_of
from harness.ledger.targets import check_target
from harness.terminal import RESAMPLES, SEED, THREADS, Parser, command_line, file_to_write, say

# What `export --format` writes: its file name beside the ledger without `--to`, and how Python
# reads it.
_EXPORTS = {
    "parquet": ("answers.parquet", "pandas.read_parquet({path!r})"),
    "csv": ("answers.csv", "pandas.read_csv({path!r})"),
    "jsonl": ("answers.jsonl", "pandas.read_json({path!r}, lines=True)"),
    "pilot-json": ("pilot_results.json", "json.loads(pathlib.Path({path!r}).read_text())"),
}


def add_result_verbs(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add `stats` and `export` to the command line's verbs."""
    stats = verbs.add_parser(
        "stats", help="rates with intervals, paired comparisons, uncertainty AUROC"
    )
    stats.add_argument("output", help="the run's output directory (or its ledger)")
    stats.add_argument("--scorer", action="append", default=[], help="only this scorer (repeat)")
    stats.add_argument("--label", help="only this label; also the target of the uncertainty AUROC")
    add_by_argument(stats)
    stats.add_argument(
        "--json", type=file_to_write, metavar="FILE", help="also write the report as JSON"
    )
    add_force_argument(stats, "--json")
    add_bootstrap_arguments(stats)
    add_threads_argument(stats)
    stats.set_defaults(verb=_stats)

    export = verbs.add_parser(
        "export", help="every job's latest answer with its scores, for pandas, polars, DuckDB"
    )
    export.add_argument("output", help="the run's output directory (or its ledger)")
    export.add_argument("--format", required=True, choices=list(_EXPORTS))
    export.add_argument(
        "--to",
        type=file_to_write,
        metavar="PATH",
        help="where to write (default: OUTPUT/answers.<ext>)",
    )
    add_force_argument(export, "--to")
    add_threads_argument(export)
    export.set_defaults(verb=_export)


def add_by_argument(verb: argparse.ArgumentParser) -> None:
    """`--by FIELD` (repeatable): what `stats` and `report` split rates and comparisons by."""
    verb.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="FIELD",
        help="split rates and comparisons by this field instead of the category (repeat): "
        "is_synthetic_probe, category, model, temperature, any field of the prompts "
        "(metadata.NAME: the prompt's NAME, even one named like those)",
    )


def add_force_argument(verb: argparse.ArgumentParser, option: str) -> None:
    """`--force`: replace a file that is not one the verb wrote (never a ledger, scores file or
    annotation key: see `harness.ledger.targets`)."""
    verb.add_argument(
        "--force",
        action="store_true",
        help=f"replace the file {option} names even when it is not one this verb wrote "
        "(never a ledger, scores file or annotation key)",
    )


def add_threads_argument(verb: argparse.ArgumentParser) -> None:
    """`--threads`: the query engine's threads (see `harness.analysis.view`)."""
    verb.add_argument(
        "--threads",
        type=THREADS,
        metavar="N",
        help="threads of the query engine, DuckDB (default: one per core)",
    )


def add_bootstrap_arguments(parser: argparse.ArgumentParser) -> None:
    """`--resamples` and `--seed` of the AUROC intervals' bootstrap; `--one-family` of the
    comparisons' adjustment."""
    parser.add_argument(
        "--resamples",
        type=RESAMPLES,
        default=1000,
        help="bootstrap resamples of each AUROC interval (default 1000; 0: none)",
    )
    parser.add_argument("--seed", type=SEED, default=0, help="the bootstrap's seed (default 0)")
    parser.add_argument(
        "--one-family",
        action="store_true",
        help="adjust every paired comparison's p as one Benjamini-Hochberg family (default: "
        "one family per scorer and label, so a human rater's labels never move a model's)",
    )


def _stats(args: argparse.Namespace, console: Console) -> int:
    from harness.analysis.stats import STATS_JSON, compute_stats
    from harness.analysis.stats_view import show_stats
    from harness.run.progress import reading_bar
    from harness.whole import written_whole

    ledger, scores, size = result_inputs(args.output)
    if args.json is not None:
        check_target(args.json, "stats --json", STATS_JSON, force=args.force)
    with reading_bar(console, "reading", size) as advance:
        stats = compute_stats(
            ledger,
            scores,
            scorers=args.scorer,
            label=args.label,
            resamples=args.resamples,
            seed=args.seed,
            advance=advance,
            threads=args.threads,
            one_family=args.one_family,
            by=list(dict.fromkeys(args.by)),
        )
    if not stats.answers:
        raise InputError(f"{ledger}: no result records in it")
    show_stats(stats, console)
    if args.json is not None:
        with written_whole(args.json) as temporary:
            temporary.write_bytes(stats.as_json())
        say(console, f"Statistics: {args.json}")
    line = command_line("export", args.output, "--format", "parquet")
    say(console, f"Every answer with its scores, for a notebook: {line}")
    return 0


def _export(args: argparse.Namespace, console: Console) -> int:
    from harness.analysis.export import EXPORT, write_export
    from harness.analysis.pilot import write_pilot_json
    from harness.run.progress import reading_bar

    ledger, scores, size = result_inputs(args.output)
    name, reader = _EXPORTS[args.format]
    target = args.to or scores.with_name(name)
    check_target(target, "export --to" if args.to else "export", EXPORT, force=args.force)
    with reading_bar(console, f"exporting to {target.name}", size) as advance:
        if args.format == "pilot-json":
            exported = write_pilot_json(ledger, scores, target, advance, args.threads)
        else:
            exported = write_export(ledger, scores, args.format, target, advance, args.threads)
    if exported.skipped_lines:
        say(console, f"{ledger}: skipped {exported.skipped_lines:,} unreadable line(s)")
    if exported.skipped_scores:
        say(console, f"{scores}: skipped {exported.skipped_scores} unreadable line(s)")
    say(console, f"Exported {exported.rows:,} job(s) to {target}")
    say(console, f"Read it in Python: {reader.format(path=str(target))}")
    return 0


def result_inputs(text: str) -> tuple[Path | Ledgers, Path, int]:
    """The ledger a verb reads (a run's output directory holding shards: all its ledgers, read
    as one), the scores file beside it (which may not exist), and their bytes: what reading
    them reports (`harness.analysis.view.open_view`)."""
    ledgers = ledgers_of([text])
    ledger: Path | Ledgers = ledgers.paths[0] if len(ledgers.paths) == 1 else ledgers
    scores = (Path(text) if Path(text).is_dir() else Path(text).parent) / SCORES_NAME
    refuse_special(scores)
    if scores.exists() and not scores.is_file():
        raise InputError(f"{scores}: is not a file (the scores file must be one)")
    size = ledgers.size + (scores.stat().st_size if scores.exists() else 0)
    return ledger, scores, size
