"""An annotation's unblinding key read back for `annotate import`, every part of it checked first.

`annotate export` writes the key (`harness.analysis.annotation`); a hand edit or a damaged copy
can leave it without what the import needs. `load_key` reads it and notes each problem as one
line naming the key and the field (an item's by its number: `item 0007: answer_key is missing`),
so that the import reports them all, with the sheets' own, before anything is stored.

The label set is checked the same way at export and at import: the import matches a rater's label
ignoring case and surrounding spaces, so two labels that differ only so (`Yes`, `yes`) would be
read as one. Rater names equal but for case are refused alike: their sheets (`ana.csv`, `ANA.csv`)
are one file where case is ignored (macOS, Windows).

A key names its layout (`schema`): 1, before keys had a tag; 2, with `tag`, eight hex digits of
the export's digest that begin every row id of its sheets (`3fa2c10b-r1-0007`), so that a sheet
is known by the annotation it belongs to. A key of schema 1 reads the row ids of its own time
(`r1-0007`), which name no annotation; a schema this version does not know is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harness.analysis.scores import definition_hash
from harness.errors import InputError
from harness.fields import FieldError, check_type, from_table
from harness.input_files import json_object
from harness.prompts.sources import FieldMap, PromptSource

KEY_SCHEMA = 2  # the layout `annotate export` writes
_SCHEMAS = (1, KEY_SCHEMA)  # the layouts `annotate import` reads; 1: no tag
RATER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.]*")
_TAG = re.compile(r"[0-9a-f]{8}")
_ROW_ID = re.compile(r"(?:([0-9a-f]{8})-)?([A-Za-z0-9][A-Za-z0-9_.]*)-([0-9]+)")
_Note = Callable[[str, str], None]  # (field, what is wrong with it)


@dataclass(frozen=True)
class AnnotationKey:
    """An export's unblinding key, as `annotate export` wrote it."""

    path: Path
    name: str
    prompts: PromptSource
    labels: tuple[str, ...]
    raters: tuple[str, ...]
    scorer: str | None
    items: dict[str, dict[str, Any]]
    tag: str | None  # what begins every row id of its sheets; None: schema 1; "": unreadable

    @property
    def definition(self) -> str:
        """The definition hash of every rater's scores from this export."""
        return definition_hash({"type": "human", "annotation": self.name, "labels": self.labels})


def export_tag(body: Any) -> str:
    """The tag of an export: eight hex digits of its key's contents (name, time, items, orders),
    so that two exports' sheets never share a row id."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:8]


def row_id(tag: str | None, rater: str, item: str) -> str:
    """A sheet row's id: the export's tag (none for a key of schema 1), the rater, the item."""
    return f"{rater}-{item}" if tag is None else f"{tag}-{rater}-{item}"


def parse_row_id(text: str) -> tuple[str | None, str, str] | None:
    """A row id's tag (None when it has none), rater and item; None when it is not a row id."""
    found = _ROW_ID.fullmatch(text)
    return None if found is None else (found[1], found[2], found[3])


def one_label(labels: Sequence[str]) -> tuple[str, str] | None:
    """The first two labels (or rater names) the import would read as one (equal ignoring case
    and surrounding spaces), or None."""
    seen: dict[str, str] = {}
    for label in labels:
        folded = label.strip().casefold()
        if folded in seen:
            return seen[folded], label
        seen[folded] = label
    return None


def load_key(path: Path, problems: list[str]) -> AnnotationKey:
    """The key at `path`, each problem noted in `problems` (one line each); InputError when it
    is missing or not a JSON object at all."""
    missing = "no such annotation key (export first, or pass --name)"
    body = json_object(path, "an annotation key", missing)
    schema = _schema(path, body)

    def note(field: str, message: str) -> None:
        problems.append(f"{path}: {field}: {message}")

    for field in ("labels", "raters", "items"):  # an import of nothing is no import
        if isinstance(body.get(field), list | dict) and not body[field]:
            note(field, "empty")
    return AnnotationKey(
        path,
        _part(body, "name", str, "", note),
        _prompts(body.get("prompts"), note),
        _labels(_part(body, "labels", tuple[str, ...], (), note), note),
        _raters(_part(body, "raters", tuple[str, ...], (), note), note),
        _part(body, "scorer", str | None, None, note, required=False),
        _items(_part(body, "items", dict, {}, note), note),
        _tag(body, schema, note),
    )


