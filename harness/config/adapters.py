"""LoRA adapters of a local model, each served as variants of their own by the model's engine.

A model's `[models.adapters]` table maps a name to a folder in PEFT's format: `adapter_config.json`
and the weights (`adapter_model.safetensors`, or `.bin` / `.pt`). Read before anything is written,
an adapter is known by its path as configured and the SHA-256 of those files, and both go into
its variants' identity: the same path with other weights is another variant. Other files in the
folder (a README, a tokenizer, trainer checkpoints) change no answer and no id.

The name shows in the variant id (`qwen+sft@t0.7-3f9a1c`), so it is a plain word: letters,
digits, `_`, `.` and `-`, never `|` (keys are `variant|prompt_id|sample`), `@` or `+`.

What an adapter is to a provider (`harness.api.types.Adapter`) is the provider contract's; this
module reads one from its folder and checks that its files are unchanged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from harness.api.types import Adapter
from harness.errors import InputError

CONFIG_FILE = "adapter_config.json"
# The weights PEFT and vLLM read, the first present winning; every one present is hashed.
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin", "adapter_model.pt")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def unchanged(adapter: Adapter) -> bool:
    """Whether an adapter's files still hash as they did when the run was planned (checked again
    once an engine has loaded them, so the variant id names the weights that answer)."""
    try:
        return content_hash(adapter.folder) == adapter.sha256
    except OSError:
        return False


def read_adapter(name: str, path: str, within: Path = Path()) -> Adapter:
    """The adapter in folder `path` (relative to `within`, the config's folder); InputError in one
    line when it is missing or not a LoRA adapter PEFT could load."""
    folder = within / Path(path).expanduser()
    config_file = folder / CONFIG_FILE
    at = f'"{path}"' if folder == Path(path).expanduser() else f'"{path}" ({folder})'
    if not folder.is_dir():
        raise InputError(f"no adapter at {at}: no such folder")
    if not config_file.is_file():
        raise InputError(f"no adapter at {at}: the folder has no {CONFIG_FILE}")
    try:
        config = orjson.loads(config_file.read_bytes())
    except OSError as exc:
        raise InputError(f"{config_file}: cannot read: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{config_file}: not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise InputError(f"{config_file}: expected a JSON object")
    kind = config.get("peft_type")
    if kind != "LORA":
        raise InputError(f'{config_file}: peft_type: expected "LORA", got {_show(kind)}')
    if not any((folder / weights).is_file() for weights in WEIGHT_FILES):
        raise InputError(f'no weights in "{path}" (expected {" or ".join(WEIGHT_FILES[:2])})')
    try:
        digest = content_hash(folder)
    except OSError as exc:
        raise InputError(f'"{path}": cannot read: {exc.strerror}') from None
    base = config.get("base_model_name_or_path")
    return Adapter(
        name=name,
        path=path,
        folder=folder.resolve(),
        sha256=digest,
        rank=_rank(config, config_file),
        base_model=base if isinstance(base, str) and base else None,
        config=config,
    )


def content_hash(folder: Path) -> str:
    """SHA-256 over the adapter's config and weight files: each file's name, size and bytes."""
    digest = hashlib.sha256()
    for name in (CONFIG_FILE, *WEIGHT_FILES):
        path = folder / name
        if not path.is_file():
            continue
        digest.update(f"{name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _rank(config: Mapping[str, Any], config_file: Path) -> int:
    """The largest rank of any module: `r`, or a larger one in `rank_pattern`."""
    ranks = [("r", config.get("r"))]
    pattern = config.get("rank_pattern") or {}
    if not isinstance(pattern, dict):
        raise InputError(f"{config_file}: rank_pattern: expected an object")
    ranks += [(f"rank_pattern.{key}", value) for key, value in pattern.items()]
    checked: list[int] = []
    for where, rank in ranks:
        if type(rank) is not int or rank < 1:
            raise InputError(f"{config_file}: {where}: expected a positive integer, got {rank!r}")
        checked.append(rank)
    return max(checked)


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)
