"""Lanes run side by side: a stalled lane never holds up a healthy one."""

from __future__ import annotations

import io

import anyio
from rich.console import Console

from harness.ledger.index import build_index
from harness.run.execute import execute, pending
from harness.run.prepare import prepare
from tests.clock import run_virtual
from tests.conftest import results, write_config

STALLED_AND_HEALTHY = """
[retry]
max_attempts = 2
initial_wait = 1.0
max_wait = 1.0
attempt_timeout = 30.0

[[models]]
name = "stalled"
provider = "simulated"
max_concurrency = 2
[models.options]
timeout_rate = 1.0

[[models]]
name = "healthy"
provider = "simulated"
max_concurrency = 2
[models.options]
latency_ms = 100
"""


def test_a_stalled_lane_does_not_slow_a_healthy_one(tmp_path):
    prepared = prepare(write_config(tmp_path, STALLED_AND_HEALTHY, prompts=10))
    finished = {}
    console = Console(file=io.StringIO())

    async def main() -> int:
        code = await execute(
            prepared,
            command="run",
            wanted=pending(build_index(prepared.ledger_path)),
            console=console,
        )
        finished["at"] = anyio.current_time()
        return code

    assert run_virtual(main) == 1
    records = results(prepared.ledger_path)
    # Every healthy answer is in before the first stalled job gives up (at 61 virtual seconds).
    order = [r["variant"].split("@")[0] for r in records]
    assert order == ["healthy"] * 10 + ["stalled"] * 10
    assert {r["error"]["type"] for r in records if r["error"]} == {"AttemptTimeout"}
    assert finished["at"] >= 10 * 2 * 30 / 2  # the stalled lane: 20 timeouts of 30 s, 2 at a time
