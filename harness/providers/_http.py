"""What every HTTP provider shares: status codes to harness errors, and reading rate-limit headers.

Retryable: 408, 409, 429, 5xx and 529 (overloaded). Everything else 4xx is fatal. The wait a server
asks for comes from `retry-after-ms`, `retry-after` (seconds or an HTTP date), or the earliest of
the reset headers when the server says nothing remains.
"""

from __future__ import annotations

import email.utils
import ipaddress
import os
import time
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlsplit

from harness.api.types import RateLimitState
from harness.errors import FatalError, ProviderError, RateLimited, ServerError
from harness.scrub import redact_url

_RETRYABLE_CLIENT = {408, 409}


def error_for_status(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> ProviderError:
    """The harness error for an HTTP error status, keeping the API's own message."""
    headers = headers or {}
    retry_after = retry_after_seconds(headers)
    if status == 429:
        state = rate_limit_state(headers)
        if retry_after is None and state is not None:
            retry_after = state.wait_seconds()
        return RateLimited(message, status=status, retry_after=retry_after, rate_limit=state)
    if status >= 500 or status in _RETRYABLE_CLIENT:
        return ServerError(message, status=status, retry_after=retry_after)
    return FatalError(message, status=status)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait, from `retry-after-ms` or `retry-after`."""
    millis = _seconds(_get(headers, "retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = _get(headers, "retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# (remaining requests, requests reset, remaining tokens, tokens reset) header names per API family.
_FAMILIES = (
    (
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
    ),
    (
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ),
)


def rate_limit_state(headers: Mapping[str, str]) -> RateLimitState | None:
    """What the server says is left of its limits and when they reset, if it says anything."""
    # One pass over the headers: a lookup per name would scan httpx's header list each time.
    found = {k.lower(): v for k, v in headers.items() if "ratelimit" in k.lower()}
    if not found:
        return None
    for names in _FAMILIES:
        values = [found.get(name) for name in names]
        if any(v is not None for v in values):
            requests, requests_reset, tokens, tokens_reset = values
            return RateLimitState(
                requests_remaining=_int(requests),
                requests_reset_seconds=_reset_seconds(requests_reset),
                tokens_remaining=_int(tokens),
                tokens_reset_seconds=_reset_seconds(tokens_reset),
            )
    return None


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return headers.get(name.title()) if value is None else value


def _seconds(value: str | None) -> float | None:
    """A plain number of seconds (never negative), or None when it is not one."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def _reset_seconds(value: str | None) -> float | None:
    """Seconds until a reset given as an RFC 3339 time, seconds, or a duration like `1m30s`."""
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    if value[:1].isdigit() and ("T" in value or "-" in value[4:5]):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return max(0.0, when.timestamp() - time.time())
    return _duration_seconds(value)


def _duration_seconds(value: str) -> float | None:
    """`6m0s`, `1.5s`, `250ms` (OpenAI's reset format) as seconds."""
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    index = 0
    while index < len(value):
        char = value[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if value.startswith("ms", index) else char
        if unit not in units or not number:
            return None
        total += float(number) * units[unit]
        number = ""
        index += len(unit)
    return None if number else total


def api_key(explicit: str, env_name: str) -> str:
    """The key from the options (already `${ENV}`-expanded) or else from `env_name`."""
    return explicit or os.environ.get(env_name, "")


def setup_problems(
    explicit_key: str, key_env: str, base_url: str, *, keyless: bool = False
) -> list[str]:
    """A missing key (naming the variable to set) and a malformed base URL, if any. `keyless`:
    the provider takes `api_key_env = ""` for a server that needs no key, which a missing key
    against a loopback or private URL most likely means."""
    problems = []
    if key_env and not api_key(explicit_key, key_env):
        problem = f"no API key: set the environment variable {key_env}"
        if keyless and is_private_url(base_url):
            problem += f', or set api_key_env = "" (no key) if {redact_url(base_url)} takes none'
        problems.append(problem)
    if base_url and not _is_http_url(base_url):
        problems.append(f'base_url "{redact_url(base_url)}" is not an http(s) URL')
    return problems


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:  # `http://[not-an-address]/v1`
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def is_private_url(url: str) -> bool:
    """Whether `url` names this machine or a private network (127/8, ::1, 10/8, 172.16/12,
    192.168/16, localhost): most likely a server of one's own."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private
