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
import operator
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from harness.api.types import Message, Role
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


def _new_prompts(
    ids: list[str],
    turns: list[tuple[Message, ...]],
    categories: list[str],
    probes: list[bool],
    metadata: list[dict[str, Any]],
    hashes: list[str],
) -> list[Prompt]:
    """Prompts made in bulk, equal to `Prompt(...)` of the same fields: each slot is set as the
    frozen dataclass's `__init__` sets it, without a call through `object.__setattr__` per field
    and one to `__post_init__` (every hash is given): twice as fast."""
    new, slot = object.__new__, vars(Prompt)
    set_id, set_messages, set_category = (slot[n].__set__ for n in ("id", "messages", "category"))
    set_probe, set_metadata, set_hash = (
        slot[n].__set__ for n in ("is_synthetic_probe", "metadata", "hash")
    )
    made = []
    for row in zip(ids, turns, categories, probes, metadata, hashes, strict=True):
        prompt = new(Prompt)
        set_id(prompt, row[0])
        set_messages(prompt, row[1])
        set_category(prompt, row[2])
        set_probe(prompt, row[3])
        set_metadata(prompt, row[4])
        set_hash(prompt, row[5])
        made.append(prompt)
    return made


def as_source(source: PromptSource | str | Path) -> PromptSource:
    """A source as given, or a plain path read with the built-in field names."""
    if isinstance(source, PromptSource):
        return source
    return PromptSource(str(Path(source).expanduser().resolve()))


