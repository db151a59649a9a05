"""The record: one ledger line per finished attempt series, success or failure.

Field order is part of the format: `key`, `status` and `prompt_hash` come first, so that the
resume index can read a success from the head of its line (see `harness.ledger.index.build_index`).

Schema 2 (schema 1 had no `prompt_hash` and no `attempt_errors`, and seeded sample i of every
prompt with seed + i): `prompt_hash` is the content hash of the prompt the answer was made from;
`attempt_errors` lists the error of every failed attempt before the last one, oldest first.

`mode` ("live" or "batch") and `batch_id` (the provider's id of the batch that carried the job,
null when live) come last: they were added within schema 2, so a line without them is a live one,
and the head that the resume index reads is unchanged. A batch record's `elapsed_seconds` is its
batch's processing time at the provider, not a request's latency. `adapter`, added after them,
names the LoRA adapter that answered (see harness.config.adapters): null, or missing on an older
line, when the model itself did.

`RecordLine` is the shape of a result line as every reader takes it (see `harness.ledger.lines`):
what a line must hold to be read at all, whoever wrote it (an older harness, a buggy one, a hand
with a recomputed checksum). A line of another shape is skipped and counted like a damaged one.

The run path builds a `Record` from a finished job (`harness.run.records`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Required, TypedDict

import msgspec

from harness.api.types import MAX_COUNT, TokenLogprob

SCHEMA = 2
Status = Literal["ok", "error"]
Mode = Literal["live", "batch"]


@dataclass(frozen=True, slots=True)
class Record:
    """One result line of the ledger (schema 2)."""

    key: str
    status: Status
    prompt_hash: str
    schema: int
    run_id: str
    variant: str
    provider: str
    model: str
    prompt_id: str
    sample: int
    full_response: str | None
    finish_reason: str | None
    finish_detail: str | None
    tokens: dict[str, int] | None
    cost_usd: float | None
    token_logprobs: tuple[TokenLogprob, ...] | None
    sampling_params: dict[str, Any]
    timestamp: str
    elapsed_seconds: float
    retry_count: int
    error: dict[str, Any] | None
    attempt_errors: list[dict[str, Any]]
    prompt_category: str
    is_synthetic_probe: bool
    metadata: dict[str, Any]
    mode: Mode
    batch_id: str | None
    adapter: str | None


def utc_timestamp() -> str:
    """Now, as ISO-8601 UTC with milliseconds: `2025-11-12T10:01:23.412Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# The shape of a result line (see the module docstring): every field of `Record`, with the types a
# reader may take its value to have, down to each token logprob. msgspec checks a line against it
# as it parses it (no slower than parsing alone: a Python check of each value cost as much again
# as the parse), and leaves out fields it does not name (the checksum, a later schema's fields).
# Only the first five fields are required (a line written before the others existed lacks
# them); `bool` is never a number. Counts fit the report's 32-bit columns, other whole numbers an
# export's 64-bit ones.
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
# A cost in USD or a time in seconds: never negative, never past any a run can have.
Amount = Annotated[float, msgspec.Meta(ge=0, le=1e12)]
Int64 = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
# A value of an object whose fields become an export's columns (`sampling_params`, `metadata`,
# `error`): anything JSON holds; a whole number in 64 bits (nested values are exported as text).
Value = Int64 | float | str | bool | None | list[Any] | dict[str, Any]
# A prompt's metadata is copied from its prompt file as it is: a whole number may be any the
# ledger's writer takes (up to 2**64 - 1: a uint64 hash or row id); an export writes one past
# 64 signed bits as JSON text.
MetadataValue = int | float | str | bool | None | list[Any] | dict[str, Any]


class ErrorLine(TypedDict, total=False):
    """An attempt's error (see harness.errors.ProviderError.as_record)."""

    type: str | None
    message: str | None
    retryable: bool | None
    status: Int64 | None
    retry_after: float | None


class PositionLine(TypedDict, total=False):
    """One generated token's logprobs (see harness.api.types.TokenLogprob)."""

    token: str | None
    logprob: float | None
    top: list[tuple[str | None, float | None]] | None
    token_id: Int64 | None
    top_ids: list[Int64] | None


class RecordLine(TypedDict, total=False):
    """A result line as readers take it (see `Record`)."""

    key: Required[str]
    status: Required[Status]
    prompt_hash: str | None
    schema: Count
    run_id: str
    variant: Required[str]
    provider: str
    model: str
    prompt_id: Required[str]
    sample: Required[Count]
    full_response: str | None
    finish_reason: str | None
    finish_detail: str | None
    tokens: dict[str, Count] | None
    cost_usd: Amount | None
    token_logprobs: list[PositionLine] | None
    sampling_params: dict[str, Value]
    timestamp: str
    elapsed_seconds: Amount
    retry_count: Count
    error: dict[str, Value] | None
    attempt_errors: list[ErrorLine]
    prompt_category: str
    is_synthetic_probe: bool
    metadata: dict[str, MetadataValue]
    mode: Mode
    batch_id: str | None
    adapter: str | None


_DECODER = msgspec.json.Decoder(RecordLine)


def decode_record(line: bytes) -> dict[str, Any]:
    """A result line parsed and checked against `RecordLine`; msgspec.DecodeError (its
    ValidationError too) when it is not JSON or not of that shape."""
    return _DECODER.decode(line)  # type: ignore[return-value]  # a TypedDict, a dict at run time


def as_record(obj: dict[str, Any]) -> dict[str, Any] | None:
    """A line parsed otherwise, checked against `RecordLine` (as `decode_record` reads it), or
    None when it is not of that shape."""
    try:
        return msgspec.convert(obj, RecordLine)  # type: ignore[return-value]  # a TypedDict, a dict at run time
    except msgspec.ValidationError:
        return None
