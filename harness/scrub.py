"""Secrets: every secret value the process knows, scrubbed from all it writes or prints.

A run's secrets are the values of its providers' secret-named options (`api_key`, `hf_token`,
`client_secret`: see `SECRET_NAME`), the environment variables its `*_env` options name
(`api_key_env`), and what its config's `RunConfig.secrets` holds: every value the environment gave
to a provider's options (`base_url = "https://host/${PREFIX}/v1?key=${K}"`, whatever the
variables are called: see `substituted_secrets`), the environment variables with secret-looking
names it refers to as `${VAR}`, and the passwords and secret-named query values written into its
URLs (`url_secrets`). `prepare` and `doctor` add them to `SECRETS` as soon as the options are read,
before anything is written or printed. Every sink then scrubs them: every ledger line as it is
serialized, before its checksum is taken (`harness.ledger.lines.sealed`), the `harness` logger's
records, everything the console prints and the CLI's error lines. A secret is replaced as written,
URL-encoded and JSON-escaped, so its `Bearer <key>` and `?key=<key>` forms go with it.

Whatever its origin, a URL that is recorded or shown (the run line's config, an error, the report)
also has its userinfo and its query values replaced (`redact_url`): a key typed into the config's
URL by hand is no more shown than one the environment gave.

One registry for the process rather than one handed to each sink: a key known anywhere must not
be printed anywhere, and no sink can be given the wrong set or none.

Values shorter than `MIN_LENGTH` (`EMPTY`, `none`, a local server's dummy key) are not real API
keys, and replacing them wherever they appear would mangle answers and JSON alike; only their
`Bearer <value>` form, the one a server echoes, is scrubbed (URL-encoded too: `Bearer%20<value>`,
`Bearer+<value>`). A query value short or unknown is still replaced in a URL an error quotes,
`scheme://` or a bare `/path?key=...`: see `redact_urls`.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TextIO, cast
from urllib.parse import quote, quote_plus, unquote, urlsplit

import orjson

REDACTED = "[redacted]"
MIN_LENGTH = 8
# Names that hold secrets: `api_key`, `hf_token`, `client_secret`, `authorization`, ... (but not
# `max_tokens` or `tokens_per_minute`).
SECRET_NAME = re.compile(r"(key|token|secret|password|passwd|authorization|credentials?)$", re.I)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
# A URL's parts: scheme, authority (userinfo@host:port), path, query, fragment. Hand-made rather
# than urlsplit, which refuses what it cannot parse (`https://[redacted]@host`) and rewrites the
# rest; a text without `scheme://` is read from its path on (`localhost:9/v1?key=...`).
_URL_PARTS = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)?(?P<authority>[^/?#]*)(?P<path>[^?#]*)"
    r"(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?",
    re.S,
)
_URL_DELIMITERS = re.compile(r"[/?&=#@:;]")
# URLs in free text (an error message, a log line): `scheme://` up to a space or a quote, or a
# path with a query and no scheme (`/v1/chat/completions?key=...`, a server echoing its request).
_URL_IN_TEXT = re.compile(
    r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>]+|(?<![\w/])/[^\s\"'<>?#]*\?[^\s\"'<>]+"
)


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
    """(form, replacement) for `value` as written, URL-encoded (`%20` or `+` for a space) and
    JSON-escaped; a short value only in its `Bearer <value>` form."""
    if len(value) < MIN_LENGTH:
        bearer = f"Bearer {value}"
        return list({(spell(bearer), spell("Bearer ") + REDACTED) for spell in _SPELLINGS})
    return [(form, REDACTED) for form in {spell(value) for spell in _SPELLINGS}]


def _json_escaped(text: str) -> str:
    return orjson.dumps(text).decode()[1:-1]


_SPELLINGS: tuple[Callable[[str], str], ...] = (
    str,
    lambda text: quote(text, safe=""),
    quote,  # `/` kept
    lambda text: quote_plus(text, safe=""),
    _json_escaped,
)


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


def url_secrets(table: Any) -> set[str]:
    """What URLs anywhere in a config table hold in clear: passwords (`https://user:pass@host`, as
    written, decoded, and as the `Basic` header a client makes of them) and the values of
    secret-named query parameters (`?key=...`, `&access_token=...`)."""
    found = set()
    for text in _strings(table):
        if "://" not in text:
            continue
        try:
            parts = urlsplit(text)
            username, password = parts.username or "", parts.password
        except ValueError:
            continue
        if password:
            credentials = f"{unquote(username)}:{unquote(password)}".encode()
            found |= {password, unquote(password), base64.b64encode(credentials).decode()}
        for name, _, value in (pair.partition("=") for pair in parts.query.split("&")):
            if value and SECRET_NAME.search(unquote(name)):
                found |= {value, unquote(value)}
    return found


def substituted_secrets(text: str, spans: Iterable[tuple[int, int]]) -> set[str]:
    """The secret parts of the values the environment gave to `text` (an option sent to a
    provider), each at `text[start:end]` for a span. All of a value is secret except, in a URL,
    the characters of its scheme, host and port: where the server is, which the run line records
    (`${SERVER}/v1` stays readable; `https://u:${PASS}@host/${PREFIX}/v1?key=${K}` does not).
    A piece that holds a URL's parts (`/v1?sig=S&x=1`) counts whole and part by part, so that a
    server echoing one part (`S`) is scrubbed too."""
    public = _url_origin(text)
    found = set()
    for start, end in spans:
        piece: list[str] = []
        for index in range(start, end + 1):
            if index < end and index not in public:
                piece.append(text[index])
            elif piece:
                whole = "".join(piece)
                parts = _URL_DELIMITERS.split(whole)
                found |= {whole, *(part for part in parts if len(part) >= MIN_LENGTH)}
                piece = []
    return found


def _url_origin(text: str) -> set[int]:
    """The indices of `text`'s scheme (`https://`), host and port when it is a URL; else none."""
    parts = _URL_PARTS.match(text)
    if parts is None or parts["scheme"] is None:
        return set()
    host_start = parts.start("authority") + parts["authority"].rfind("@") + 1
    return set(range(parts.end("scheme"))) | set(range(host_start, parts.end("authority")))


