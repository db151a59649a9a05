"""Typed tables: build a frozen dataclass from a TOML table, checking every key.

One mechanism serves the config sections and every provider's declared options: the dataclass's
annotations say each key's type, `field(metadata={"min": 0, "max": 1})` its bounds, and a default
makes a key optional. A float must be finite (TOML allows `nan` and `inf`) unless its metadata says
`"nonfinite": True`. Errors carry the key path; the caller adds the file.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class FieldError(ValueError):
    """A table's value is wrong; `path` says where, relative to the table's owner."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def from_table(cls: type[T], table: Mapping[str, Any], path: str) -> T:
    """Build `cls` from `table`; unknown keys, missing keys and wrong types are FieldErrors."""
    if not isinstance(table, Mapping):
        raise FieldError(path, f"expected a table, got {_describe(table)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = [key for key in table if key not in fields]
    if unknown:
        known = ", ".join(fields)
        raise FieldError(_join(path, unknown[0]), f"unknown key (expected one of: {known})")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key_path = _join(path, name)
        if name not in table:
            if _is_required(field):
                raise FieldError(key_path, "missing required key")
            continue
        value = check_type(table[name], hints[name], key_path)
        _check_bounds(value, field.metadata, key_path)
        values[name] = value
    return cls(**values)


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
        return tuple(check_type(v, item, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise FieldError(path, f"expected a table, got {_describe(value)}")
        return dict(value)
    raise TypeError(f"unsupported field type {hint!r} at {path}")  # a bug in a dataclass


def _check_bounds(value: Any, metadata: Mapping[str, Any], path: str) -> None:
    if isinstance(value, tuple):
        for index, item in enumerate(value):
            _check_number(item, metadata, f"{path}[{index}]")
    else:
        _check_number(value, metadata, path)
    if metadata.get("nonempty") and not value:
        raise FieldError(path, "must not be empty")


def _check_number(value: Any, metadata: Mapping[str, Any], path: str) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    if not math.isfinite(value) and not metadata.get("nonfinite"):
        raise FieldError(path, f"must be a finite number, got {value}")
    if "min" in metadata and value < metadata["min"]:
        raise FieldError(path, f"must be >= {metadata['min']}, got {value}")
    if "max" in metadata and value > metadata["max"]:
        raise FieldError(path, f"must be <= {metadata['max']}, got {value}")


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


# `field(metadata=OPERATIONAL)` marks an option that changes how or where a request is made but
# never the answer (a key, a timeout, a connection limit). Every other option is answer-defining
# and part of the variant id: a provider that forgets to mark one only starts a new variant.
OPERATIONAL = {"identity": False}


def answer_defining(options: Any) -> dict[str, Any]:
    """The options of a dataclass instance that can change an answer, by name."""
    return {
        f.name: getattr(options, f.name)
        for f in dataclasses.fields(options)
        if f.metadata.get("identity", True)
    }
