"""The strings a figure draws: scrubbed of secrets before anything else (a key in a variant's
name must reach neither the SVG nor the PNG, and a key cut in half would no longer match), then
shortened in the middle when long, so that no name squashes a figure (the page's tables have the
names whole); names that shorten alike are told apart by a number."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from harness.scrub import SECRETS

NAME_CHARS = 32  # a name's most characters in a figure: its start and its end (a variant's hash)
_ELLIPSIS = "\u2026"


def shown(text: str, limit: int = NAME_CHARS) -> str:
    """`text` as a figure draws it: scrubbed, and at most `limit` characters (its start, an
    ellipsis, its end)."""
    clean = SECRETS.scrub(text)
    if len(clean) <= limit:
        return clean
    head = (limit - 1) * 2 // 3
    tail = limit - 1 - head
    return f"{clean[:head]}{_ELLIPSIS}{clean[len(clean) - tail :]}"


def shown_names(names: Iterable[str], limit: int = NAME_CHARS) -> dict[str, str]:
    """Each name as a figure draws it (`shown`), those that would read alike numbered
    (` #1`, ` #2`, in the order given)."""
    given = list(dict.fromkeys(names))
    short = {name: shown(name, limit) for name in given}
    alike = Counter(short.values())
    seen: Counter[str] = Counter()
    for name in given:
        text = short[name]
        if alike[text] > 1:
            seen[text] += 1
            short[name] = f"{text} #{seen[text]}"
    return short
