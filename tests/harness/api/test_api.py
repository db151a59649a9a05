"""The value objects a provider returns refuse fields of the wrong type, so that no provider (API,
local engine or simulated) can make an `ok` record of a malformed answer."""

from __future__ import annotations

import math

import pytest

from harness.api.types import Completion, TokenLogprob, Usage
from harness.errors import MalformedResponse, RetryableError


def completion(**fields) -> Completion:
    return Completion(**{"text": "Yes.", "finish_reason": "stop", "usage": Usage(3, 4),
                         "model": "m", **fields})  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"text": ["Yes."]}, "text: expected a string, got list ['Yes.']"),
        ({"text": None}, "text: expected a string, got NoneType"),
        ({"model": 42}, "model: expected a string, got int 42"),
        ({"finish_reason": None}, "finish_reason: expected a string"),
        ({"finish_detail": 3}, "finish_detail: expected a string or null"),
        ({"usage": {"input": 3}}, "usage: expected token counts"),
        ({"token_logprobs": [TokenLogprob("a", -1.0, ())]}, "token_logprobs: expected a list"),
        ({"token_logprobs": ("a",)}, "token_logprobs[0]: expected a position"),
        ({"sampling_sent": "t=0"}, "sampling_sent: expected a mapping or null"),
    ],
)
def test_a_completion_with_a_field_of_the_wrong_type_is_malformed(fields, named):
    with pytest.raises(MalformedResponse) as caught:
        completion(**fields)
    assert named in caught.value.message and isinstance(caught.value, RetryableError)


@pytest.mark.parametrize(
    ("counts", "named"),
    [
        (("3", 4), "tokens.input: expected a whole number from 0 to 2,147,483,647, got str '3'"),
        ((2**31, 4), "tokens.input"),  # more than the ledger's readers take
        ((3, 2**64 - 1), "tokens.output"),
        ((3, -1), "tokens.output"),
        ((3, 4.0), "tokens.output"),
        ((True, 4), "tokens.input"),
        ((3, 4, {"cache_read": None}), "tokens.cache_read"),
        ((3, 4, [("cache_read", 1)]), "tokens: expected a mapping of counts"),
    ],
)
def test_token_counts_are_whole_numbers_or_malformed(counts, named):
    with pytest.raises(MalformedResponse, match=named.replace(".", r"\.").replace("(", r"\(")):
        Usage(*counts)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ((7, -0.1, ()), "token_logprobs: token: expected a string or null"),
        (("a", "-0.1", ()), "token_logprobs: logprob: expected a finite number or null, got str"),
        (("a", math.nan, ()), "logprob: expected a finite number or null, got float nan"),
        (("a", -math.inf, ()), "logprob: expected a finite number or null, got float -inf"),
        (("a", True, ()), "logprob: expected a finite number"),
        (("a", -0.1, [("a", -0.1)]), "top: expected a list of [token, logprob] pairs"),
        (("a", -0.1, (("a", -0.1, 0),)), "top[0]: expected a [token, logprob] pair"),
        (("a", -0.1, (("a", "x"),)), "top[0] logprob: expected a finite number"),
        (("a", -0.1, ((1, -0.1),)), "top[0] token: expected a string or null"),
        (("a", -0.1, (), "5"), "token_id: expected a token id"),
        (("a", -0.1, (("a", -0.1),), 5, (5, 6)), "top_ids: expected 1 ids, one per alternative"),
        (("a", -0.1, (("a", -0.1),), 5, (-5,)), "top_ids[0]: expected a token id"),
    ],
)
def test_a_token_logprob_of_the_wrong_shape_is_malformed(args, named):
    with pytest.raises(MalformedResponse) as caught:
        TokenLogprob(*args)
    assert named in caught.value.message


def test_whole_number_logprobs_are_kept_as_floats_and_missing_ones_as_none():
    entry = TokenLogprob("a", 0, (("a", 0), ("b", -3), (None, None)), 1, (1, 2, 3))
    assert entry.logprob == 0.0 and type(entry.logprob) is float
    assert entry.top == (("a", 0.0), ("b", -3.0), (None, None))
    assert all(type(lp) is float for _, lp in entry.top[:2])
    assert TokenLogprob(None, None, ()).logprob is None


def test_a_value_shown_in_the_message_is_cut_short():
    with pytest.raises(MalformedResponse) as caught:
        completion(text=["word"] * 100)
    assert len(caught.value.message) < 150 and caught.value.message.endswith("...")
