"""Which numeric fields of a declared table (config sections, provider options) lack bounds."""

from __future__ import annotations

import dataclasses
import typing

_NUMERIC = {int, float, int | None, float | None, tuple[float, ...]}


def unbounded_numbers(cls: type) -> list[str]:
    """The int and float fields of a dataclass that lack a min or a max."""
    hints = typing.get_type_hints(cls)
    return [
        f.name
        for f in dataclasses.fields(cls)
        if hints[f.name] in _NUMERIC and not {"min", "max"} <= set(f.metadata)
    ]