def _schema(path: Path, body: dict[str, Any]) -> int:
    """The key's layout; InputError when it is missing or not one this version reads (the rest
    of a key of another layout cannot be read as fields of this one)."""
    if "schema" not in body:
        raise InputError(f"{path}: schema: missing (every key `annotate export` wrote has one)")
    schema = body["schema"]
    if type(schema) is not int or schema not in _SCHEMAS:
        known = " or ".join(map(str, _SCHEMAS))
        shown = orjson.dumps(schema).decode()[:40]
        raise InputError(
            f"{path}: schema: {shown} is not a key layout this version of harness reads ({known})"
        )
    return schema


def _tag(body: dict[str, Any], schema: int, note: _Note) -> str | None:
    """The tag of the key's row ids; None for a key of schema 1 (its row ids have none)."""
    if schema == 1:
        if "tag" in body:
            note("tag", "a key of schema 1 has no tag")
        return None
    tag: str = _part(body, "tag", str, "", note)
    if tag and not _TAG.fullmatch(tag):
        note("tag", f"{tag!r} is not 8 lowercase hex digits")
        return ""
    return tag


def _part(
    body: dict[str, Any], name: str, hint: Any, empty: Any, note: _Note, *, required: bool = True
) -> Any:
    """`body[name]` checked against `hint`; `empty` (and a problem noted) when it is not so."""
    if name not in body:
        if required:
            note(name, "missing")
        return empty
    try:
        return check_type(body[name], hint, name)
    except FieldError as exc:
        note(name, exc.message)
        return empty


def _labels(labels: tuple[str, ...], note: _Note) -> tuple[str, ...]:
    if any(not label.strip() for label in labels):
        note("labels", "a label is empty")
    same = one_label(labels)
    if same is not None:
        note("labels", f"{same[0]!r} and {same[1]!r} are one label to the import (it ignores case)")
    return labels


def _raters(raters: tuple[str, ...], note: _Note) -> tuple[str, ...]:
    for index, rater in enumerate(raters):
        if not RATER_NAME.fullmatch(rater):
            note(f"raters[{index}]", f"{rater!r}: use letters, digits, '_' or '.'")
    same = one_label(raters)
    if len(set(raters)) < len(raters):
        note("raters", "a rater is named twice")
    elif same is not None:
        note("raters", f"{same[0]!r} and {same[1]!r} differ only in case (their sheets would be "
                       "one file where case is ignored)")  # fmt: skip
    return raters


def _items(items: dict[str, Any], note: _Note) -> dict[str, dict[str, Any]]:
    """Each item as it is; every item whose answer key or answer digest is missing or wrong
    noted (they are what the import stores a label under)."""
    for item, entry in items.items():
        if not isinstance(entry, dict):
            note(f"item {item}", "expected an object")
            continue
        for field in ("answer_key", "answer"):
            if field not in entry:
                note(f"item {item}", f"{field} is missing")
            elif not isinstance(entry[field], str) or not entry[field]:
                note(f"item {item}", f"{field} is not a non-empty string")
        digest = entry.get("answer")
        if isinstance(digest, str) and digest and not is_digest(digest):
            note(f"item {item}", f"answer {digest!r} is not 16 hex digits")
    return {item: entry if isinstance(entry, dict) else {} for item, entry in items.items()}


def is_digest(text: Any) -> bool:
    """Whether `text` is an answer's digest: 16 hex digits."""
    return isinstance(text, str) and len(text) == 16 and all(c in string.hexdigits for c in text)


def _prompts(described: Any, note: _Note) -> PromptSource:
    """Where the prompts shown were read from; an empty source (and a problem) when the key's
    description is not one."""
    if described is None:
        note("prompts", "missing")
        return PromptSource("")
    try:
        if not isinstance(described, dict):
            raise FieldError("prompts", "expected an object")
        fields = from_table(FieldMap, described.get("fields", {}), "prompts.fields")
        head = {k: v for k, v in described.items() if k != "fields"}
        return dataclasses.replace(from_table(PromptSource, head, "prompts"), fields=fields)
    except FieldError as exc:
        note(exc.path, exc.message)
        return PromptSource("")
