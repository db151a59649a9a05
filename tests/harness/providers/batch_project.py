"""A project whose models run in batch mode against the loopback batch servers, for the batch tests
(in-process and killed processes alike): one `Kind` per provider says how its wire requests name
their prompt and temperature, so a test can tell which job each submitted request was."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import write_config
from tests.harness.providers.batch_servers import AnthropicBatches, GeminiBatches, _Backend
from tests.harness.providers.servers import Loopback, Seen
from tests.harness.providers.test_anthropic import messages_api
from tests.harness.providers.test_gemini import generate_content

KEY = "batch-key-0123456789-TESTONLY"


@dataclass(frozen=True)
class Kind:
    """One provider's batch set-up: its backend, live endpoint, model and request shape."""

    provider: str
    model: str
    backend: Callable[..., _Backend]
    live: Callable[[str, Seen], Any]
    prompt_of: Callable[[dict[str, Any]], str]
    temperature_of: Callable[[dict[str, Any]], float]


KINDS = {
    "anthropic": Kind(
        "anthropic",
        "claude-sonnet-4-6",
        AnthropicBatches,
        messages_api,
        lambda params: params["messages"][-1]["content"],
        lambda params: params["temperature"],
    ),
    "gemini": Kind(
        "gemini",
        "gemini-2.5-flash",
        GeminiBatches,
        generate_content,
        lambda request: request["contents"][-1]["parts"][0]["text"],
        lambda request: request["generationConfig"]["temperature"],
    ),
}


def number_of(prompt: str) -> int:
    """The prompt's number, from tests.conftest.write_prompts' `Does thing number {i} exist?`."""
    return int(prompt.split("number ")[1].split()[0])


def server(kind: Kind, backend: _Backend) -> Loopback:
    """A loopback server with the batch API and, for everything else, the live endpoint."""
    return Loopback(kind.live, routes=backend.routes)


def model_table(
    kind: Kind,
    base_url: str,
    *,
    name: str = "m",
    mode: str = "batch",
    temperatures: str = "[0.0, 0.7]",
    batch: str = "max_requests = 300\npoll_interval = 0.02\nmax_poll_interval = 0.1",
) -> str:
    return f"""
[[models]]
name = "{name}"
provider = "{kind.provider}"
model = "{kind.model}"
mode = "{mode}"
temperatures = {temperatures}
max_tokens = 64
[models.batch]
{batch}
[models.options]
base_url = "{base_url}"
api_key_env = "BATCH_TEST_KEY"
"""


def project(tmp_path: Path, body: str, prompts: int, head: str = "") -> Path:
    """A config of `prompts` prompts and the [[models]] of `body`; `head` goes on top."""
    retry = "\n[retry]\nmax_attempts = 3\ninitial_wait = 0.02\nmax_wait = 0.05\n"
    return write_config(tmp_path, f"{head}grace_seconds = 1.0\n{retry}{body}", prompts=prompts)


def sent_per_job(kind: Kind, backend: _Backend) -> Counter[tuple[int, float]]:
    """How many times the server was sent each (prompt number, temperature), over all batches."""
    return Counter(
        (number_of(kind.prompt_of(request)), kind.temperature_of(request))
        for _, _, request in backend.submitted
    )
