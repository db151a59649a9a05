"""The report of 100,000 records: a ledger written the way the harness writes it (a run line
naming the prompts file, 4 variants, answers of a few hundred characters of English-like text,
two variants with 20 to 100 tokens of top-5 logprobs, 2% failures with retries, a spread of
timestamps), scored by `harness score` with the scoring benchmark's two rule scorers; `harness
report` in a child process; the page's first render in headless Chromium."""

from __future__ import annotations

import dataclasses
import random
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from benchmarks.analysis import CATEGORIES
from benchmarks.project import REPO
from benchmarks.scoring import SCORERS
from harness.api.types import Completion, Message, TokenLogprob, Usage
from harness.config.models import ModelConfig
from harness.config.run_config import make_variant
from harness.errors import RateLimited, ServerError
from harness.ledger.lines import LEDGER_NAME, sealed
from harness.ledger.record import Record
from harness.prompts.load import Prompt
from harness.run.jobs import Job, job_key
from harness.run.records import failure_record, success_record

# Words drawn with their frequencies in the README and docs/: text that compresses as English does.
_PROSE = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_WORDS = re.findall(r"[a-z][a-z'-]+", " ".join(p.read_text() for p in _PROSE).lower())
_START = datetime(2026, 11, 24, tzinfo=UTC)


def write_report_project(folder: Path, records: int) -> tuple[Path, int]:
    """`records` latest records in folder/ledger.jsonl with a run line, the prompts file it names
    and a config with a rule scorer (`harness score` it); returns the config and the ledger's
    size."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "bench.toml"
    config.write_text(
        f'prompts = "prompts.jsonl"\noutput = "{folder}"\n'
        '[[models]]\nname = "bench"\nprovider = "simulated"\n' + SCORERS
    )
    draw = random.Random(12)
    names = ("claude", "gemini", "qwen", "llama")
    variants = [make_variant(ModelConfig(name=n, provider="simulated"), 0.7, 42, {}) for n in names]
    prompts = [_prompt(draw, n) for n in range(-(-records // len(variants)))]
    prompts_file = folder / "prompts.jsonl"
    prompts_file.write_bytes(
        b"".join(
            orjson.dumps(
                {
                    "id": p.id,
                    "prompt": p.messages[0].content,
                    "category": p.category,
                    "is_synthetic_probe": p.is_synthetic_probe,
                }
            )
            + b"\n"
            for p in prompts
        )
    )
    run = {
        "type": "run",
        "run_id": "bench",
        "started": "2026-11-24T00:00:00.000Z",
        "argv": ["run", "bench.toml"],
        "config_path": str(config),
        "prompts": {"path": str(prompts_file), "format": "auto", "count": len(prompts)},
        "plan": {v.id: len(prompts) for v in variants},
    }
    with (folder / LEDGER_NAME).open("wb") as ledger:
        ledger.write(sealed(run))
        for n in range(records):
            variant, prompt = variants[n % len(variants)], prompts[n // len(variants)]
            job = Job(job_key(variant.id, prompt.id, 0), variant, prompt, 0)
            at = _START + timedelta(seconds=n * 0.02)
            if draw.random() < 0.02:
                error = (RateLimited if draw.random() < 0.5 else ServerError)("busy", status=429)
                retried = [error] * 4
                record = failure_record("bench", job, error, elapsed=1.0, attempt_errors=retried)
                ledger.write(sealed(_at(record, at)))
                continue
            logprobs = _logprobs(draw) if variant.model.name in ("qwen", "llama") else None
            text = " ".join(draw.choices(_WORDS, k=draw.randint(30, 90)))
            completion = Completion(text, "stop", Usage(60, 80), "sim-1", token_logprobs=logprobs)
            record = success_record("bench", job, completion, elapsed=draw.uniform(0.3, 4.0))
            record = _at(dataclasses.replace(record, retry_count=int(draw.random() < 0.05)), at)
            ledger.write(sealed(record))
    return config, (folder / LEDGER_NAME).stat().st_size


def _at(record: Record, moment: datetime) -> Record:
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return dataclasses.replace(record, timestamp=stamp)


def _prompt(draw: random.Random, number: int) -> Prompt:
    text = f"Does CVE-2024-{number:05d} exist? " + " ".join(draw.choices(_WORDS, k=40))
    return Prompt(
        f"prompt_{number:06d}",
        (Message("user", text),),
        CATEGORIES[number % len(CATEGORIES)],
        number % 3 == 0,
        {},
    )


def _logprobs(draw: random.Random) -> tuple[TokenLogprob, ...]:
    positions = []
    for _ in range(draw.randint(20, 100)):
        top = sorted((round(-draw.expovariate(1.0) * k, 4) for k in range(5)), reverse=True)
        words = draw.sample(_WORDS, 5)
        positions.append(TokenLogprob(words[0], top[0], tuple(zip(words, top, strict=True))))
    return tuple(positions)


def first_render_seconds(page: Path) -> tuple[float, float]:
    """Open `page` in headless Chromium (network blocked): seconds from navigation until the first
    page of rows is drawn, as the page measures it (performance.now()) and as seen from here."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"]
        )
        tab = browser.new_page()
        tab.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith("file:") else route.abort()
            ),
        )
        started = time.perf_counter()
        tab.goto(page.as_uri())
        tab.wait_for_selector("body[data-ready='1'] #rows tr", state="attached", timeout=120_000)
        seen = time.perf_counter() - started
        measured = tab.evaluate("window.harnessReport.firstRender") / 1000
        browser.close()
    return measured, seen
