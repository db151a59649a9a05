"""The run line: what ran, where, with which code and config, and with every secret removed."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import re
import secrets
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.config.command_line import COMMAND_LINE
from harness.config.run_config import RunConfig, Variant
from harness.ledger.record import SCHEMA, utc_timestamp
from harness.prompts.load import Prompt
from harness.prompts.sources import PromptSource, data_files
from harness.providers import installed_as
from harness.scrub import REDACTED, redact_url, redact_urls
from harness.scrub import SECRET_NAME as _SECRET_KEY
from harness.version import package_version

_PACKAGES = (
    "harness",
    "anyio",
    "aiolimiter",
    "orjson",
    "rich",
    "aiohttp",
    "anthropic",
    "google-genai",
    "vllm",
    "torch",
    "transformers",
)
# Keys whose values are URLs, with or without their scheme: `base_url`, `url`, `endpoint_url`.
_URL_KEY = re.compile(r"url$", re.I)


def new_run_id() -> str:
    """A sortable, unique run id: `20251112T100000Z-a1b2c3`."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_line(
    run_id: str,
    command: str,
    config: RunConfig,
    prompts: Sequence[Prompt],
    variants: Sequence[Variant],
    plan: Mapping[str, int],
    argv: Sequence[str] = (),
    *,
    selection: Mapping[str, Any] | None = None,
    shard: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `{"type": "run"}` line a run appends before its first record; `selection` is what
    chose its prompts (see harness.prompts.selection), `shard` which part of the jobs it runs (see
    harness.ledger.shards; null for all of them)."""
    revision, dirty = _git_state()
    return {
        "type": "run",
        "schema": SCHEMA,
        "run_id": run_id,
        "command": command,
        "argv": list(argv),  # the command line after `python -m harness`, exactly as given
        "cwd": os.getcwd(),
        "started": utc_timestamp(),
        "harness_version": package_version("harness"),
        "git_revision": revision,
        "git_dirty": dirty,
        "python": sys.version.split()[0],
        "packages": {
            name: v for name in _PACKAGES if (v := package_version(name, *installed_as(name)))
        },
        "host": platform.node(),
        "gpu": _gpu_name(),
        "platform": platform.platform(),
        # null for a config given on the command line (`--model`): `config` is all of it
        "config_path": None if config.path == COMMAND_LINE else str(config.path.resolve()),
        "config": redact(config.raw),
        "config_resolved": redact(config.resolved),
        "prompts": {
            **_prompt_files(config.prompts),
            "selection": dict(selection or {}),
            "count": len(prompts),
            # The prompts this run sends (after its filters), by id and content, in order.
            "content_sha256": hashlib.sha256(
                "\n".join(f"{p.id}\t{p.hash}" for p in prompts).encode()
            ).hexdigest(),
        },
        "variants": {v.id: redact({"name": v.model.name, **v.identity}) for v in variants},
        "plan": dict(plan),
        "shard": dict(shard) if shard is not None else None,
    }


def redact(value: Any, key: str = "") -> Any:
    """A config table with secret-looking keys' values removed, and every URL's userinfo and
    query values (a string under a `*url` key, or one that says `scheme://`)."""
    if isinstance(value, Mapping):
        return {k: redact(v, k) for k, v in value.items()}
    if _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str) and _URL_KEY.search(key):
        return redact_url(value)
    if isinstance(value, str) and "://" in value:  # free text (a template) that holds URLs
        return redact_urls(value)
    return value


def _gpu_name() -> str | None:
    """The GPU's name when a local model's provider has loaded torch and CUDA is there."""
    torch = sys.modules.get("torch")  # never imported here just to ask
    if torch is None or not torch.cuda.is_available():
        return None
    return str(torch.cuda.get_device_name(0))


def _prompt_files(source: PromptSource) -> dict[str, Any]:
    """Where the prompts came from: the source, how it was read, each data file's SHA-256, and
    the hub commit of a cached hub dataset."""
    files, commit = data_files(source)
    fields = {k: v for k, v in dataclasses.asdict(source.fields).items() if v}
    described: dict[str, Any] = {"path": source.location, "format": source.format}
    if len(files) == 1:
        described["file_sha256"] = _file_sha256(files[0].path)
    else:
        described["files"] = {str(f.path): _file_sha256(f.path) for f in files}
    if source.split:
        described["split"] = source.split
    if fields:
        described["fields"] = fields
    if commit is not None:
        described["hub_commit"] = commit
    return described


def _file_sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _git_state() -> tuple[str | None, bool | None]:
    """The harness source's git revision, and whether its working tree has changes."""
    revision = _git("rev-parse", "HEAD")
    if revision is None:
        return None, None
    return revision, bool(_git("status", "--porcelain", "--untracked-files=no"))


def _git(*args: str) -> str | None:
    source = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "-C", str(source), *args],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
