"""Prompt sets: the legacy benchmark JSON (an object with a `prompts` list, or a bare list), JSONL.

Each item has an id (`id` or `prompt_id`), the prompt as text (`prompt`, `text` or `prompt_text`)
or as chat `messages`, an optional `system`, `category` and `is_synthetic_probe`; every other field
is kept as metadata. Errors name the file and the item, or the line and column.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harness.api import Message
from harness.errors import PromptsError

_ID_KEYS = ("id", "prompt_id")
_TEXT_KEYS = ("prompt", "text", "prompt_text")
_KNOWN = {*_ID_KEYS, *_TEXT_KEYS, "messages", "system", "category", "is_synthetic_probe"}
_ROLES = {"system", "user", "assistant"}


@dataclass(frozen=True, slots=True)
class Prompt:
    """One benchmark item, ready to send. `hash` identifies what is sent (see `content_hash`):
    an answer counts for a job only if it was made from the same content."""

    id: str
    messages: tuple[Message, ...]
    category: str
    is_synthetic_probe: bool
    metadata: Mapping[str, Any]
    hash: str = ""

    def __post_init__(self) -> None:
        if not self.hash:
            object.__setattr__(self, "hash", content_hash(self.messages))

    @property
    def text(self) -> str:
        """The prompt as plain text: every turn's content, in order."""
        return "\n\n".join(m.content for m in self.messages)


def content_hash(messages: tuple[Message, ...]) -> str:
    """16 hex digits of the SHA-256 of the turns (role and text, the system turn included)."""
    turns = [[m.role, m.content] for m in messages]
    return hashlib.sha256(orjson.dumps(turns)).hexdigest()[:16]


def load_prompts(path: str | Path) -> list[Prompt]:
    """Read a prompts file (`.jsonl` by line, anything else as JSON) and validate every item."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PromptsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    items = _jsonl_items(path, data) if path.suffix == ".jsonl" else _json_items(path, data)
    prompts: list[Prompt] = []
    seen: dict[str, str] = {}
    for where, item in items:
        prompt = _parse_item(path, where, item)
        if prompt.id in seen:
            raise PromptsError(
                f"{path}: {where}: duplicate id {prompt.id!r} (first at {seen[prompt.id]})"
            )
        seen[prompt.id] = where
        prompts.append(prompt)
    if not prompts:
        raise PromptsError(f"{path}: no prompts")
    return prompts


def _json_items(path: Path, data: bytes) -> Iterator[tuple[str, Any]]:
    document = _decode(path, data, "")
    if isinstance(document, Mapping):
        if "prompts" not in document:
            raise PromptsError(
                f'{path}: expected a list of prompts or an object with a "prompts" list'
            )
        document = document["prompts"]
    if not isinstance(document, list):
        raise PromptsError(f"{path}: prompts: expected a list")
    for index, item in enumerate(document):
        yield f"prompts[{index}]", item


def _jsonl_items(path: Path, data: bytes) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            yield f"line {number}", _decode(path, line, f"line {number}, ")


def _decode(path: Path, data: bytes, where: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        position = f"column {exc.colno}" if where else f"line {exc.lineno}, column {exc.colno}"
        raise PromptsError(f"{path}: {where}{position}: invalid JSON: {exc.msg}") from None


def _parse_item(path: Path, where: str, item: Any) -> Prompt:
    def fail(message: str) -> PromptsError:
        return PromptsError(f"{path}: {where}: {message}")

    if not isinstance(item, Mapping):
        raise fail("expected an object")
    prompt_id = next((item[k] for k in _ID_KEYS if k in item), None)
    if isinstance(prompt_id, int) and not isinstance(prompt_id, bool):
        prompt_id = str(prompt_id)
    if not isinstance(prompt_id, str) or not prompt_id.strip():
        raise fail('missing id (set "id" to a non-empty string)')
    if "|" in prompt_id:
        raise fail(f"id {prompt_id!r} must not contain '|'")
    messages = _messages(item, fail)
    category = item.get("category", "")
    if not isinstance(category, str):
        raise fail("category: expected a string")
    probe = item.get("is_synthetic_probe", False)
    if not isinstance(probe, bool):
        raise fail("is_synthetic_probe: expected true or false")
    metadata = {k: v for k, v in item.items() if k not in _KNOWN}
    return Prompt(prompt_id, messages, category, probe, metadata)


def _messages(item: Mapping[str, Any], fail: Callable[[str], PromptsError]) -> tuple[Message, ...]:
    system = item.get("system")
    if system is not None and (not isinstance(system, str) or not system.strip()):
        raise fail("system: expected a non-empty string")
    head = (Message("system", system),) if system else ()
    if "messages" in item:
        turns = item["messages"]
        if not isinstance(turns, list) or not turns:
            raise fail("messages: expected a non-empty list")
        parsed = []
        for index, turn in enumerate(turns):
            role = turn.get("role") if isinstance(turn, Mapping) else None
            content = turn.get("content") if isinstance(turn, Mapping) else None
            if role not in _ROLES:
                raise fail(f"messages[{index}].role: expected one of {sorted(_ROLES)}")
            if not isinstance(content, str) or not content.strip():
                raise fail(f"messages[{index}].content: empty text")
            parsed.append(Message(role, content))
        return head + tuple(parsed)
    text_key = next((k for k in _TEXT_KEYS if k in item), None)
    if text_key is None:
        raise fail(f"missing prompt text (set one of {', '.join(_TEXT_KEYS)} or messages)")
    text = item[text_key]
    if not isinstance(text, str) or not text.strip():
        raise fail(f"{text_key}: empty text")
    return (*head, Message("user", text))
