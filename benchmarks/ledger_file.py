"""A large ledger written the way the harness writes one, for the resume-index benchmark."""

from __future__ import annotations

from pathlib import Path

from harness.api.types import Completion, Message, Usage
from harness.config.models import ModelConfig
from harness.config.run_config import make_variant
from harness.ledger.lines import sealed
from harness.prompts.load import Prompt
from harness.run.jobs import Job, job_key
from harness.run.records import success_record

_ANSWER = " ".join(["The advisory describes a remote code execution in the parser."] * 10)


def write_big_ledger(path: Path, records: int) -> int:
    """Write `records` real success records (about 1.2 KB each); returns the file size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    variants = [
        make_variant(ModelConfig(name=name, provider="simulated"), t, 42, {})
        for name in ("claude", "gemini")
        for t in (0.0, 0.7)
    ]
    completion = Completion(_ANSWER, "stop", Usage(42, 120), "sim-1")
    with path.open("wb") as file:
        for n in range(records):
            variant = variants[n % len(variants)]
            prompt = Prompt(
                f"prompt_{n // len(variants):06d}",
                (Message("user", "q"),),
                "cve_existence",
                False,
                {"subject": "CVE-2021-44228"},
            )
            job = Job(job_key(variant.id, prompt.id, 0), variant, prompt, 0)
            record = success_record("20261123T000000Z-bench0", job, completion, elapsed=1.5)
            file.write(sealed(record))
    return path.stat().st_size
