"""The report built and written: the ledger read (`read.py`), the statistics of
`harness.analysis.stats`, the status summary of `harness.run.summary`, the figures, and the page
assembled from the template files in `assets/` (HTML, CSS, JS: package data), written whole.

A template marker is an HTML comment, `<!--harness:NAME-->`; every marker is replaced in one pass,
so nothing inserted is ever read as a marker. What is inserted: the CSS and JS as they are, the
figures' SVG (matplotlib escapes their text), the overview and statistics as JSON that cannot
close its script block (`browser.inline_json`), and the records as base64.
"""

from __future__ import annotations

import dataclasses
import html
import multiprocessing
import re
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from harness.analysis.annotation import run_prompt_source
from harness.analysis.stats import LabelCounts, Stats, check_selection, stats_of
from harness.analysis.view import open_view
from harness.analysis.view_columns import split_fields, view_columns
from harness.bulk import collector_paused
from harness.errors import InputError
from harness.ledger.sets import Advance, Ledgers
from harness.ledger.targets import OwnFile, head
from harness.prompts.load import Prompt, load_prompts
from harness.report.browser import inline_json, packed, payload
from harness.report.figure_files import put_in_place, staged
from harness.report.figures import Drawn, draw_all
from harness.report.overview import (
    learn_secrets,
    planned_variants,
    run_rows,
    variant_rows,
)
from harness.report.read import FIELDS, Limits, Reading, prompt_texts, report_reading
from harness.run.named_variants import variants_named
from harness.run.summary import summarize
from harness.run.tally import Summary
from harness.terminal import command_line
from harness.whole import written_whole

_MARKER = re.compile(r"<!--harness:([a-z_]+)-->")
# The page's own line (assets/report.html), in its head: what tells an earlier report.
_GENERATOR = b'<meta name="generator" content="harness report">'
PAGE = OwnFile("an earlier report", lambda at: _GENERATOR in head(at))


@dataclass(frozen=True)
class ReportRequest:
    """What to report on and where to write it."""

    ledger: Path | Ledgers
    scores: Path
    target: Path
    scorer: str | None = None  # the figures' scorer; None: the scores file's first
    label: str | None = None
    variants: tuple[str, ...] = ()  # only these; empty: every one
    prompts: Path | None = None  # the prompt set, if not the one the run line names
    figures: Path | None = None  # also write each figure there as SVG and PNG
    limits: Limits = field(default_factory=Limits)
    resamples: int = 1000
    seed: int = 0
    threads: int | None = None  # the query engine's threads (None: one per core)
    one_family: bool = False  # every comparison one Benjamini-Hochberg family
    by: tuple[str, ...] = ()  # the fields rates and comparisons are split by (default: category)


@dataclass(frozen=True)
class Built:
    """What was written: the page, its size, the records in it, each figure's inline size, the
    compressed records' size, and what the page left out or could not show."""

    path: Path
    size: int
    records: int
    figures: list[tuple[str, int]]
    records_bytes: int
    notes: list[str] = field(default_factory=list)
    next_command: str | None = None  # `harness score CONFIG` when there are no scores
    # the config that needs a [[scorers]] table before `next_command` can label anything
    needs_scorers: str | None = None


def build_report(request: ReportRequest, advance: Advance | None = None) -> Built:
    """Read, compute, draw and write the report, then put the figure files in place; InputError
    (nothing written) for a ledger without records or a scorer, label or variant it does not
    have."""
    with staged(request.figures) as staging:
        built = _build(request, advance, staging)
        if staging is not None and request.figures is not None:
            put_in_place(staging, request.figures)
    return built


