"""Typed tables: build a frozen dataclass from a TOML table, checking every key.

One mechanism serves the config sections and every provider's declared options: the dataclass's
annotations say each key's type, and `option(default, "what it does", min=0, max=1)` (or
`field(metadata=described(...))` for a required key) its one-line description, its bounds and
whether it can change an answer; a default makes a key optional. The descriptions feed
`python -m harness options` and docs/config-reference.md. A float must be finite (TOML allows
`nan` and `inf`) unless its metadata says `"nonfinite": True`.

Errors carry the key path; the caller adds the file. A table is checked whole: every wrong key is
a FieldError of its own, and they come together as one (`FieldError.errors`), so a config with
several mistakes is told all of them at once. A check across keys is a classmethod
`table_problems(values, path) -> list[FieldError]` of the dataclass: it gets the keys that are
right, and runs even when others are wrong.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

T = TypeVar("T")
# An option answer-defining only when it is not at its default (see `described`).
UNLESS_DEFAULT = "unless_default"


class FieldError(ValueError):
    """A table's value is wrong; `path` says where, relative to the table's owner. `errors` is
    every problem it stands for, itself alone unless made by `FieldError.of`; `path` and
    `message` are the first one's."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.errors: tuple[FieldError, ...] = (self,)

    @classmethod
    def of(cls, errors: Sequence[FieldError]) -> FieldError:
        """One error standing for all of `errors` (each may stand for several), one line each."""
        flat = tuple(one for error in errors for one in error.errors)
        if len(flat) == 1:
            return flat[0]
        joined = cls(flat[0].path, flat[0].message)
        joined.args = ("\n".join(str(error) for error in flat),)
        joined.errors = flat
        return joined


def from_table(cls: type[T], table: Mapping[str, Any], path: str) -> T:
    """Build `cls` from `table`; unknown keys, missing keys, wrong types and values out of bounds
    are FieldErrors, all of them raised together (see `FieldError.of`)."""
    values, errors = table_values(cls, table, path)
    if errors:
        raise FieldError.of(errors)
    return cls(**values)


def table_values(
    cls: type[Any], table: object, path: str
) -> tuple[dict[str, Any], list[FieldError]]:
    """The keys of `table` that `cls` declares and that are right, converted (see `check_type`),
    and a FieldError for each one that is not: an unknown key, a missing one, a wrong type, a
    value out of bounds. A caller that goes on checking what depends on a table uses the values
    that are right, so that one mistake is not reported again as another."""
    if not isinstance(table, Mapping):
        return {}, [FieldError(path, f"expected a table, got {_describe(table)}")]
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    known = ", ".join(fields)
    errors = [
        FieldError(_join(path, key), f"unknown key (expected one of: {known})")
        for key in table
        if key not in fields
    ]
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key_path = _join(path, name)
        if name not in table:
            if _is_required(field):
                errors.append(FieldError(key_path, "missing required key"))
            continue
        try:
            value = _typed(table[name], hints[name], field.metadata, key_path)
            _check_bounds(value, field.metadata, key_path)
        except FieldError as exc:
            errors.extend(exc.errors)
            continue
        values[name] = value
    across = getattr(cls, "table_problems", None)  # the optional check across keys
    if across is not None:
        errors += across(values, path)
    return values, errors


def _typed(value: Any, hint: Any, metadata: Mapping[str, Any], path: str) -> Any:
    """`check_type`, its error at the key itself saying what the key's metadata says it
    expects, when it says (`prompts`: "a path or a table")."""
    try:
        return check_type(value, hint, path)
    except FieldError as exc:
        if "expected" in metadata and exc.path == path:
            told = f"expected {metadata['expected']}, got {_describe(value)}"
            raise FieldError(path, told) from None
        raise


def check_type(value: Any, hint: Any, path: str) -> Any:
    """Return `value` converted to `hint` (lists become tuples, ints become floats)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return check_type(value, option, path)
            except FieldError as exc:
                errors.append(exc)
        raise errors[0]
    if hint is Any:
        return value
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value in choices:
            return value
        raise FieldError(
            path, f"expected one of {', '.join(map(repr, choices))}, got {_describe(value)}"
        )
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise FieldError(path, f"expected a number, got {_describe(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise FieldError(path, f"expected an integer, got {_describe(value)}")
    if hint is bool or hint is str:
        if type(value) is hint:
            return value
        raise FieldError(path, f"expected {_NAMES[hint]}, got {_describe(value)}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise FieldError(path, f"expected a list, got {_describe(value)}")
        item = typing.get_args(hint)[0]
        return _each(value, lambda v, where: check_type(v, item, where), path)
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise FieldError(path, f"expected a table, got {_describe(value)}")
        return dict(value)
    raise TypeError(f"unsupported field type {hint!r} at {path}")  # a bug in a dataclass


def _each(items: Sequence[Any], check: Any, path: str) -> tuple[Any, ...]:
    """`check(item, path)` of every item of a list, in order; every item's FieldError at once."""
    checked, errors = [], []
    for index, item in enumerate(items):
        try:
            checked.append(check(item, f"{path}[{index}]"))
        except FieldError as exc:
            errors.append(exc)
    if errors:
        raise FieldError.of(errors)
    return tuple(checked)


