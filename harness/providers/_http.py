"""What every HTTP provider shares: status codes to harness errors, reading rate-limit headers,
and the hooks of `HTTPProvider` (where the key comes from, the URL, what is pushback).

Retryable: 408, 409, 429, 5xx and 529 (overloaded). Everything else 4xx is fatal. A 429 and a 529
are pushback: the server asks to slow down. The wait a server asks for comes from
`retry-after-ms`, `retry-after` (seconds or an HTTP date), or the earliest of the reset headers
when the server says nothing remains.
"""

from __future__ import annotations

import email.utils
import ipaddress
import os
import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

import yarl

from harness.api.provider import Provider
from harness.errors import (
    FatalError,
    ProviderError,
    RateLimited,
    RateLimitState,
    RetryableError,
    ServerError,
)
from harness.scrub import REDACTED, redact_url

_RETRYABLE_CLIENT = {408, 409}
# "Overloaded" (Anthropic's, and a gateway's in front of it): every client is asked to slow down,
# as a 429 asks one.
OVERLOADED = 529


class HTTPOptions(Protocol):
    """The options every HTTP provider has: its key (or the variable that holds it) and URL."""

    @property
    def api_key(self) -> str: ...
    @property
    def api_key_env(self) -> str: ...
    @property
    def base_url(self) -> str: ...


class LogprobsOptions(HTTPOptions, Protocol):
    """An HTTP provider's options that ask for `top_logprobs` alternatives per token."""

    @property
    def top_logprobs(self) -> int: ...


class HTTPProvider(Provider):
    """A provider of an HTTP API whose errors are classified by `error_for_status`: where its key
    comes from, its URL, and its pushback (a rate limit or an overloaded server) are read the
    same way for each."""

    @classmethod
    def key_source(cls, options: HTTPOptions) -> str:
        """The key's source: `api_key`, the variable `api_key_env` names, or none."""
        return key_source(options.api_key, options.api_key_env)

    @classmethod
    def base_url(cls, options: HTTPOptions) -> str:
        """`base_url`."""
        return options.base_url

    def pushed_back(self, error: RetryableError) -> bool:
        """A rate limit, or the server overloaded (529)."""
        return super().pushed_back(error) or error.status == OVERLOADED


class LogprobsHTTPProvider(HTTPProvider):
    """An HTTP provider whose `top_logprobs` option is the logprobs it asks for."""

    @classmethod
    def logprobs_asked(cls, options: LogprobsOptions) -> int:
        """`top_logprobs`."""
        return options.top_logprobs


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


def key_source(explicit: str, env_name: str) -> str:
    """Where the key comes from, for `doctor`: the options, `env_name`, or nowhere."""
    if explicit:
        return "key given in the config"
    return f"key found in ${env_name}" if env_name else "no key needed"


def missing_key(
    explicit_key: str, key_env: str, base_url: str, *, keyless: bool = False
) -> list[str]:
    """The line for a key named by `key_env` that is not set (see `setup_problems`), if so."""
    if not key_env or api_key(explicit_key, key_env):
        return []
    problem = f"no API key: set the environment variable {key_env}"
    if keyless and is_private_url(base_url):
        problem += f', or set api_key_env = "" (no key) if {redact_url(base_url)} takes none'
    return [problem]


def setup_problems(
    explicit_key: str,
    key_env: str,
    base_url: str,
    *,
    keyless: bool = False,
    url: str = "",
    userinfo_refused: str = "",
) -> list[str]:
    """A missing key (naming the variable to set), a key no HTTP header can carry, and a base URL
    the provider's HTTP client would refuse on every request, if any. `keyless`: the provider
    takes `api_key_env = ""` for a server that needs no key, which a missing key against a
    loopback or private URL most likely means. `url`: the URL the provider requests, made of
    `base_url` as it makes it (default: `base_url` itself). `userinfo_refused`: why a user name or
    password in `base_url` cannot be sent, when it cannot."""
    problems = missing_key(explicit_key, key_env, base_url, keyless=keyless)
    key = api_key(explicit_key, key_env) if key_env else explicit_key
    if key and not _HEADER_VALUE.fullmatch(key):
        where = f"the environment variable {key_env}" if key_env and not explicit_key else "api_key"
        problems.append(f"the API key in {where} has a character an HTTP header cannot carry")
    if base_url:
        refused = url_problem(url or base_url, userinfo_refused)
        if refused:
            problems.append(f'base_url "{_shown(base_url)}" {refused}')
    return problems


# What a header value may hold: printable ASCII (httpx sends ASCII; aiohttp refuses CR and LF).
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
# No URL holds a space or a control character (yarl drops some silently, httpx refuses them).
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


def url_problem(url: str, userinfo_refused: str = "") -> str | None:
    """Why an HTTP client (httpx, or aiohttp through yarl) would refuse `url` on every request,
    or None. A reason never quotes a part of `url`: a password with an unencoded `/` ends the
    authority early, and the rest of it would be read as the port."""
    try:
        parts = urlsplit(url)
    except ValueError:  # `http://[not-an-address]/v1`
        return "is not an http(s) URL"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "is not an http(s) URL"
    if _UNSAFE.search(url):
        return "holds a space or a control character"
    _, at, hostport = parts.netloc.rpartition("@")
    if not hostport or hostport.startswith(":"):
        return "has no host"
    port = hostport.rpartition("]")[2].partition(":")[2]
    if port and not port.isdigit():
        return (
            "has a port that is not a number (a `/`, `?` or `#` in a user name or password must "
            "be percent-encoded: `%2F`, `%3F`, `%23`)"
        )
    if port and int(port) > 65535:
        return "has a port out of range 0-65535"
    try:
        parsed = yarl.URL(url)
    except ValueError:
        return "cannot be parsed as a URL"
    if at and userinfo_refused:
        return f"holds a user name or password: {userinfo_refused}"
    if at and not _basic_auth_sendable(parsed.user or "", parsed.password or ""):
        return (
            "holds a user name or password aiohttp cannot send (a `:` in the user name, "
            "or a character outside Latin-1)"
        )
    return None


def _basic_auth_sendable(user: str, password: str) -> bool:
    """Whether aiohttp can make the `Basic` header of a URL's userinfo (as `BasicAuth` checks)."""
    try:
        f"{user}:{password}".encode("latin1")
    except UnicodeEncodeError:
        return False
    return ":" not in user


def _shown(url: str) -> str:
    """`url` redacted for an error line. A password with an unencoded `/` or `?` makes the last
    `@` before the query or fragment the end of the userinfo, not the host's first `/`."""
    scheme, sep, rest = url.partition("://")
    head = re.split(r"[?#]", rest, maxsplit=1)[0]
    if sep and "@" in head:
        return redact_url(f"{scheme}://{REDACTED}@{rest[head.rindex('@') + 1 :]}")
    return redact_url(url)


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
