"""Prompt sets: the rows of any prompt file or dataset (see harness.prompts.sources) read as
prompts.

Which field holds what, in order of precedence (the first one present wins); `[prompts]` in the
config can name any other field for each (see harness.prompts.sources.FieldMap):

| what      | fields                                                                          |
|-----------|---------------------------------------------------------------------------------|
| id        | `id`, `prompt_id`, `idx`, `task_id`, `question_id`; a set with none numbers its  |
|           | rows from 1, as Inspect does                                                     |
| prompt    | `messages` (chat turns); `instruction`, followed by `input` when that is not    |
|           | empty (Alpaca); `input` (Inspect: text or chat turns); `prompt`, `text`,         |
|           | `prompt_text`, `question`                                                        |
| system    | `system`                                                                         |
| category  | `category`, then Inspect's `metadata.category`                                   |
| probe     | `is_synthetic_probe`, then `metadata.is_synthetic_probe`                         |
| target    | `target`                                                                         |

Every other field is kept on the prompt's records as metadata, `target` included (so a judge's
rubric can say `{target}`), with the fields of Inspect's `metadata` object merged in, except those
`drop` names and those the prompt is made of. Errors name the file, the row or line, and the field.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from harness.api.types import Message
from harness.bulk import collector_paused
from harness.errors import PromptsError
from harness.prompts.sources import DataFile, FieldMap, PromptSource, data_files
from harness.prompts.template import PromptTemplate, TemplateError

_ID_KEYS = ("id", "prompt_id", "idx", "task_id", "question_id")
_TEXT_KEYS = ("input", "prompt", "text", "prompt_text", "question")
_ROLES = {"system", "user", "assistant"}
_FLAG_WORDS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


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


def as_source(source: PromptSource | str | Path) -> PromptSource:
    """A source as given, or a plain path read with the built-in field names."""
    if isinstance(source, PromptSource):
        return source
    return PromptSource(str(Path(source).expanduser().resolve()))


def load_prompts(source: PromptSource | str | Path) -> list[Prompt]:
    """Read a prompt set, file by file and row by row, and validate every item."""
    source = as_source(source)
    files, _ = data_files(source)
    reader = _RowReader(source.fields)
    prompts: list[Prompt] = []
    seen: set[str] = set()
    with collector_paused():
        for file in files:
            for position, row in file.rows():
                try:
                    prompt = reader.prompt(row, file)
                except _RowError as exc:
                    raise PromptsError(f"{file.path}: {file.where(position)}: {exc}") from None
                if prompt.id in seen:
                    first = next(i for i, p in enumerate(prompts) if p.id == prompt.id)
                    raise PromptsError(
                        f"{file.path}: {file.where(position)}: duplicate id {prompt.id!r} "
                        f"(first at {_place(files, first)})"
                    )
                seen.add(prompt.id)
                prompts.append(prompt)
    if not prompts:
        raise PromptsError(f"{source}: no prompts")
    return prompts


def _place(files: list[DataFile], ordinal: int) -> str:
    """Where the `ordinal`-th row of a set is (read again: only an error needs it)."""
    rows = ((file, position) for file in files for position, _ in file.rows())
    file, position = next(itertools.islice(rows, ordinal, None))
    return file.where(position) if len(files) == 1 else f"{file.path.name} {file.where(position)}"


class _RowError(ValueError):
    """What is wrong with one row; the loader adds the file and the row."""


class _RowReader:
    """Turns rows into prompts by the field rules above; numbers the rows of a set without ids.

    A row's fields are copied once; each field that is read as the id, the prompt (a template's
    fields included), the system turn, the category, the flag or the target is taken out of the
    copy, and the rest is metadata.
    """

    def __init__(self, fields: FieldMap) -> None:
        self.fields = fields
        self.template = PromptTemplate(fields.template) if fields.template else None
        self.rows = 0
        self.numbered: bool | None = None  # decided by the first row

    def prompt(self, row: Any, file: DataFile) -> Prompt:
        if type(row) is not dict and not isinstance(row, Mapping):
            raise _RowError("expected an object")
        self.rows += 1
        fields, text_cells = self.fields, file.text_cells
        rest = dict(row)
        nested = rest.pop("metadata", None)
        if nested is None:
            pass
        elif isinstance(nested, Mapping):
            nested = dict(nested)
        else:
            rest["metadata"] = nested
            nested = None
        prompt_id = self._id(row, rest, text_cells)
        messages = self._messages(row, rest, nested)
        category = _category(_pick(row, rest, nested, fields.category, "category"), text_cells)
        flag = _pick(row, rest, nested, fields.probe, "is_synthetic_probe")
        probe = _flag(flag, text_cells, fields.probe or "is_synthetic_probe")
        if fields.target:
            rest["target"] = _take(row, rest, fields.target)
        if nested:
            rest = {**nested, **rest}
        for name in fields.drop:
            rest.pop(name, None)
        if file.typed:
            rest = _json_ready(rest)
        return Prompt(prompt_id, messages, sys.intern(category), probe, rest)

    def _id(self, row: Mapping[str, Any], rest: dict[str, Any], text_cells: bool) -> str:
        mapped = self.fields.id
        key = mapped or next((k for k in _ID_KEYS if k in row), None)
        if self.numbered is None:
            self.numbered = key is None
        if self.numbered:
            if key is not None:
                raise _RowError(f"{key}: this row has an id but the first row has none")
            return str(self.rows)
        value = _take(row, rest, key) if key is not None else None
        if (
            type(value) is str
            and value
            and not value[0].isspace()
            and not value[-1].isspace()
            and "|" not in value
            and "\n" not in value
        ):
            return value  # the usual id, checked at once
        name = mapped or key or "id"
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # an integer column with a gap, as pandas stores it
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value is None or value == "" or (isinstance(value, float) and value != value):
            raise _RowError(f'missing id (set "{name}" to a non-empty string)')
        if not isinstance(value, str):
            raise _RowError(f"{name}: expected a string or an integer, got {value!r}")
        if text_cells:
            value = value.strip()
        if not value or value != value.strip() or "\n" in value:
            raise _RowError(f"{name}: {value!r}: no line breaks or spaces at its ends, please")
        if "|" in value:
            raise _RowError(f"id {value!r} must not contain '|'")
        return value

    def _messages(
        self, row: Mapping[str, Any], rest: dict[str, Any], nested: Mapping[str, Any] | None
    ) -> tuple[Message, ...]:
        """The turns to send: the system turn, if any, then the prompt as text or chat turns."""
        fields = self.fields
        system = _take(row, rest, fields.system) if fields.system else rest.pop("system", None)
        if system not in (None, "") and (not isinstance(system, str) or not system.strip()):
            raise _RowError(f"{fields.system or 'system'}: expected a non-empty string")
        head = (Message("system", system),) if system else ()
        if self.template is not None:
            try:
                text = self.template.render({**(nested or {}), **row})
            except TemplateError as exc:
                raise _RowError(f"template: {exc}") from None
            for name in self.template.fields:
                rest.pop(name, None)
            return (*head, Message("user", _text(text, "template")))
        return head + _prompt(row, rest, fields)


def _prompt(row: Mapping[str, Any], rest: dict[str, Any], fields: FieldMap) -> tuple[Message, ...]:
    """The prompt's turns, from the field the rules above pick."""
    if fields.text:
        return _turns(_take(row, rest, fields.text), fields.text)
    if "messages" in row:
        return _turns(rest.pop("messages"), "messages", chat_only=True)
    if "instruction" in row:  # Alpaca: the instruction, then its input when there is one
        text = _text(rest.pop("instruction"), "instruction")
        extra = rest.pop("input", None)
        if isinstance(extra, str) and extra.strip():
            text = f"{text}\n\n{extra}"
        elif extra not in (None, ""):
            raise _RowError("input: expected a string")
        return (Message("user", text),)
    for key in _TEXT_KEYS:
        if key in row:
            return _turns(rest.pop(key), key)
    found = ", ".join(map(str, row)) or "none"
    raise _RowError(
        f"no prompt field (expected one of messages, instruction, {', '.join(_TEXT_KEYS)}; "
        f"or name it with prompts.text in the config); fields found: {found}"
    )