def _build(request: ReportRequest, advance: Advance | None, figures_dir: Path | None) -> Built:
    request, summary, reading, stats = _read(request, advance)
    learn_secrets(reading.runs)
    scorer = request.scorer or _figures_scorer(reading.columns.labels, request.label)
    notes = _left_out(reading, request.limits)
    texts = _prompt_texts(request, reading, notes)
    data = payload(reading.columns, reading.rows, texts, reading.logprobs)
    with ThreadPoolExecutor(1) as compressing:  # zlib lets go of the GIL: draw meanwhile
        packing = compressing.submit(packed, data)
        drawn, figure_notes = draw_all(
            stats,
            reading.columns,
            reading.rows,
            reading.timeline,
            scorer=scorer,
            label=request.label,
            figures_dir=figures_dir,
        )
        records = packing.result()
    variants = variant_rows(summary, planned_variants(reading.runs), request.variants)
    if any(v["pending"] is None for v in variants):
        notes.append("pending jobs unknown for variants no run line planned (shown as ?)")
    next_command, needs_scorers = (
        (None, None) if stats.scores else _score_step(reading, request.scores.parent)
    )
    meta: dict[str, Any] = {
        "ledger": str(request.ledger),
        "scores": stats.scores,
        "scorer": scorer,
        "label": request.label,
        "records": len(reading.rows),
        "runs": run_rows(reading.runs, reading.timeline.run_end()),
        "variants": variants,
        "stats": dataclasses.asdict(stats),
        "notes": notes + stats.notes + figure_notes,
        "next_command": next_command,
        "needs_scorers": needs_scorers,
        "limits": dataclasses.asdict(request.limits),
    }
    page = _page(meta, drawn, records)
    with written_whole(request.target) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return Built(
        request.target,
        request.target.stat().st_size,
        len(reading.rows),
        [(figure.name, len(figure.svg.encode())) for figure in drawn],
        len(records),
        meta["notes"],
        next_command,
        needs_scorers,
    )


def _figures_scorer(given: dict[str, list[str]], label: str | None) -> str | None:
    """The scorer the figures show when none is asked for: the first that gives `label`
    (the first at all without one); None without scores."""
    return next((name for name, labels in given.items() if label in labels), None) or next(
        iter(given), None
    )


def _read(
    request: ReportRequest, advance: Advance | None
) -> tuple[ReportRequest, Summary, Reading, Stats]:
    """The request with its variants as ids (`--variant` takes names as `rerun` does), the
    status summary (made meanwhile in another process, on Linux), the ledger read once into the
    view, and the statistics of its latest records, the request checked against the current
    labels (InputError)."""
    with collector_paused(), ExitStack() as stack:
        summary_made = _summary_started(request.ledger, stack)
        view = stack.enter_context(
            open_view(
                request.ledger,
                request.scores,
                threads=request.threads,
                advance=advance,
                fields=(*FIELDS, *split_fields(request.by)),
            )
        )
        _check_scorer(request, view.labels)
        if request.variants:
            present = [
                v
                for (v,) in view.connection.execute(
                    "SELECT DISTINCT variant FROM latest ORDER BY variant"
                ).fetchall()
            ]
            named = variants_named(request.variants, present, str(request.ledger))
            request = dataclasses.replace(request, variants=tuple(named))
        variants = set(request.variants) or None
        reading = report_reading(view, request.limits, variants)
        split = view_columns(view, request.by) if request.by else reading.columns
        stats = stats_of(
            request.ledger,
            request.scores,
            view.labels,
            split,
            request.label,
            request.resamples,
            request.seed,
            skipped_lines=reading.skipped,
            threads=request.threads,
            one_family=request.one_family,
            by=request.by,
        )
        summary = summary_made.result() if summary_made else summarize(request.ledger)
    _check_variants(request, summary)
    return request, summary, reading, stats