def _check_bounds(value: Any, metadata: Mapping[str, Any], path: str) -> None:
    if isinstance(value, tuple):
        _each(value, lambda item, where: _check_number(item, metadata, where), path)
    else:
        _check_number(value, metadata, path)
    if metadata.get("nonempty") and not value:
        raise FieldError(path, "must not be empty")
    pattern = metadata.get("pattern")
    if pattern is not None and isinstance(value, str) and not re.fullmatch(pattern, value):
        raise FieldError(path, f"must match {pattern}, got {_describe(value)}")


def _check_number(value: Any, metadata: Mapping[str, Any], path: str) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    if not math.isfinite(value) and not metadata.get("nonfinite"):
        raise FieldError(path, f"must be a finite number, got {value}")
    if "min" in metadata and value < metadata["min"]:
        raise FieldError(path, f"must be >= {number_text(metadata['min'])}, got {value}")
    if "max" in metadata and value > metadata["max"]:
        raise FieldError(path, f"must be <= {number_text(metadata['max'])}, got {value}")


def number_text(value: float) -> str:
    """A number as the reference and the errors write it: `1_000_000_000`, `0.001`, `2`."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):_}" if abs(value) >= 10_000 else str(int(value))
    return f"{value:g}"


def _is_required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


_NAMES = {bool: "true or false", str: "a string"}


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)


def described(
    description: str,
    *,
    min: float | None = None,
    max: float | None = None,
    nonempty: bool = False,
    nonfinite: bool = False,
    pattern: str | None = None,
    expected: str | None = None,
    answer: bool | Literal["unless_default"] | None = None,
) -> dict[str, Any]:
    """A key's metadata: its one-line description, its bounds (`min`, `max`, `nonempty`,
    `nonfinite` for a float that may be `inf` or `nan`, and `pattern`, a regular expression a
    string matches whole), what a value of the wrong type is told it should be (`expected`:
    "a path or a table"; else the type's name) and `answer`, whether it can change an
    answer. A provider's option is answer-defining unless it says `answer=False` (a key, a
    timeout, a connection limit: how or where a request is made, never what it answers); a config
    key only when it says `answer=True` (those that make up a variant id). An option added to a
    provider whose variants are already recorded says `answer="unless_default"`: answer-defining
    when set to another value, so that the ids recorded before it stay as they were."""
    metadata: dict[str, Any] = {"description": description}
    given = (("min", min), ("max", max), ("pattern", pattern), ("expected", expected))
    metadata.update({k: v for k, v in given if v is not None})
    metadata.update({k: True for k, v in (("nonempty", nonempty), ("nonfinite", nonfinite)) if v})
    if answer is not None:
        metadata["identity"] = answer
    return metadata


def option(default: Any, description: str, **metadata: Any) -> Any:
    """A dataclass field with a default and its metadata (see `described`):
    `timeout: float = option(600.0, "seconds per request", min=0.001, max=86_400, answer=False)`.
    A key without a default, or with a mutable one, says `field(metadata=described(...))`."""
    return dataclasses.field(default=default, metadata=described(description, **metadata))


def description(field: dataclasses.Field[Any]) -> str:
    """A declared key's one-line description ("" when it has none)."""
    return str(field.metadata.get("description", ""))


def answer_defining(options: Any) -> dict[str, Any]:
    """The options of a provider's options (a dataclass instance) that can change an answer,
    by name. An option is answer-defining unless its metadata says `answer=False` (or
    `answer="unless_default"` and it has its default): a provider that forgets to mark one only
    starts a new variant."""
    found = {}
    for f in dataclasses.fields(options):
        identity, value = f.metadata.get("identity", True), getattr(options, f.name)
        if identity is True or (identity == UNLESS_DEFAULT and value != f.default):
            found[f.name] = value
    return found


def checked(errors: list[FieldError], check: Callable[..., T], *args: Any) -> T | None:
    """`check(*args)`, or None with its FieldErrors added to `errors`."""
    try:
        return check(*args)
    except FieldError as exc:
        errors.extend(exc.errors)
        return None