def _turns(value: Any, name: str, *, chat_only: bool = False) -> tuple[Message, ...]:
    """A prompt given as text (one user turn) or as chat turns (Inspect's content parts too)."""
    if isinstance(value, str) and not chat_only:
        return (Message("user", _text(value, name)),)
    if not isinstance(value, list) or not value:
        expected = "a non-empty list" if chat_only else "text or a non-empty list of chat turns"
        raise _RowError(f"{name}: expected {expected}")
    turns = []
    for index, turn in enumerate(value):
        role = turn.get("role") if isinstance(turn, Mapping) else None
        if role == "tool" or (isinstance(turn, Mapping) and turn.get("tool_calls")):
            raise _RowError(f"{name}[{index}]: tool calls and tool turns cannot be sent")
        if role not in _ROLES:
            raise _RowError(f"{name}[{index}].role: expected one of {sorted(_ROLES)}")
        turns.append(Message(role, _content(turn.get("content"), f"{name}[{index}]")))
    return tuple(turns)


def _content(content: Any, where: str) -> str:
    """A turn's text: a string, or Inspect's list of content parts (text parts only)."""
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind != "text" or not isinstance(part.get("text"), str):
                raise _RowError(
                    f"{where}.content[{index}]: only text parts are supported, got {kind!r}"
                )
            texts.append(part["text"])
        content = "\n".join(texts)
    if not isinstance(content, str) or not content.strip():
        raise _RowError(f"{where}.content: empty text")
    return content


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _RowError(f"{name}: empty text")
    return value


