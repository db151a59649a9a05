"""A run reads its ledger once: the resume index, the budget's spend, the closing summary and the
`rerun` lines all come from one reading (see harness.run.run_ledger)."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from harness.api.types import Completion, Usage
from harness.errors import EXIT_BUDGET, ProviderError
from harness.ledger.index import ResumeIndex, index_lines
from harness.ledger.lines import sealed
from harness.run.closing_summary import ClosingSummary
from harness.run.execute import run_pending
from harness.run.jobs import Job, job_key
from harness.run.prepare import prepare
from harness.run.records import failure_record, success_record
from harness.run.summary import summarize, summary_table

REPO = Path(__file__).resolve().parents[3]  # tests/harness/run/ -> the repository
_ANSWER = "An answer long enough that the ledger outweighs the files a run imports. " * 60

# The run in a child: the bytes it read (/proc/self/io rchar) from just before the verb to its end.
_CHILD = """
import sys, numpy, msgspec, harness.providers.simulated, harness.run.summary
from pathlib import Path
from harness.cli.main import main
def rchar():
    return int(Path("/proc/self/io").read_text().split("rchar:")[1].split()[0])
before = rchar()
code = main(sys.argv[1:])
print(f"bytes_read={rchar() - before}", file=sys.stderr)
sys.exit(code)
"""


def _project(tmp_path: Path, prompts: int) -> Path:
    lines = "".join(f'{{"id": "p{i:05d}", "prompt": "Is {i} prime?"}}\n' for i in range(prompts))
    (tmp_path / "prompts.jsonl").write_text(lines)
    config = tmp_path / "run.toml"
    config.write_text(
        f'prompts = "prompts.jsonl"\noutput = "{tmp_path / "out"}"\nbudget_usd = 1000.0\n'
        '[[models]]\nname = "sim"\nprovider = "simulated"\ntemperatures = [0.0]\n'
        "[models.price]\ninput = 3.0\noutput = 15.0\n"
        "[models.options]\nfatal_rate = 0.5\n"
    )
    return config


def _ledger(config: Path, failed_every: int) -> Path:
    """Every job's record, each `failed_every`-th a failure."""
    prepared = prepare(config)
    ledger = prepared.ledger_path
    ledger.parent.mkdir(parents=True)
    completion = Completion(_ANSWER, "stop", Usage(12, 120), "sim-1")
    with ledger.open("wb") as file:
        for n, prompt in enumerate(prepared.prompts):
            variant = prepared.variants[0]
            job = Job(job_key(variant.id, prompt.id, 0), variant, prompt, 0)
            if n % failed_every == 0:
                error = ProviderError("simulated fatal error", status=400)
                record = failure_record("old", job, error, elapsed=0.5, cost=0.0)
            else:
                record = success_record("old", job, completion, elapsed=1.5, cost=0.002)
            file.write(sealed(record))
    return ledger


@pytest.mark.slow
def test_a_run_with_a_budget_and_failures_reads_its_ledger_once(tmp_path: Path) -> None:
    config = _project(tmp_path, 4000)
    ledger = _ledger(config, failed_every=40)  # 100 failed jobs to run again, half fail again
    size = ledger.stat().st_size
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, "run", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert child.returncode == 1, child.stderr  # some jobs failed again
    assert "Still failing:" in child.stdout and "--error-type" in child.stdout
    read = int(child.stderr.rsplit("bytes_read=", 1)[1].split()[0])
    # One reading, and a few MB of other files (prompts, modules imported late); before, the
    # index, the spend, the summary (twice) and the `rerun` lines each read it: about 5x.
    assert read <= 1.25 * size, f"read {read / size:.2f}x the ledger's {size:,} bytes"


def test_the_closing_summary_counts_each_key_once_as_status_does(tmp_path: Path) -> None:
    """The summary built from one reading and the lines appended (superseded records taken
    back) is the one `status` reads afresh from the file, row for row."""
    config = _project(tmp_path, 60)
    ledger = _ledger(config, failed_every=3)
    prepared = prepare(config)
    closing = Console()
    for _ in range(2):  # the second run supersedes some of the first's records again
        closing = Console(file=io.StringIO(), width=200)
        anyio.run(partial(run_pending, prepared, command="run", console=closing))
    status = Console(file=io.StringIO(), width=200)
    status.print(summary_table(summarize(ledger), "status"))
    rows = [_rows(console) for console in (closing, status)]
    assert rows[0] == rows[1] and len(rows[0]) == 1


def test_a_blank_line_is_passed_over_by_the_closing_summary_as_by_status(tmp_path: Path) -> None:
    """Blank lines in a ledger are neither records nor unreadable lines: the closing summary,
    from a run's one reading or from lines handed to it one by one, counts what `status` counts
    (none skipped), and a run over such a ledger closes with `status`'s row."""
    config = _project(tmp_path, 30)
    ledger = _ledger(config, failed_every=3)
    lines = ledger.read_bytes().splitlines(keepends=True)
    ledger.write_bytes(b"".join([*lines[:10], b"\n", b"  \n", *lines[10:]]))
    one_pass, line_by_line = ClosingSummary(), ClosingSummary()
    with ledger.open("rb") as file:
        one_pass.read_all(index_lines(ResumeIndex(), file))
    place = 0
    for line in ledger.read_bytes().splitlines(keepends=True):
        line_by_line.read(line, place)
        place += len(line)
    summaries = [summarize(ledger), one_pass.finish(ledger), line_by_line.finish(ledger)]
    assert [(s.skipped, s.records, s.runs) for s in summaries] == [(0, 30, 0)] * 3
    tables = []
    for summary in summaries:
        tables.append(Console(file=io.StringIO(), width=200))
        tables[-1].print(summary_table(summary, "t"))
    assert _rows(tables[0]) == _rows(tables[1]) == _rows(tables[2])
    closing = Console(file=io.StringIO(), width=200)
    anyio.run(partial(run_pending, prepare(config), command="run", console=closing))
    status = Console(file=io.StringIO(), width=200)
    status.print(summary_table(summarize(ledger), "status"))
    assert _rows(closing) == _rows(status) and len(_rows(status)) == 1


def _rows(console: Console) -> list[str]:
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return [line for line in text.splitlines() if line.startswith("│ sim@")]


def test_a_models_cap_counts_its_adapters_earlier_spend_on_resume(tmp_path: Path) -> None:
    """A model's lane runs its adapters' variants and its cap counts what they spend; resuming,
    what they spent before counts too, so a cap their earlier spend used up stops the run."""
    config = _project(tmp_path, 20)
    text = config.read_text().replace("budget_usd = 1000.0\n", "")
    config.write_text(text.replace("[models.price]", "budget_usd = 1.0\n[models.price]"))
    prepared = prepare(config)
    variant, prompt = prepared.variants[0], prepared.prompts[0]
    job = Job(job_key(variant.id, prompt.id, 0), variant, prompt, 0)
    answer = Completion("yes", "stop", Usage(1, 1), "sim-1")
    record = success_record("old", job, answer, elapsed=1.0, cost=2.0)
    adapter = variant.id.replace("sim@", "sim+sft@")  # the same model through its adapter `sft`
    record = replace(record, key=record.key.replace(variant.id, adapter), variant=adapter)
    prepared.ledger_path.parent.mkdir(parents=True)
    prepared.ledger_path.write_bytes(sealed(record))
    console = Console(file=io.StringIO(), width=200)
    code = anyio.run(partial(run_pending, prepared, command="run", console=console))
    assert code == EXIT_BUDGET, console.file.getvalue()
    assert "sim: $2.0000 of $1.00" in console.file.getvalue()
