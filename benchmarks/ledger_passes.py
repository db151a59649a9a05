"""How often a run reads its ledger: `python -m harness run` against a large ledger, in a child.

(a) every job already done: nothing to do; (b) 1,000 failed jobs run again and appended, under a
budget (`budget_usd`), a fifth of them failing again (the closing summary and the `rerun` lines
are printed). Each figure is the bytes the child read over the ledger's size (see
`benchmarks.ledger_reads`) and its wall time, process start to exit (median of ROUNDS).

`python -m benchmarks.ledger_passes [RECORDS]` runs it alone (100,000 records for a quick look);
it uses only what every version of the harness offers, so it measures an older tree too
(`PYTHONPATH=OLD_TREE`, with this file and `ledger_reads.py` copied into its benchmarks).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness.api.types import Completion, Usage
from harness.errors import ProviderError
from harness.ledger.lines import sealed
from harness.run.jobs import Job, job_key

# An older tree (see above) has these elsewhere; each ignore is for this tree, where it is absent.
try:
    from harness.run.prepare import prepare
except ImportError:  # the tree before the run path was split
    from harness.run.run import prepare  # type: ignore[import-untyped,no-redef]  # older tree
try:
    from harness.run.records import failure_record, success_record
except ImportError:  # the tree before records moved to the run path
    from harness.ledger.record import (  # type: ignore[attr-defined,no-redef]  # older tree
        failure_record,
        success_record,
    )

ROUNDS = 3
FAILED = 1_000  # jobs whose record is a failure: case (b) runs them again
_ANSWER = " ".join(["The advisory describes a remote code execution in the parser."] * 10)


def write_project(folder: Path, records: int, *, failing: bool) -> Path:
    """A config of one priced simulated model at two temperatures over `records` / 2 prompts;
    with `failing`, under a budget and failing a fifth of its attempts for good."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "prompts.jsonl").open("w") as file:
        for i in range(records // 2):
            file.write(json.dumps({"id": f"p{i:07d}", "prompt": f"Is {i} prime?"}) + "\n")
    options = "fatal_rate = 0.2\n" if failing else ""
    config = folder / "run.toml"
    config.write_text(
        f'prompts = "prompts.jsonl"\noutput = "{folder / "out"}"\n'
        + ("budget_usd = 1000000.0\n" if failing else "")
        + '[[models]]\nname = "sim"\nprovider = "simulated"\ntemperatures = [0.0, 0.7]\n'
        + "max_concurrency = 64\n[models.price]\ninput = 3.0\noutput = 15.0\n"
        + f"[models.options]\noutput_tokens = 48\n{options}"
    )
    return config


def write_ledger(config: Path, *, failed: int) -> Path:
    """A record of every job of the config, `failed` of them (spread evenly) failures."""
    prepared = prepare(config)
    ledger = prepared.ledger_path
    ledger.parent.mkdir(parents=True, exist_ok=True)
    jobs = [(v, p) for p in prepared.prompts for v in prepared.variants]
    every = len(jobs) // failed if failed else 0
    completion = Completion(_ANSWER, "stop", Usage(12, 120), "sim-1")
    error = ProviderError("simulated fatal error", status=400)
    with ledger.open("wb") as file:
        for n, (variant, prompt) in enumerate(jobs):
            job = Job(job_key(variant.id, prompt.id, 0), variant, prompt, 0)
            if every and n % every == 0 and n // every < failed:
                record = failure_record("bench", job, error, elapsed=0.5, cost=0.0)
            else:
                record = success_record("bench", job, completion, elapsed=1.5, cost=0.002)
            file.write(sealed(record))
    return ledger


def measure(config: Path, ledger: Path, original: Path | None) -> tuple[float, float]:
    """(bytes read / ledger size, wall seconds) of `harness run CONFIG` in a child; the ledger
    is first put back as `original` was (a run appends to it)."""
    if original is not None:
        shutil.copyfile(original, ledger)
    size = ledger.stat().st_size
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.ledger_reads", "run", str(config)],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if child.returncode not in (0, 1):
        raise RuntimeError(child.stderr[-2000:])
    read = int(child.stderr.rsplit("bytes_read=", 1)[1].split()[0])
    return read / size, wall


def cases(root: Path, records: int) -> list[tuple[str, float, float, int]]:
    """(case, bytes read / ledger size, median wall seconds, ledger size) of both cases."""
    figures = []
    for name, failing in (("(a) every job done", False), ("(b) 1,000 failed jobs rerun", True)):
        config = write_project(root / name[1], records, failing=failing)
        ledger = write_ledger(config, failed=FAILED if failing else 0)
        original = ledger.with_name("original.jsonl") if failing else None
        if original is not None:
            shutil.copyfile(ledger, original)
        rounds = [measure(config, ledger, original) for _ in range(ROUNDS)]
        size = (original or ledger).stat().st_size
        figures.append(
            (name, max(r for r, _ in rounds), statistics.median(w for _, w in rounds), size)
        )
        shutil.rmtree(config.parent)
    return figures


if __name__ == "__main__":
    import tempfile

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as folder:
        for name, ratio, wall, size in cases(Path(folder), count):
            sized = f"{count:,} records ({size / 1e6:,.0f} MB)"
            print(f"{name}, {sized}: read {ratio:.2f}x, {wall:.2f} s")
