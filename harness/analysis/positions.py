"""A batch of answers' token logprobs flattened into parallel lists, built by C-level maps rather
than a Python loop per position: what the uncertainty measures and the Parquet export read.

The ledger's form (see harness.api.types.TokenLogprob) is, per answer, None or a list of positions
`{"token", "logprob", "top": [[token, logprob], ...], "token_id", "top_ids"}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

_FIRST, _SECOND = itemgetter(0), itemgetter(1)


class MalformedLogprobs(ValueError):
    """An answer's `token_logprobs` is not shaped as the ledger writes them; `.index` is its
    position in the batch."""

    def __init__(self, index: int, problem: str) -> None:
        super().__init__(problem)
        self.index = index


@dataclass
class Positions:
    """Every position of every answer of a batch, in order."""

    present: list[bool]  # per answer: whether it has token logprobs at all
    counts: list[int]  # per answer: how many positions
    token: list[Any]  # per position
    logprob: list[Any]
    token_id: list[Any]
    top_ids: list[Any]
    widths: list[int]  # per position: how many alternatives
    top_tokens: list[Any]  # per alternative, position after position
    top_logprobs: list[Any]


def flatten(batch: Sequence[Sequence[dict[str, Any]] | None], *, texts: bool = True) -> Positions:
    """The positions of `batch` (without `texts`: their numbers only, the token, token_id,
    top_tokens and top_ids lists left empty); MalformedLogprobs names the first answer of the
    wrong shape."""
    try:
        return _flatten(batch, texts)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError):
        pass
    for index, answer in enumerate(batch):
        try:
            _flatten([answer], texts)
        except (TypeError, ValueError, AttributeError, KeyError, IndexError):
            raise MalformedLogprobs(index, _shape_problem(answer)) from None
    raise MalformedLogprobs(0, "unreadable")  # every answer reads alone: cannot happen


def _shape_problem(answer: Any) -> str:
    """What is wrong with one answer's token logprobs, in the ledger's terms."""
    if not isinstance(answer, list):
        return f"expected a list of positions, got {type(answer).__name__}"
    for n, position in enumerate(answer):
        if not isinstance(position, dict):
            return f"position {n}: expected an object, got {type(position).__name__}"
        top = position.get("top")
        pairs = isinstance(top, list) and all(isinstance(p, list) and len(p) == 2 for p in top)
        if top is not None and not pairs:
            return f"position {n}: top: expected [token, logprob] pairs, got {top!r:.60}"
    return "not shaped as the ledger writes them"


def _flatten(batch: Sequence[Sequence[dict[str, Any]] | None], texts: bool) -> Positions:
    present = [answer is not None for answer in batch]
    counts = [len(answer) if answer else 0 for answer in batch]
    positions = list(chain.from_iterable(answer for answer in batch if answer))
    get = dict.get
    tops = [top or () for top in map(get, positions, repeat("top"))]
    pairs = list(chain.from_iterable(tops))
    if not set(map(len, pairs)) <= {2}:
        raise ValueError("an alternative is not a [token, logprob] pair")
    return Positions(
        present=present,
        counts=counts,
        token=list(map(get, positions, repeat("token"))) if texts else [],
        logprob=list(map(get, positions, repeat("logprob"))),
        token_id=list(map(get, positions, repeat("token_id"))) if texts else [],
        top_ids=list(map(get, positions, repeat("top_ids"))) if texts else [],
        widths=list(map(len, tops)),
        top_tokens=list(map(_FIRST, pairs)) if texts else [],
        top_logprobs=list(map(_SECOND, pairs)),
    )
