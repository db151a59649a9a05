"""Shared HTTP handling: status classification and every way a server says how long to wait."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest

from harness.errors import FatalError, RateLimited, ServerError
from harness.providers._http import error_for_status, rate_limit_state, retry_after_seconds


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, RateLimited),
        (500, ServerError),
        (503, ServerError),
        (529, ServerError),
        (408, ServerError),
        (400, FatalError),
        (401, FatalError),
        (403, FatalError),
        (404, FatalError),
    ],
)
def test_status_codes_map_to_retryable_or_fatal(status, kind):
    error = error_for_status(status, "msg")
    assert type(error) is kind and error.status == status and error.message == "msg"


def test_retry_after_in_seconds_milliseconds_and_http_dates():
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= retry_after_seconds({"Retry-After": later}) <= 30
    assert retry_after_seconds({"retry-after": "soon"}) is None


def test_anthropic_reset_headers_give_the_wait_when_a_limit_is_spent():
    reset = (datetime.now(UTC) + timedelta(seconds=12)).isoformat().replace("+00:00", "Z")
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-tokens-remaining": "5000",
    }
    error = error_for_status(429, "rate_limit_error: slow down", headers)
    assert isinstance(error, RateLimited) and 10 <= error.retry_after <= 12


def test_openai_reset_durations_are_read():
    state = rate_limit_state(
        {
            "x-ratelimit-remaining-requests": "3",
            "x-ratelimit-reset-requests": "1m30s",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "250ms",
        }
    )
    assert state.requests_remaining == 3 and state.requests_reset_seconds == 90
    assert state.tokens_reset_seconds == 0.25 and state.wait_seconds() == 0.25


def test_no_rate_limit_headers_means_no_state():
    assert rate_limit_state({"content-type": "application/json"}) is None


def test_a_429_carries_the_rate_limit_state_of_its_headers():
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6s"}
    error = error_for_status(429, "slow down", headers)
    assert error.retry_after == 6.0
    assert error.rate_limit is not None and error.rate_limit.requests_remaining == 0
