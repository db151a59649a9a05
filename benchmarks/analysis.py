"""A million answers and their scores, written the way the harness writes them, for the stats and
export benchmarks."""

from __future__ import annotations

import random
import resource
from dataclasses import dataclass
from pathlib import Path

from benchmarks.project import measure_of, measured_child
from harness.analysis.scores import answer_digest, definition_hash, score_key
from harness.api.types import Completion, Message, TokenLogprob, Usage
from harness.config.models import ModelConfig
from harness.config.run_config import make_variant
from harness.errors import ServerError
from harness.ledger.lines import LEDGER_NAME, sealed
from harness.ledger.record import Record
from harness.prompts.load import Prompt
from harness.run.jobs import Job, job_key
from harness.run.records import failure_record, success_record

CATEGORIES = ("cve_existence", "package_existence", "api_existence", "cwe_mapping", "tool_flags")
_WORDS = "the advisory describes a remote code execution in parser library version".split()
_ANSWERS = {
    "exists": "Yes, it exists: the advisory describes a remote code execution in the parser.",
    "does_not_exist": "I cannot find any record of it; it does not appear to exist.",
    "refused": "I am not able to help with that request.",
}


def write_answers(folder: Path, records: int) -> tuple[int, int]:
    """`records` latest records (4 variants, two with top-5 logprobs of 8 tokens, 1% failures)
    in folder/ledger.jsonl, and a rule scorer's label for every answer in folder/scores.jsonl;
    returns both files' sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    variants = [
        make_variant(ModelConfig(name=name, provider="simulated"), t, 42, {})
        for name in ("claude", "qwen")
        for t in (0.0, 0.7)
    ]
    draw = random.Random(11)
    definition = definition_hash({"type": "rules", "name": "claims"})
    ledger, scores = folder / LEDGER_NAME, folder / "scores.jsonl"
    with ledger.open("wb") as answers, scores.open("wb") as labels:
        for n in range(records):
            variant = variants[n % len(variants)]
            number = n // len(variants)
            if n % len(variants) == 0:
                prompt = _prompt(number)
            job = Job(job_key(variant.id, prompt.id, 0), variant, prompt, 0)
            if draw.random() < 0.01:
                error = ServerError("503 overloaded", status=503)
                answers.write(sealed(failure_record("bench", job, error, elapsed=1.0)))
                continue
            label = _label(draw, prompt.is_synthetic_probe)
            unsure = prompt.is_synthetic_probe and draw.random() < 0.6
            logprobs = _logprobs(draw, unsure) if variant.model.name == "qwen" else None
            completion = Completion(
                _ANSWERS[label], "stop", Usage(12, 40), "sim-1", token_logprobs=logprobs
            )
            record = success_record("bench", job, completion, elapsed=draw.uniform(0.2, 3.0))
            answers.write(sealed(record))
            labels.write(sealed(_score(record.key, label, definition, record)))
    return ledger.stat().st_size, scores.stat().st_size


def _prompt(number: int) -> Prompt:
    probe = number % 3 == 0
    return Prompt(
        f"prompt_{number:07d}",
        (Message("user", f"Does thing {number} exist?"),),
        CATEGORIES[number % len(CATEGORIES)],
        probe,
        {"subject": f"CVE-2024-{number:05d}", "ground_truth": "fake" if probe else "real"},
    )


def _label(draw: random.Random, probe: bool) -> str:
    roll = draw.random()
    if roll < 0.05:
        return "refused"
    return "exists" if (roll < 0.45) == probe or roll > 0.9 else "does_not_exist"


def _logprobs(draw: random.Random, unsure: bool) -> tuple[TokenLogprob, ...]:
    spread = 0.6 if unsure else 2.0
    positions = []
    for _ in range(8):
        top = sorted((round(-draw.expovariate(1 / spread) * k, 4) for k in range(5)), reverse=True)
        words = draw.sample(_WORDS, 5)
        positions.append(TokenLogprob(words[0], top[0], tuple(zip(words, top, strict=True))))
    return tuple(positions)


def _score(answer_key: str, label: str, definition: str, record: Record) -> dict[str, object]:
    digest = answer_digest(
        {"prompt_hash": record.prompt_hash, "full_response": record.full_response}
    )
    return {
        "key": score_key(answer_key, "claims"),
        "status": "ok",
        "definition": definition,
        "answer": digest,
        "type": "score",
        "schema": 1,
        "answer_key": answer_key,
        "scorer": "claims",
        "label": label,
        "value": None,
        "rater": None,
        "detail": None,
        "error": None,
        "timestamp": "2026-11-24T00:00:00.000Z",
    }


@dataclass(frozen=True)
class VerbFigures:
    """A verb's wall seconds, CPU seconds (user and system, of it and its worker processes: on a
    machine others share, the figure their load does not stretch), its process's peak RSS and
    the peak memory of it and its workers together (PSS), in MB."""

    seconds: float
    cpu: float
    rss: float
    tree: float

    def __str__(self) -> str:
        return (
            f"{self.seconds:.1f} s (CPU {self.cpu:.1f} s), {self.rss:.0f} MB "
            f"(with its workers: {self.tree:.0f} MB)"
        )


def verb_figures(*args: str) -> VerbFigures:
    """`python -m harness ARGS` in a child, measured."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, stderr = measured_child(*args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss, tree = measure_of(stderr, "peak_rss_mb"), measure_of(stderr, "tree_pss_mb")
    return VerbFigures(seconds, cpu, rss, tree)
