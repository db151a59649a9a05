"""Lanes under pressure: 429s cost only the requests they must, and a failing lane costs its
neighbour nothing."""

from __future__ import annotations

import io
import random

import anyio
from aiohttp import web
from rich.console import Console

from harness.ledger import build_index
from harness.run import execute, pending, prepare
from tests.clock import run_virtual
from tests.conftest import results, write_config
from tests.providers.servers import Loopback, Seen, json_error
from tests.providers.test_openai import openai_api


class ThirtyPercent429:
    """An OpenAI-compatible server that answers 30% of requests with 429, counting them."""

    def __init__(self) -> None:
        self.draw = random.Random(30)
        self.limited = 0

    def __call__(self, outcome: str, seen: Seen) -> web.Response:
        if self.draw.random() < 0.3:
            self.limited += 1
            body = {"error": {"message": "slow down", "type": "rate_limit_exceeded"}}
            return json_error(429, body, {"retry-after": "0.01"})
        return openai_api("ok", seen)


def test_a_lane_fed_30_percent_429s_finishes_every_job_with_only_the_requests_it_needed(
    tmp_path, run_cli, monkeypatch
):
    monkeypatch.setenv("TEST_OPENAI_KEY", "k")
    server_logic = ThirtyPercent429()
    with Loopback(server_logic) as server:
        body = f"""
[retry]
max_attempts = 20
initial_wait = 0.01
max_wait = 0.02

[[models]]
name = "busy"
provider = "openai"
model = "m"
temperatures = [0.0, 0.7]
max_concurrency = 16
[models.options]
base_url = "{server.base_url}/v1"
api_key_env = "TEST_OPENAI_KEY"
"""
        code, out, _ = run_cli("run", write_config(tmp_path, body, prompts=100))
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert code == 0 and len(records) == 200 and {r["status"] for r in records} == {"ok"}
    assert server_logic.limited > 30
    assert len(server.seen) == 200 + server_logic.limited
    assert sum(r["retry_count"] for r in records) == server_logic.limited
    assert "concurrency 16 -> 8 (rate limited)" in out


FATAL_BESIDE_HEALTHY = """
[retry]
max_attempts = 5
initial_wait = 1.0

[[models]]
name = "healthy"
provider = "simulated"
max_concurrency = 4
[models.options]
latency_ms = 200
"""

FATAL_LANE = """
[[models]]
name = "broken"
provider = "simulated"
max_concurrency = 4
[models.options]
latency_ms = 200
fatal_rate = 1.0
"""


def virtual_run_seconds(folder, body: str) -> float:
    folder.mkdir()
    prepared = prepare(write_config(folder, body, prompts=40))

    async def main() -> float:
        wanted = pending(build_index(prepared.ledger_path))
        await execute(prepared, command="run", wanted=wanted, console=Console(file=io.StringIO()))
        return anyio.current_time()

    return run_virtual(main)


def test_a_fatal_error_lane_does_not_slow_a_healthy_lane_beside_it(tmp_path):
    alone = virtual_run_seconds(tmp_path / "alone", FATAL_BESIDE_HEALTHY)
    beside = virtual_run_seconds(tmp_path / "beside", FATAL_BESIDE_HEALTHY + FATAL_LANE)
    records = results(tmp_path / "beside" / "out" / "ledger.jsonl")
    broken = [r for r in records if r["variant"].startswith("broken")]
    assert len(broken) == 40 and all(r["retry_count"] == 0 for r in broken)
    assert alone >= 40 / 4 * 0.2
    assert beside <= alone * 1.01