def _summary_started(ledger: Path | Ledgers, stack: ExitStack) -> Future[Summary] | None:
    """The status summary being made in a forked process (None where there is no fork)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    context = multiprocessing.get_context("fork")
    pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=context))
    return pool.submit(summarize, ledger)


def _check_variants(request: ReportRequest, summary: Summary) -> None:
    if not summary.records:
        raise InputError(f"{request.ledger}: no result records in it")


def _check_scorer(request: ReportRequest, labels: LabelCounts) -> None:
    scorers = [request.scorer] if request.scorer else []
    check_selection(request.scores, labels, scorers, request.label)
    if request.scorer and request.label:
        given = labels.scorers[request.scorer].labels()
        if request.label not in given:
            raise InputError(
                f"{request.scores}: {request.scorer} gives no label {request.label!r} "
                f"(its labels: {', '.join(given)})"
            )


def _left_out(reading: Reading, limits: Limits) -> list[str]:
    notes = []
    rows, sample = reading.rows, reading.logprobs
    if rows.cut:
        notes.append(
            f"{rows.cut:,} answer(s) cut to {limits.answer_chars:,} characters "
            "(`harness export` has them whole)"
        )
    kept = len(sample.answers)
    if kept < sample.total:
        notes.append(
            f"token logprobs kept for {kept:,} of the {sample.total:,} answers that have them: "
            "every variant's answers to the prompts first in a hash of their id (filter "
            "'with token logprobs'); `harness export` has them all"
        )
    if sample.cut:
        notes.append(
            f"{sample.cut:,} answer(s) shown with their first {limits.logprob_positions} "
            "token positions only"
        )
    return notes


def _prompt_texts(request: ReportRequest, reading: Reading, notes: list[str]) -> list[str | None]:
    """Each prompt's text for the page (see `read.prompt_texts`), noting what is not shown."""
    limit = request.limits.prompt_chars
    prompts = _prompts(request, reading, notes)
    texts, missing, cut = prompt_texts(reading.rows, prompts, limit)
    if prompts is not None and missing:
        notes.append(f"{missing:,} prompt(s) not in the prompt set as answered: no text shown")
    if cut:
        notes.append(f"{cut:,} prompt(s) cut to {limit:,} characters")
    return texts


def _prompts(
    request: ReportRequest, reading: Reading, notes: list[str]
) -> dict[str, Prompt] | None:
    """The prompt set by id; None (with a note) when the run's cannot be read, an InputError
    when the one given with `--prompts` cannot."""
    hint = ""  # where no run line names the prompts, the error says to pass --prompts
    try:
        source = run_prompt_source(reading.runs, request.prompts, request.ledger)
        hint = " (the run's prompt set; pass --prompts FILE)"
        return {p.id: p for p in load_prompts(source)}
    except InputError as exc:
        if request.prompts is not None:
            raise
        notes.append(f"prompt texts not shown: {exc}{hint}")
        return None


def _score_step(reading: Reading, output: Path) -> tuple[str, str | None]:
    """What labels the answers: `harness score` with the latest run's config, on this report's
    output (the config may name another); and that config when it has no [[scorers]] table to
    score with (CONFIG when no run names a config file)."""
    runs = [run for run in reading.runs if run.get("config_path")]
    config = str(runs[-1]["config_path"]) if runs else "CONFIG"
    bare = not runs or not (runs[-1].get("config") or {}).get("scorers")
    return command_line("score", config, "--output", str(output)), config if bare else None


def _page(meta: dict[str, Any], drawn: list[Drawn], records: str) -> str:
    assets = files("harness.report") / "assets"
    parts = {
        "style": (assets / "report.css").read_text(encoding="utf-8"),
        "script": (assets / "report.js").read_text(encoding="utf-8"),
        "meta": inline_json(meta),
        "figures": "\n".join(_figure_html(figure) for figure in drawn),
        "records": records,
    }
    template = (assets / "report.html").read_text(encoding="utf-8")
    return _MARKER.sub(lambda found: parts[found.group(1)], template)


def _figure_html(figure: Drawn) -> str:
    return (
        f'<figure class="figure" data-figure="{figure.name}">{figure.svg}'
        f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>"
    )
