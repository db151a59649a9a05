"""What the local-model providers (vllm, transformers) share: the prompt as token ids, and the
check that a model folder exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.api import Message


def missing_model(path: str) -> list[str]:
    """A problem when `path` looks like a local folder but holds no model."""
    folder = Path(path).expanduser()
    looks_local = path.startswith((".", "/", "~")) or folder.exists()
    if looks_local and not (folder / "config.json").is_file():
        return [f'no model at "{path}" (expected a folder with config.json)']
    return []


def prompt_ids(tokenizer: Any, messages: tuple[Message, ...], chat: bool) -> list[int]:
    """Chat models: the tokenizer's chat template with the generation prompt. Base models
    (`chat = false`): the turns' text alone, with the tokenizer's usual special tokens."""
    if chat:
        turns = [{"role": m.role, "content": m.content} for m in messages]
        text = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        return list(tokenizer.encode(text, add_special_tokens=False))
    return list(tokenizer.encode("\n\n".join(m.content for m in messages)))