def _take(row: Mapping[str, Any], rest: dict[str, Any], path: str) -> Any:
    """The value at a field name or a dotted path into nested objects; a top-level field taken
    is not kept again as metadata."""
    if path in row:
        return rest.pop(path, row[path])
    value: Any = row
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            found = ", ".join(map(str, row)) or "none"
            raise _RowError(f"{path}: no such field (fields found: {found})")
    return value


def _pick(
    row: Mapping[str, Any],
    rest: dict[str, Any],
    nested: dict[str, Any] | None,
    mapped: str,
    name: str,
) -> Any:
    """A mapped field, else the built-in name at the top level, else in Inspect's metadata."""
    if mapped:
        return _take(row, rest, mapped)
    if name in row:  # taken out of `rest` once, whatever else read it too (a template, the id)
        return rest.pop(name, row[name])
    return nested.pop(name, None) if nested else None


def _category(value: Any, text_cells: bool) -> str:
    """A category: text (trimmed in CSV/TSV), or an integer (a level, a class) as text."""
    if value is None:
        return ""
    if type(value) is str:
        return value.strip() if text_cells else value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _RowError(f"category: expected a string, got {value!r}")


def _json_ready(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata as records can hold it: a column type JSON lacks (Parquet's decimals and
    durations) becomes text or seconds; binary data (an image, audio) is an error naming it."""
    try:
        orjson.dumps(metadata)
        return metadata
    except TypeError:
        pass
    for key, value in metadata.items():
        try:
            orjson.dumps(value, default=_plain)
        except TypeError as exc:  # orjson's error; what `_plain` said is its cause
            raise _RowError(f"{key}: {exc.__cause__ or exc}") from None
    plain: dict[str, Any] = orjson.loads(orjson.dumps(metadata, default=_plain))
    return plain


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray):
        raise TypeError("binary data (an image? audio?) cannot be kept on records: add it to drop")
    raise TypeError(f"a {type(value).__name__} cannot be kept on records: add it to drop")


def _flag(value: Any, text_cells: bool, name: str) -> bool:
    """A probe flag: true/false (or 0/1); in CSV and TSV also the words true/false, yes/no, 1/0,
    and an empty cell for false."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if text_cells and isinstance(value, str):
        word = value.strip().lower()
        if word in _FLAG_WORDS or not word:
            return _FLAG_WORDS.get(word, False)
    raise _RowError(f"{name}: expected true or false")
