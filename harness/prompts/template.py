"""`[prompts] template`: a prompt built from a row's fields, in Python's format syntax.

Fields are named (`{question}`), optionally indexed (`{choices[0]}`, `{info[source]}`) and
formatted (`{score:.2f}`, a width or precision of at most 10,000); attribute access, conversions
(`!r`), positional fields and malformed or huge format specs are refused when the config loads,
every one of them in one error. A field that is null, or a list or object used whole, is an error
naming the row and the field: a prompt never reads `None` or a Python list's repr.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

_FIELD = re.compile(r"([A-Za-z_][\w-]*)((?:\[[^\[\]]+\])*)")
_INDEX = re.compile(r"\[([^\[\]]+)\]")
# Python's format spec: [[fill]align][sign][z][#][0][width][grouping][.precision][type]
_SPEC = re.compile(
    r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d+))?[bcdeEfFgGnosxX%]?",
    re.DOTALL,
)
# The widest padding and the most digits a field may ask for: `{question:>100000000000}` would
# build a string of 100 GB.
MOST_WIDTH = 10_000


class TemplateError(ValueError):
    """A template that cannot be used, or a row it cannot be filled from."""


class PromptTemplate:
    """A parsed template; `fields` are the top-level fields it reads. Every mistake in it is
    named at once, each placeholder as written."""

    def __init__(self, text: str) -> None:
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise TemplateError(f"not a valid template: {exc}") from None
        self.pieces: list[tuple[str, str | None, tuple[str, ...], str]] = []
        problems: list[str] = []
        for literal, name, given_spec, conversion in parsed:
            spec = given_spec or ""  # None only where `name` is
            if name is None:
                self.pieces.append((literal, None, (), ""))
                continue
            problem = _problem(name, spec, conversion)
            if problem is not None:
                problems.append(problem)
                continue
            match = _FIELD.fullmatch(name)
            assert match is not None  # checked by _problem
            self.pieces.append(
                (literal, match.group(1), tuple(_INDEX.findall(match.group(2))), spec)
            )
        if problems:
            raise TemplateError("; ".join(dict.fromkeys(problems)))
        self.fields = {name for _, name, _, _ in self.pieces if name is not None}
        if not self.fields:
            raise TemplateError("names no field (write {field} for each)")

    def render(self, values: Mapping[str, Any]) -> str:
        """The prompt for one row's fields."""
        parts = []
        for literal, name, indexes, spec in self.pieces:
            parts.append(literal)
            if name is not None:
                value = _value(values, name, indexes)
                try:
                    parts.append(format(value, spec))
                except ValueError as exc:  # `{q:d}` given text, `{n:,s}` given a number
                    raise TemplateError(f"{{{name}:{spec}}}: {exc}") from None
        return "".join(parts)


def _problem(name: str, spec: str, conversion: str | None) -> str | None:
    """What is wrong with one placeholder, or None."""
    written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
    if _FIELD.fullmatch(name) is None or conversion is not None or "{" in spec:
        return (
            f"{written}}}: write a field by name, indexed if need be ({{question}}, "
            "{choices[0]}); no attributes, conversions or nested fields"
        )
    found = _SPEC.fullmatch(spec)
    if found is None:
        return f"{written}}}: not a format spec (such as :>10 or :.2f)"
    for part in ("width", "precision"):
        digits = found.group(part)
        if digits and int(digits) > MOST_WIDTH:
            return f"{written}}}: a {part} over {MOST_WIDTH:,} (would build a huge prompt)"
    return None


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
