"""Where a local model's weights are: a folder on disk, or a Hugging Face hub id pinned to a commit.

A hub id (`Qwen/Qwen2.5-14B-Instruct`, with an optional `revision`: a branch, tag or commit) is
resolved to the commit hash that will answer: from the local cache when it holds that revision
(no network), else by asking the hub (`model_info`), which is an error with `HF_HUB_OFFLINE=1`.
The commit goes into the variant id, so other weights are another variant, and the engine loads
exactly that commit: from the cached snapshot, or downloaded once the run starts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError

_MODEL_FILE = "config.json"


@dataclass(frozen=True)
class Weights:
    """A local model's weights: the source as configured, the commit that answers (None for a
    plain folder), the folder on disk (None while not downloaded) and its size in bytes."""

    source: str
    commit: str | None
    folder: Path | None
    size: int | None

    def describe(self) -> str:
        """One line for `doctor`: what answers and whether it is on disk."""
        if self.commit is None:
            return f"folder {self.folder} ({_gigabytes(self.size)})"
        where = (
            f"cached in {self.folder} ({_gigabytes(self.size)})"
            if self.folder
            else "not cached: downloaded when the run starts"
        )
        return f"{self.source} at commit {self.commit[:12]}, {where}"


def is_folder(path: str) -> bool:
    """Whether `path` names a folder rather than a hub id."""
    return path.startswith((".", "/", "~")) or Path(path).expanduser().exists()


def locate(path: str, revision: str = "") -> Weights:
    """Resolve a folder or a hub id (at `revision`) to its weights; InputError in one line when
    there are none to be had."""
    if is_folder(path):
        return _folder(path, revision)
    cached = _cached(path, revision)
    if cached is not None:
        return cached
    return Weights(path, _remote_commit(path, revision), None, None)


def snapshot(weights: Weights) -> Path:
    """The folder to load: the cached snapshot, downloaded first when the cache lacks it."""
    if weights.folder is not None:
        return weights.folder
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(weights.source, revision=weights.commit))


_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float8": 1, "int8": 1}


@dataclass(frozen=True)
class MemoryShape:
    """What a model's config.json says of the memory it takes beside its weights: its layers,
    key-value heads times head size, vocabulary and longest context (0: not said), and bytes per
    number."""

    layers: int
    kv_width: int
    vocab: int
    context: int
    number_bytes: int

    def cache_bytes(self, tokens: int) -> int:
        """The key-value cache of one sequence of `tokens` tokens."""
        return 2 * self.layers * self.kv_width * self.number_bytes * tokens


def memory_shape(folder: Path, dtype: str) -> MemoryShape | None:
    """The model's `MemoryShape` at `dtype` ("auto": its config's); None when its config does not
    say (or cannot be read)."""
    try:
        config = json.loads((folder / _MODEL_FILE).read_text())
        config = config.get("text_config", config)
        layers, heads = config["num_hidden_layers"], config["num_attention_heads"]
        kv_heads = config.get("num_key_value_heads") or heads
        head_dim = config.get("head_dim") or config["hidden_size"] // heads
        saved = config.get("dtype") or config.get("torch_dtype")  # transformers 5 writes dtype
        shape = MemoryShape(
            int(layers),
            int(kv_heads * head_dim),
            int(config.get("vocab_size") or 0),  # 0: not said
            int(config.get("max_position_embeddings") or 0),  # 0: not said
            _BYTES.get(dtype if dtype != "auto" else str(saved), 2),
        )
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError, AttributeError):
        return None
    return shape


def memory_needed(weights: Weights, dtype: str, max_model_len: int | None) -> int | None:
    """Bytes a GPU must hold for the model at these settings: its weights (as on disk) and the
    KV cache of one sequence of `max_model_len` tokens (the model's own maximum when None);
    None while the weights are not on disk."""
    if weights.folder is None or weights.size is None:
        return None
    shape = memory_shape(weights.folder, dtype)
    if shape is None:
        return weights.size
    tokens = max_model_len or shape.context
    return weights.size + shape.cache_bytes(tokens) if tokens else weights.size


def _folder(path: str, revision: str) -> Weights:
    folder = Path(path).expanduser()
    if not (folder / _MODEL_FILE).is_file():
        raise InputError(f'no model at "{path}" (expected a folder with {_MODEL_FILE})')
    if revision:
        raise InputError(f'revision "{revision}" is for hub ids; "{path}" is a folder')
    return Weights(path, None, folder, _size(folder))


def _cached(repo: str, revision: str) -> Weights | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo, revision=revision or None, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        return None
    if not (folder / _MODEL_FILE).is_file():
        return None
    return Weights(repo, folder.name, folder, _size(folder))


def _remote_commit(repo: str, revision: str) -> str:
    """The commit the hub has for `repo` at `revision`, or InputError saying why not."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    at = f" at revision {revision}" if revision else ""
    if constants.HF_HUB_OFFLINE:
        raise InputError(
            f"{repo}{at} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}), and "
            "HF_HUB_OFFLINE=1 forbids a download: unset it, or download the model first"
        )
    try:
        info = HfApi().model_info(repo, revision=revision or None, timeout=15)
    except RevisionNotFoundError:
        raise InputError(f"{repo}: the hub has no revision {revision}") from None
    except RepositoryNotFoundError:
        raise InputError(f"{repo}: no such model on the hub (or it needs a token)") from None
    except Exception as exc:  # the hub's HTTP client's connection errors and timeouts
        raise InputError(
            f"{repo}{at} is neither in the Hugging Face cache ({constants.HF_HUB_CACHE}) nor "
            f"reachable on the hub: {type(exc).__name__}"
        ) from None
    if not info.sha:
        raise InputError(f"{repo}: the hub did not say which commit{at} is")
    return info.sha


def _size(folder: Path) -> int:
    """Bytes of every file in `folder` (a cache snapshot's links count as their blobs)."""
    return sum(os.stat(p).st_size for p in folder.rglob("*") if p.is_file())


def _gigabytes(size: int | None) -> str:
    return "size unknown" if size is None else f"{size / 1e9:,.2f} GB"
