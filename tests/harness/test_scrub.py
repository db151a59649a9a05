"""Secrets: which values count, which forms of them are replaced, and the stream that prints."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import orjson
from rich.console import Console
from rich.table import Table

from harness.scrub import SECRETS, ScrubbedStream, Secrets, named_secrets, referenced_secrets

KEY = "sk-live/Ab+Cd=ef-TESTONLY"


def test_a_key_is_replaced_as_written_url_encoded_and_json_escaped():
    secrets = Secrets()
    secrets.add(KEY, 'pass"word\\1')
    text = f"Bearer {KEY} then https://host/v1?key=sk-live%2FAb%2BCd%3Def-TESTONLY"
    assert secrets.scrub(text) == "Bearer [redacted] then https://host/v1?key=[redacted]"
    line = orjson.dumps({"error": f'bad key {KEY}, password pass"word\\1'})
    assert secrets.scrub_bytes(line) == b'{"error":"bad key [redacted], password [redacted]"}'


def test_a_short_value_is_replaced_only_after_bearer():
    secrets = Secrets()
    secrets.add("EMPTY", "")
    text = "EMPTY answers are EMPTY; the header was Authorization: Bearer EMPTY"
    assert secrets.scrub(text) == (
        "EMPTY answers are EMPTY; the header was Authorization: Bearer [redacted]"
    )


def test_a_secret_containing_another_is_replaced_whole():
    secrets = Secrets()
    secrets.add("sk-abcdefgh", "sk-abcdefgh-longer")
    assert secrets.scrub("x sk-abcdefgh-longer y") == "x [redacted] y"


@dataclass(frozen=True)
class Options:
    api_key_env: str = "TEST_SCRUB_KEY"
    api_key: str = "sk-given-in-config"
    hf_token: str = ""
    max_tokens: int = 5
    base_url: str = "https://host"
    headers: dict = field(default_factory=lambda: {"Authorization": "Bearer sk-in-a-header"})


def test_named_secrets_of_options_with_their_environment():
    environ = {"TEST_SCRUB_KEY": "sk-from-environment"}
    found = named_secrets(Options(), environ)
    assert found == {"sk-given-in-config", "sk-from-environment", "Bearer sk-in-a-header"}


def test_referenced_secrets_are_env_variables_with_secret_names():
    raw = {"models": [{"options": {"base_url": "https://h/?key=${MY_KEY}&u=${MY_USER}"}}]}
    environ = {"MY_KEY": "sk-referenced", "MY_USER": "alice-the-user"}
    assert referenced_secrets(raw, environ) == {"sk-referenced"}


def test_the_console_stream_scrubs_tables():
    SECRETS.add("sk-console-table-TESTONLY")
    out = io.StringIO()
    table = Table("detail")
    table.add_row("the key is sk-console-table-TESTONLY")
    Console(file=ScrubbedStream(out), width=100).print(table)
    assert "the key is [redacted]" in out.getvalue() and "TESTONLY" not in out.getvalue()
