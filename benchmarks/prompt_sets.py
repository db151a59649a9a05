"""Loading 1,000,000 prompts from JSONL, CSV and Parquet: seconds and peak RSS, each in a fresh
process (`python -m benchmarks.prompt_sets PATH` loads one file and prints both)."""

from __future__ import annotations

import csv
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.peak_rss import peak_rss_mb
from harness.prompts.load import load_prompts

CATEGORIES = ("cve_existence", "package_existence", "api_existence", "cwe", "tool_flag")


def _columns(count: int) -> dict[str, list]:
    return {
        "id": [f"p{i:07d}" for i in range(count)],
        "prompt": [
            f"Does CVE-2024-{i:07d} exist? Answer yes or no, then explain briefly."
            for i in range(count)
        ],
        "category": [CATEGORIES[i % len(CATEGORIES)] for i in range(count)],
        "is_synthetic_probe": [i % 5 == 0 for i in range(count)],
        "target": ["no" if i % 5 == 0 else "yes" for i in range(count)],
    }


def write_prompt_sets(folder: Path, count: int) -> dict[str, Path]:
    """The same `count` prompts as JSONL, CSV and Parquet."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = _columns(count)
    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    paths = {name: folder / f"prompts.{name}" for name in ("jsonl", "csv", "parquet")}
    with paths["jsonl"].open("wb") as file:
        file.writelines(orjson.dumps(row) + b"\n" for row in rows)
    with paths["csv"].open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    pq.write_table(pa.table(columns), paths["parquet"], row_group_size=100_000)
    return paths


def load_figures(path: Path, rounds: int) -> tuple[float, float]:
    """Median seconds and peak RSS (MB) of loading `path` in a fresh process, over `rounds`."""
    seconds, peaks = [], []
    for _ in range(rounds):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.prompt_sets", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        seconds.append(float(out[0]))
        peaks.append(float(out[1]))
    return statistics.median(seconds), statistics.median(peaks)


if __name__ == "__main__":
    start = time.perf_counter()
    loaded = load_prompts(sys.argv[1])
    print(f"{time.perf_counter() - start:.3f} {peak_rss_mb():.1f} {len(loaded)}")
