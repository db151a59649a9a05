r"""Your regular expressions (a rules scorer's `regex`, a refusal scorer's `extra_patterns`, a
judge's `verdict_pattern`), compiled by RE2: searched in time linear in the answer, whatever the
pattern.

Python's `re` backtracks: `(\w+\s?)+!` on a 30-word answer without a `!` would run for longer
than anyone waits, and `score` with it. RE2 (the `google-re2` binding) never backtracks. Its
syntax is Python's less what needs backtracking: lookaround (`(?=`, `(?!`, `(?<=`, `(?<!`),
backreferences (`\1`, `(?P=name)`), possessive and atomic groups, `\Z` (write `\z`). A pattern
that uses them is refused when the config is loaded, naming its key: never run on `re` under a
time limit, which would label the same answer differently on a busier machine. In RE2, `\w`,
`\d`, `\s` and `\b` are ASCII; `\pL` is a letter of any script (and a rule's `keywords` keep
their word boundaries in every script).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol

import re2

__all__ = ["Match", "Pattern", "PatternError", "compile_user_pattern"]

# Why RE2 says no, in the words of Python's syntax (its own message follows).
_HINTS = {
    "invalid perl operator: (?=": "RE2 has no lookahead",
    "invalid perl operator: (?!": "RE2 has no lookahead",
    "invalid perl operator: (?<=": "RE2 has no lookbehind",
    "invalid perl operator: (?<!": "RE2 has no lookbehind",
    "invalid perl operator: (?P": "RE2 has no backreferences",
    "invalid perl operator: (?x": "RE2 has no verbose mode",
    "invalid perl operator: (?>": "RE2 has no atomic groups",
    "invalid escape sequence: \\Z": "write \\z for the end of the text",
    "invalid escape sequence: \\u": "write \\x{00e9} for a code point",
    "bad repetition operator: ++": "RE2 has no possessive quantifiers",
    "bad repetition operator: *+": "RE2 has no possessive quantifiers",
    "bad repetition operator: ?+": "RE2 has no possessive quantifiers",
}

# RE2's word for a backreference (`\1` to `\9`; `\12` is octal to it).
_BACKREFERENCE = re.compile(r"invalid escape sequence: \\[1-9]")


class Match(Protocol):
    """What a search finds (RE2's matches and `re`'s alike)."""

    def group(self, index: int, /) -> str | None: ...
    def start(self) -> int: ...
    def end(self) -> int: ...


class Pattern(Protocol):
    """A compiled pattern (RE2's or `re`'s): the calls the scorers make."""

    @property
    def groups(self) -> int: ...
    def search(self, text: str, pos: int = ..., /) -> Match | None: ...
    def finditer(self, text: str, /) -> Iterator[Match]: ...


class PatternError(ValueError):
    """A pattern RE2 does not compile; the message says why, in one line."""


def compile_user_pattern(pattern: str, *, ignore_case: bool = False) -> Pattern:
    """`pattern` compiled by RE2 (linear time); PatternError when RE2 cannot run it."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print the error to stderr as well
    options.case_sensitive = not ignore_case
    try:
        compiled: Pattern = re2.compile(pattern, options)
    except re2.error as exc:
        raise PatternError(_reason(exc)) from None
    return compiled


def _reason(exc: re2.error) -> str:
    """RE2's message as text, with what it means in Python's terms where that helps."""
    raw = exc.args[0] if exc.args else ""
    message = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    hint = next((text for prefix, text in _HINTS.items() if message.startswith(prefix)), None)
    if _BACKREFERENCE.fullmatch(message):  # `\1`, not `\x{110000}`, which ends in a digit too
        hint = "RE2 has no backreferences"
    return f"{message}: {hint} (patterns run on RE2, in linear time)" if hint else message