def load_prompts(source: PromptSource | str | Path) -> list[Prompt]:
    """Read a prompt set, file by file and batch by batch, and validate every item: a batch of
    plain rows column by column, any other row by row."""
    source = as_source(source)
    files, _ = data_files(source)
    reader = _RowReader(source.fields)
    prompts: list[Prompt] = []
    seen: set[str] = set()
    with collector_paused():
        for file in files:
            for positions, rows in file.batches():
                made = reader.batch(rows, file, seen)
                if made is not None:
                    prompts += made
                    continue
                for position, row in zip(positions, rows, strict=True):
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
    copy, and the rest is metadata. A batch of rows that share their fields is read column by
    column when it can be (`batch`), with the same outcome.
    """

    def __init__(self, fields: FieldMap) -> None:
        self.fields = fields
        self.template = PromptTemplate(fields.template) if fields.template else None
        self.rows = 0
        self.numbered: bool | None = None  # decided by the first row
        self.plans: dict[tuple[str, ...], _Columns | None] = {}  # by a batch's field names

    def batch(self, rows: list[Any], file: DataFile, seen: set[str]) -> list[Prompt] | None:
        """The prompts of a batch whose rows have the same fields, in the same order, and need
        no rule but the plain ones (see `_Columns`), each column checked at once; None for any
        other batch, or one with a mistake or an id seen before: read row by row, it is named.
        The ids are added to `seen`."""
        if set(map(type, rows)) != {dict}:
            return None
        names = tuple(rows[0])
        if not all(map(names.__eq__, map(tuple, rows))):
            return None
        if names not in self.plans:
            self.plans[names] = _Columns.of(names, self.fields, self.template is not None)
        plan = self.plans[names]
        if plan is None or (self.numbered is not None and self.numbered != (not plan.id)):
            return None
        start = self.rows
        ids = _usual_ids(_column(rows, plan.id)) if plan.id else _numbers(start, len(rows))
        if ids is None:
            return None
        fresh = set(ids)
        if len(fresh) < len(ids) or not seen.isdisjoint(fresh):
            return None
        made = plan.prompts(rows, ids, file)
        if made is not None:
            self.rows += len(rows)
            self.numbered = not plan.id
            seen |= fresh
        return made

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


@dataclass(slots=True)
class _Columns:
    """Which field of a batch's rows is the id ("" if none: rows are numbered), the system
    turn, the prompt's text, the category and the probe flag, and which are metadata: for rows
    with none of the rules that need a row at a time (a template, chat turns, Alpaca's
    instruction, Inspect's nested metadata, a mapped target, a dotted path, a field read twice).
    """

    id: str
    system: str
    text: str
    category: str
    probe: str
    metadata: tuple[str, ...] = ()

    @classmethod
    def of(cls, names: tuple[str, ...], fields: FieldMap, templated: bool) -> _Columns | None:
        """The columns of rows with these field names, or None if a rule needs each row."""
        present = set(names)
        if templated or fields.target or "metadata" in present:
            return None
        if not fields.text and ("messages" in present or "instruction" in present):
            return None
        plan = cls(
            fields.id or next((k for k in _ID_KEYS if k in present), ""),
            fields.system or ("system" if "system" in present else ""),
            fields.text or next((k for k in _TEXT_KEYS if k in present), ""),
            fields.category or ("category" if "category" in present else ""),
            fields.probe or ("is_synthetic_probe" if "is_synthetic_probe" in present else ""),
        )
        taken = [n for n in (plan.id, plan.system, plan.text, plan.category, plan.probe) if n]
        if not plan.text or len(set(taken)) < len(taken) or not present.issuperset(taken):
            return None
        left = present.difference(taken, fields.drop)
        plan.metadata = tuple(name for name in names if name in left)
        return plan

    def prompts(
        self, rows: list[dict[str, Any]], ids: list[str], file: DataFile
    ) -> list[Prompt] | None:
        """The batch's prompts, or None if a value breaks a rule (the row-by-row path names it)."""
        count, text_cells = len(rows), file.text_cells
        texts = _column(rows, self.text)
        if set(map(type, texts)) != {str} or not all(texts) or any(map(str.isspace, texts)):
            return None
        systems = _column(rows, self.system) if self.system else []
        if systems and not _plain_systems(systems):
            return None
        try:
            categories = (
                [sys.intern(_category(v, text_cells)) for v in _column(rows, self.category)]
                if self.category
                else [""] * count
            )
            probes = (
                [_flag(v, text_cells, self.probe) for v in _column(rows, self.probe)]
                if self.probe
                else [False] * count
            )
            keep = self.metadata
            metadata = [{k: row[k] for k in keep} for row in rows] if keep else [{} for _ in rows]
            if file.typed:
                metadata = list(map(_json_ready, metadata))
        except _RowError:
            return None
        turns = _turns_of(systems, texts)
        hashes = list(map(content_hash, turns)) if systems else _user_hashes(texts)
        return _new_prompts(ids, turns, categories, probes, metadata, hashes)


def _column(rows: list[dict[str, Any]], name: str) -> list[Any]:
    return list(map(itemgetter(name), rows))


def _numbers(start: int, count: int) -> list[str]:
    """The ids of rows numbered from `start` + 1 (a set without ids)."""
    return list(map(str, range(start + 1, start + count + 1)))


def _usual_ids(values: list[Any]) -> list[str] | None:
    """The ids of a column whose every value is the usual id, non-empty text with no space at
    its ends, no line break and no '|', or an integer (as text); None otherwise."""
    kinds = set(map(type, values))
    if kinds <= {int, str} and int in kinds:
        values = [str(v) if type(v) is int else v for v in values]
    elif kinds != {str}:
        return None
    joined = "".join(values)
    if "|" in joined or "\n" in joined or not all(values):
        return None
    return values if all(map(operator.eq, map(str.strip, values), values)) else None


def _plain_systems(values: list[Any]) -> bool:
    """Whether every system turn is absent, empty, or text that is not blank."""
    texts = [v for v in values if v is not None]
    return set(map(type, texts)) <= {str} and not any(map(str.isspace, texts))


def _user_hashes(texts: list[str]) -> list[str]:
    """`content_hash` of each text sent as one user turn, computed without the turns."""
    sha256, dumps = hashlib.sha256, orjson.dumps
    return [sha256(dumps([["user", text]])).hexdigest()[:16] for text in texts]


def _turns_of(systems: list[Any], texts: list[str]) -> list[tuple[Message, ...]]:
    """Each row's turns: its system turn, if any, then its text as a user turn."""
    if not systems:
        user: Role = "user"
        return list(zip(map(Message, itertools.repeat(user), texts)))  # 1-tuples, made in C
    return [
        (Message("system", s), Message("user", t)) if s else (Message("user", t),)
        for s, t in zip(systems, texts, strict=True)
    ]


def _prompt(row: Mapping[str, Any], rest: dict[str, Any], fields: FieldMap) -> tuple[Message, ...]:
    """The prompt's turns, from the field the rules above pick."""
    if fields.text:
        return _turns(_take(row, rest, fields.text), fields.text)
    if "messages" in row:
        return _turns(rest.pop("messages", row["messages"]), "messages", chat_only=True)
    if "instruction" in row:  # Alpaca: the instruction, then its input when there is one
        text = _text(rest.pop("instruction", row["instruction"]), "instruction")
        extra = rest.pop("input", None)
        if isinstance(extra, str) and extra.strip():
            text = f"{text}\n\n{extra}"
        elif extra not in (None, ""):
            raise _RowError("input: expected a string")
        return (Message("user", text),)
    for key in _TEXT_KEYS:
        if key in row:
            return _turns(rest.pop(key, row[key]), key)
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
