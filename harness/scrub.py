"""Secrets: every secret value the process knows, scrubbed from all it writes or prints.

A run's secrets are the values of its providers' secret-named options (`api_key`, `hf_token`,
`client_secret`: see `SECRET_NAME`), the environment variables its `*_env` options name
(`api_key_env`), and the environment variables with secret-looking names that its config refers
to as `${VAR}` (`base_url = "https://host/v1?key=${GEMINI_KEY}"`). `prepare` and `doctor` add them
to `SECRETS` as soon as the options are read, before anything is written or printed. Every sink
then scrubs them: every ledger line as it is serialized, before its checksum is taken
(`harness.ledger.sealed`), the `harness` logger's records, everything the console prints and the
CLI's error lines. A secret is replaced as written, URL-encoded and JSON-escaped, so its
`Bearer <key>` and `?key=<key>` forms go with it.

One registry for the process rather than one handed to each sink: a key known anywhere must not
be printed anywhere, and no sink can be given the wrong set or none.

Values shorter than `MIN_LENGTH` (`EMPTY`, `none`, a local server's dummy key) are not real API
keys, and replacing them wherever they appear would mangle answers and JSON alike; only their
`Bearer <value>` form, the one a server echoes, is scrubbed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any, TextIO
from urllib.parse import quote, unquote, urlsplit

import orjson

REDACTED = "[redacted]"
MIN_LENGTH = 8
# Names that hold secrets: `api_key`, `hf_token`, `client_secret`, `authorization`, ... (but not
# `max_tokens` or `tokens_per_minute`).
SECRET_NAME = re.compile(r"(key|token|secret|password|passwd|authorization|credentials?)$", re.I)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


class Secrets:
    """A set of secret values and the text that replaces each of their forms."""

    __slots__ = ("_bytes", "_known", "_text")

    def __init__(self) -> None:
        self._known: set[str] = set()
        # (form, replacement) for every form of every secret, longest first, so that a secret
        # that contains another is replaced whole; `_bytes` is the same list encoded.
        self._text: list[tuple[str, str]] = []
        self._bytes: list[tuple[bytes, bytes]] = []

    def add(self, *values: str) -> None:
        """Remember secret values; empty ones and ones already known are ignored."""
        new = {value for value in values if value and value not in self._known}
        if not new:
            return
        self._known |= new
        self._text += [pair for value in new for pair in _forms(value)]
        self._text.sort(key=lambda pair: -len(pair[0]))
        self._bytes = [(form.encode(), replacement.encode()) for form, replacement in self._text]

    def scrub(self, text: str) -> str:
        """`text` with every known secret replaced."""
        for form, replacement in self._text:
            if form in text:
                text = text.replace(form, replacement)
        return text

    def scrub_bytes(self, data: bytes) -> bytes:
        """`data` (UTF-8) with every known secret replaced; a search per form when none is there."""
        for form, replacement in self._bytes:
            if form in data:
                data = data.replace(form, replacement)
        return data


def _forms(value: str) -> list[tuple[str, str]]:
    if len(value) < MIN_LENGTH:
        return [(f"Bearer {value}", f"Bearer {REDACTED}")]
    escaped = orjson.dumps(value).decode()[1:-1]
    return [(form, REDACTED) for form in {value, quote(value, safe=""), escaped}]


SECRETS = Secrets()


def named_secrets(value: Any, environ: Mapping[str, str] = os.environ) -> set[str]:
    """Secrets an options dataclass or table holds, nested ones included: the values of its
    secret-named keys, and of the environment variables its `*_env` keys name."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    found: set[str] = set()
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, str):
                if SECRET_NAME.search(key) and item:
                    found.add(item)
                elif key.endswith("_env") and item in environ:
                    found.add(environ[item])
            else:
                found |= named_secrets(item, environ)
    elif isinstance(value, list | tuple):
        for item in value:
            found |= named_secrets(item, environ)
    return found


def url_passwords(table: Any) -> set[str]:
    """Passwords written into URLs anywhere in a config table (`https://user:pass@host/v1`)."""
    found = set()
    for text in _strings(table):
        if "://" in text and "@" in text:
            try:
                password = urlsplit(text).password
            except ValueError:
                continue
            if password:
                found.add(unquote(password))
                found.add(password)
    return found


def referenced_secrets(raw: Any, environ: Mapping[str, str] = os.environ) -> set[str]:
    """Values of the environment variables with secret-looking names that a config's strings
    refer to as `${VAR}`."""
    return {
        environ[name]
        for text in _strings(raw)
        for name in _ENV_REF.findall(text)
        if SECRET_NAME.search(name) and name in environ
    }


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping | list):
        for item in value.values() if isinstance(value, Mapping) else value:
            yield from _strings(item)


def excerpt(text: str, limit: int) -> str:
    """At most `limit` characters of `text`, scrubbed before it is cut: a secret cut in half would
    no longer match, and its first part would leak."""
    return SECRETS.scrub(text)[:limit]


def scrub_log_record(record: logging.LogRecord) -> bool:
    """A logging filter: the record's message, arguments merged in, with every secret replaced."""
    record.msg, record.args = SECRETS.scrub(record.getMessage()), None
    return True


class ScrubbedStream:
    """A text stream that writes everything scrubbed to the stream it wraps."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        """Write `text` with every secret replaced."""
        return self._stream.write(SECRETS.scrub(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
