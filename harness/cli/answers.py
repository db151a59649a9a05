"""The verbs over a run's answers: `score` (labels from the config's `[[scorers]]`) and
`annotate export` / `annotate import` (blinded sheets for human raters, their labels read back
with the raters' agreement). What each verb needs loads when it runs (most of 0.2 s otherwise, on
every verb's start)."""

from __future__ import annotations

import argparse
import re
import secrets
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from harness.errors import InputError
from harness.terminal import PROMPT_COUNT, SEED, Parser, command_line, say

if TYPE_CHECKING:
    from harness.analysis.agreement import PairAgreement
    from harness.analysis.annotation_key import AnnotationKey
    from harness.analysis.sheets import RaterSheet

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def add_analysis_verbs(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add `score` and `annotate` to the command line's verbs."""
    scoring = verbs.add_parser("score", help="label the latest answers with the config's scorers")
    scoring.add_argument("config", help="the run's TOML config, with its [[scorers]]")
    scoring.add_argument("--scorers", help="comma-separated scorer names (default: every one)")
    scoring.add_argument("--output", type=Path, help="another output directory")
    scoring.set_defaults(verb=_score)

    annotate = verbs.add_parser("annotate", help="blinded sheets for human raters, and back")
    steps = annotate.add_subparsers(required=True, metavar="STEP")
    export = steps.add_parser("export", help="one blinded CSV sheet per rater, and the key")
    export.add_argument("output", type=Path, help="the run's output directory")
    export.add_argument("--raters", default="2", help="how many (r1, r2, ...) or names: ana,ben")
    export.add_argument("--labels", help="the label set, comma-separated")
    export.add_argument(
        "--scorer",
        help="a scorer to compare the raters with; its labels are the label set without --labels",
    )
    export.add_argument(
        "--sample", type=PROMPT_COUNT, help="N answers drawn at random (default: all)"
    )
    export.add_argument("--seed", type=SEED, help="the seed of the sample and the row orders")
    export.add_argument("--name", type=_name, default="annotation", help="default: annotation")
    export.add_argument("--prompts", type=Path, help="the prompts file, if not the run's")
    export.set_defaults(verb=_export)

    back = steps.add_parser("import", help="read filled sheets, store the labels, show agreement")
    back.add_argument("output", type=Path, help="the run's output directory")
    back.add_argument("sheets", type=Path, nargs="+", help="the filled CSV sheets")
    back.add_argument("--name", type=_name, default="annotation", help="default: annotation")
    back.set_defaults(verb=_import)


def _score(args: argparse.Namespace, console: Console) -> int:
    import anyio

    from harness.analysis.score_view import label_table
    from harness.analysis.scoring import prepare_scoring, score
    from harness.run.judge_runs import judge_run
    from harness.run.prepare import load_config_registering_secrets, refuse_moved_output

    names = [n.strip() for n in args.scorers.split(",")] if args.scorers else []
    config = load_config_registering_secrets(args.config)
    if args.output is None:
        refuse_moved_output(config)
    plan = prepare_scoring(config, judge_run, names, args.output)
    result = anyio.run(lambda: score(plan, console, args.argv))
    for scorer in plan.scorers:
        console.print(label_table(result.tallies[scorer.name], scorer.labels))
    for note in result.notes:
        say(console, note)
    if result.ledger_skipped:
        say(console, f"{plan.ledger}: skipped {result.ledger_skipped:,} unreadable line(s)")
    if result.skipped_lines:
        say(console, f"{plan.scores_path}: skipped {result.skipped_lines} unreadable line(s)")
    new = sum(tally.new for tally in result.tallies.values())
    say(console, f"Scores: {plan.scores_path} ({new:,} new)")
    output, first = str(plan.config.output), plan.scorers[0].name
    line = command_line("stats", output)
    say(console, f"Rates, comparisons and the hallucination view: {line}")
    line = command_line("annotate", "export", output, "--raters", "2", "--scorer", first)
    say(console, f"Check a scorer against people with blinded sheets: {line}")
    return result.code


def _export(args: argparse.Namespace, console: Console) -> int:
    from harness.analysis.annotation import ExportRequest, export_sheets, rater_names

    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    labels = tuple(label.strip() for label in args.labels.split(",")) if args.labels else ()
    if any(not label for label in labels) or len(set(labels)) < len(labels):
        raise InputError("--labels: give distinct, non-empty labels: a,b,c")
    request = ExportRequest(
        output=args.output,
        raters=rater_names(args.raters),
        labels=labels,
        scorer=args.scorer,
        sample=args.sample,
        seed=seed,
        name=args.name,
        prompts=args.prompts,
    )
    exported = export_sheets(request)
    if exported.skipped_lines:
        say(console, f"{args.output}: skipped {exported.skipped_lines:,} unreadable line(s)")
    say(console, f"{exported.items:,} answers of {exported.available:,}, seed {seed}, labels: "
                 f"{', '.join(exported.labels)}")  # fmt: skip
    for sheet in exported.sheets:
        say(console, f"Sheet: {sheet}")
    say(console, f"Unblinding key (keep it from the raters): {exported.key}")
    sheets = [str(sheet) for sheet in exported.sheets]
    line = command_line("annotate", "import", str(args.output), *sheets, *_named(args.name))
    say(console, f"Once the raters have filled their label column: {line}")
    return 0


def _import(args: argparse.Namespace, console: Console) -> int:
    from harness.analysis.agreement import (
        adjudication_target,
        agreement_table,
        cohen,
        disagreements,
        fleiss,
        write_disagreements,
    )
    from harness.analysis.annotation import shown_texts
    from harness.analysis.sheets import read_import, store

    key, sheets = read_import(args.output, args.name, args.sheets)
    appended = store(args.output, key, sheets)
    by_rater = {sheet.rater: sheet.labels for sheet in sheets}
    pairs = [
        cohen(a, b, by_rater[a], by_rater[b], key.labels) for a, b in combinations(by_rater, 2)
    ]
    pairs += _against_scorer(args.output, key, sheets)
    if pairs:
        many = fleiss(by_rater, key.labels) if len(by_rater) >= 3 else None
        console.print(agreement_table(pairs, many))
    else:
        say(console, "One rater so far: agreement needs a second sheet.")
    say(console, f"Scores: {args.output / 'scores.jsonl'} ({appended:,} new, as human:<rater>)")
    disputed = disagreements(by_rater)
    if disputed:
        path, kept = adjudication_target(args.output / f"{key.name}.disagreements.csv")
        texts = shown_texts(args.output, key.prompts, key.items)
        write_disagreements(path, disputed, by_rater, texts)
        said = f" ({', '.join(map(str, kept))}: written by hand, kept as it is)" if kept else ""
        say(
            console,
            f"{len(disputed):,} item(s) the raters labelled differently, to adjudicate: {path}"
            + said,
        )
    missing = [r for r in key.raters if r not in by_rater]
    if missing:
        say(console, f"Still to import: the sheets of {', '.join(missing)}")
    line = command_line("stats", str(args.output))
    say(
        console,
        f"The raters' labels (human:<rater>) in the statistics, beside the scorers': {line}",
    )
    return 0


def _against_scorer(
    output: Path, key: AnnotationKey, sheets: list[RaterSheet]
) -> list[PairAgreement]:
    """Each rater against the scorer named at export, on the items it labelled."""
    if key.scorer is None:
        return []
    from harness.analysis.agreement import cohen
    from harness.analysis.sheets import scorer_labels

    machine = scorer_labels(output, key)
    return [cohen(sheet.rater, key.scorer, sheet.labels, machine, key.labels) for sheet in sheets]


def _named(name: str) -> list[str]:
    return [] if name == "annotation" else ["--name", name]


def _name(text: str) -> str:
    if not _NAME.fullmatch(text):
        raise argparse.ArgumentTypeError("use letters, digits, '_', '.' or '-'")
    return text
