"""`[prompts] template`: a prompt built from a row's fields, in Python's format syntax.

Fields are named (`{question}`), optionally indexed (`{choices[0]}`, `{info[source]}`) and
formatted (`{score:.2f}`); attribute access, conversions (`!r`) and positional fields are refused
when the config loads. A field that is null, or a list or object used whole, is an error naming
the row and the field: a prompt never reads `None` or a Python list's repr.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

_FIELD = re.compile(r"([A-Za-z_][\w-]*)((?:\[[^\[\]]+\])*)")
_INDEX = re.compile(r"\[([^\[\]]+)\]")


class TemplateError(ValueError):
    """A template that cannot be used, or a row it cannot be filled from."""


class PromptTemplate:
    """A parsed template; `fields` are the top-level fields it reads."""

    def __init__(self, text: str) -> None:
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise TemplateError(f"not a valid template: {exc}") from None
        self.pieces: list[tuple[str, str | None, tuple[str, ...], str]] = []
        for literal, name, spec, conversion in parsed:
            if name is None:
                self.pieces.append((literal, None, (), ""))
                continue
            match = _FIELD.fullmatch(name)
            if match is None or conversion is not None or (spec and "{" in spec):
                raise TemplateError(
                    f"{{{name}}}: write a field by name, indexed if need be ({{question}}, "
                    "{choices[0]}); no attributes, conversions or nested fields"
                )
            self.pieces.append(
                (literal, match.group(1), tuple(_INDEX.findall(match.group(2))), spec)
            )
        self.fields = {name for _, name, _, _ in self.pieces if name is not None}
        if not self.fields:
            raise TemplateError("names no field (write {field} for each)")

    def render(self, values: Mapping[str, Any]) -> str:
        """The prompt for one row's fields."""
        parts = []
        for literal, name, indexes, spec in self.pieces:
            parts.append(literal)
            if name is not None:
                parts.append(format(_value(values, name, indexes), spec))
        return "".join(parts)


def _value(values: Mapping[str, Any], name: str, indexes: tuple[str, ...]) -> Any:
    if name not in values:
        found = ", ".join(map(str, values)) or "none"
        raise TemplateError(f"no field {name!r} (fields found: {found})")
    value, shown = values[name], name
    for index in indexes:
        shown += f"[{index}]"
        try:
            value = value[int(index)] if isinstance(value, list) else value[index]
        except (KeyError, IndexError, ValueError, TypeError):
            raise TemplateError(f"{{{shown}}}: no such item") from None
    if value is None:
        raise TemplateError(f"{{{shown}}} is empty (null)")
    if isinstance(value, list | dict):
        kind = "a list" if isinstance(value, list) else "an object"
        raise TemplateError(f"{{{shown}}} is {kind}: index it ({{{shown}[0]}})")
    return value
