"""Secrets: which values count, which forms of them are replaced, and the stream that prints."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import orjson
from rich.console import Console
from rich.table import Table

from harness.config.run_config import load_config
from harness.errors import FatalError
from harness.providers import config_secrets
from harness.run.provenance import redact
from harness.scrub import (
    SECRETS,
    ScrubbedStream,
    Secrets,
    named_secrets,
    redact_url,
    redact_urls,
    referenced_secrets,
    url_secrets,
)

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


def test_a_url_is_shown_without_its_userinfo_and_query_values():
    assert redact_url("https://u:p@host:8/v1/?key=K&api-version=2024&flag&empty=#t=T") == (
        "https://[redacted]@host:8/v1/?key=[redacted]&api-version=[redacted]&[redacted]&empty=#"
        "t=[redacted]"
    )
    assert redact_url("https://[redacted]@host/v1?key=[redacted]") == (
        "https://[redacted]@host/v1?key=[redacted]"  # once redacted, as it was
    )
    assert redact_url("localhost:9/v1beta?key=K") == "localhost:9/v1beta?key=[redacted]"
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    text = "Cannot connect to http://h/v1?sig=S (ssl:default); see https://docs/x?a=1."
    assert redact_urls(text) == (
        "Cannot connect to http://h/v1?sig=[redacted] (ssl:default); see https://docs/x?a=[redacted]"
    )


def test_secrets_typed_into_urls_are_their_passwords_and_secret_named_query_values():
    table = {"a": ["https://alice:pa%2Fss@h/v1?key=K1&api-version=2024-02-01&access_token=T2"]}
    assert url_secrets(table) == {
        "pa%2Fss",
        "pa/ss",
        "YWxpY2U6cGEvc3M=",  # the Basic header a client makes of alice:pa/ss
        "K1",
        "T2",
    }


def test_values_the_environment_gives_provider_options_are_secret_whatever_their_names(tmp_path):
    environ = {
        "SERVER": "http://gpu-node-7:8000",  # where the server is: the run line says it
        "HOST": "gpu-node-8",
        "PASS": "password-from-env",
        "PREFIX": "prefix-from-env",
        "QUERY": "query-from-env",
        "HEADER": "header-from-env",
        "WHOLE": "https://gpu-node-9:443/whole-path/v1?sig=whole-sig",
        "OUT": str(tmp_path / "results"),  # not sent to a provider
        "WEIGHTS": "/scratch/alice/models",  # a local engine's: never leaves the machine
        "REVISION": "0123456789abcdef0123",
        "MODEL": "model-from-env",  # sent, but every record holds it
        "FALLBACK_UNUSED": "",
    }
    config = tmp_path / "run.toml"
    config.write_text(
        """
prompts = "prompts.json"
output = "${OUT}/run"
[[models]]
name = "a"
provider = "openai"
model = "${MODEL}"
[models.options]
base_url = "${SERVER}/v1"
[[models]]
name = "b"
provider = "openai"
[models.options]
base_url = "https://user:${PASS}@${HOST}:8000/${PREFIX}/v1?name=${QUERY}&v=${NOT_SET:-default-value}"
headers = { X-Custom = "${HEADER}" }
[[models]]
name = "local"
provider = "vllm"
[models.options]
path = "${WEIGHTS}/qwen"
revision = "${REVISION}"
[[scorers]]
name = "judge"
type = "judge"
template = "Is {response} right?"
labels = ["yes", "no"]
[scorers.model]
provider = "openai"
[scorers.model.options]
base_url = "${WHOLE}"
"""
    )
    secrets = config_secrets(load_config(config, environ))
    assert secrets == {
        "password-from-env",
        "prefix-from-env",
        "query-from-env",
        "header-from-env",
        "/whole-path/v1?sig=whole-sig",
        "whole-path",  # and its parts, in case a server echoes one alone
        "whole-sig",
        "dXNlcjpwYXNzd29yZC1mcm9tLWVudg==",  # user:password-from-env as a Basic header
    }


def test_the_run_line_config_and_errors_show_urls_redacted():
    table = {
        "options": {"base_url": "localhost:9/v1?sig=S", "api_key": "K", "extra": ["x://h?a=1"]}
    }
    assert redact(table) == {
        "options": {
            "base_url": "localhost:9/v1?sig=[redacted]",
            "api_key": "[redacted]",
            "extra": ["x://h?a=[redacted]"],
        }
    }
    # A URL in free text (a template, a system prompt) is redacted; the text around it is not.
    template = "Mail me@example.org; cite https://x.org/a?title=T as given"
    assert redact({"template": template}) == {
        "template": "Mail me@example.org; cite https://x.org/a?title=[redacted] as given"
    }
    error = FatalError("InvalidURL: http://u:p@h/v1?code=C")
    assert error.as_record()["message"] == "InvalidURL: http://[redacted]@h/v1?code=[redacted]"
