"""What the local-model providers (vllm, transformers) share: the weights pinned to the commit
that answers, the folder to load, and the prompt as token ids."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from harness.api import Message
from providers._hub import locate, snapshot

Options = TypeVar("Options")


def pinned(model: str, options: Options) -> Options:
    """The options with `revision` set to the commit that will answer (a hub id's branch, tag or
    commit resolved through the cache or the hub; empty for a folder). InputError when the
    weights cannot be had."""
    weights = locate(getattr(options, "path", "") or model, getattr(options, "revision", ""))
    return dataclasses.replace(options, revision=weights.commit or "")  # type: ignore[type-var]


def weights_folder(path: str, revision: str) -> tuple[Path, str]:
    """The folder to load (downloaded first when the cache lacks it) and the name records give
    the model: `hub/id@commit`, or the folder as configured."""
    weights = locate(path, revision)
    label = f"{weights.source}@{weights.commit}" if weights.commit else weights.source
    return snapshot(weights), label


def prompt_ids(tokenizer: Any, messages: tuple[Message, ...], chat: bool) -> list[int]:
    """Chat models: the tokenizer's chat template with the generation prompt. Base models
    (`chat = false`): the turns' text alone, with the tokenizer's usual special tokens."""
    if chat:
        turns = [{"role": m.role, "content": m.content} for m in messages]
        text = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        return list(tokenizer.encode(text, add_special_tokens=False))
    return list(tokenizer.encode("\n\n".join(m.content for m in messages)))