def redact_url(url: str) -> str:
    """`url` with its userinfo and the values of its query and fragment replaced, their names
    kept: `https://[redacted]@host/v1?key=[redacted]`."""
    parts = _URL_PARTS.match(url)
    assert parts is not None  # every part of the pattern may be empty
    authority = parts["authority"]
    if "@" in authority:
        authority = f"{REDACTED}@{authority.rpartition('@')[2]}"
    redacted = f"{parts['scheme'] or ''}{authority}{parts['path']}"
    if parts["query"] is not None:
        redacted += "?" + _redact_pairs(parts["query"])
    if parts["fragment"] is not None:
        redacted += "#" + _redact_pairs(parts["fragment"])
    return redacted


def _redact_pairs(text: str) -> str:
    """`a=1&b&c=` as `a=[redacted]&[redacted]&c=`."""
    pairs = []
    for pair in text.split("&"):
        name, equals, value = pair.partition("=")
        pairs.append(f"{name}={REDACTED if value else ''}" if equals else pair and REDACTED)
    return "&".join(pairs)


def redact_urls(text: str) -> str:
    """`text` with every `scheme://...` URL and every `/path?query` in it redacted (see
    `redact_url`)."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group()), text)


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
    """A logging filter: the record's message, arguments merged in, with every secret replaced
    and every URL redacted."""
    record.msg, record.args = redact_urls(SECRETS.scrub(record.getMessage())), None
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


def scrubbed(stream: TextIO) -> TextIO:
    """`stream`, with every secret scrubbed from what is written to it. A ScrubbedStream hands
    every attribute but `write` to the stream it wraps, so it serves where a TextIO is asked for."""
    return cast(TextIO, ScrubbedStream(stream))
