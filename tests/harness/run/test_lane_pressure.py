"""Lanes under pressure: 429s cost only the requests they must, and a failing lane costs its
neighbour nothing."""

from __future__ import annotations

import io
import random
import time

import anyio
import pytest
from aiohttp import web
from rich.console import Console

from harness.ledger.index import build_index
from harness.run.execute import execute, pending
from harness.run.prepare import prepare
from tests.clock import run_virtual
from tests.conftest import harness_process, results, write_config
from tests.harness.providers.servers import Loopback, Seen, free_port, json_error
from tests.harness.providers.test_openai import openai_api


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
    assert "concurrency 16 -> 8" in out


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


RANDOM_429S = """
[retry]
max_attempts = 8

[[models]]
name = "flaky"
provider = "simulated"
max_concurrency = 64
[models.options]
latency_ms = 100
rate_limit_rate = 0.05
retry_after = 1.0
"""


def test_random_429s_cost_only_the_retries_of_the_jobs_that_got_them(tmp_path):
    # 2,000 jobs at 100 ms over 64 slots take 3.1 s; the longest run of 429s one job met, at 1 s
    # each, comes on top. A lane that halved its concurrency on single 429s took 135 s here.
    prepared = prepare(write_config(tmp_path, RANDOM_429S, prompts=2000))

    async def main() -> float:
        wanted = pending(build_index(prepared.ledger_path))
        await execute(prepared, command="run", wanted=wanted, console=Console(file=io.StringIO()))
        return anyio.current_time()

    seconds = run_virtual(main)
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert {r["status"] for r in records} == {"ok"} and len(records) == 2000
    assert sum(r["retry_count"] for r in records) > 60
    ideal = 2000 * 0.1 / 64 + max(r["retry_count"] for r in records) * 1.0
    assert seconds <= ideal / 0.9


class RequestsPerSecond:
    """An OpenAI-compatible server that takes at most `limit` requests in any second and answers
    the rest with 429 and `retry-after: 1`, without rate-limit headers (the hardest case). The
    loopback answers after 100 ms, so the lane's concurrency sets the rate it sends at."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.accepted: list[float] = []
        self.rejected = 0

    def __call__(self, outcome: str, seen: Seen) -> web.Response:
        recent = [t for t in self.accepted[-self.limit :] if t > seen.at - 1.0]
        if len(recent) >= self.limit:
            self.rejected += 1
            body = {"error": {"message": "Rate limit reached", "type": "requests"}}
            return json_error(429, body, {"retry-after": "1"})
        self.accepted.append(seen.at)
        return openai_api("ok", seen)


def test_a_server_enforcing_a_rate_limit_with_429s_holds_the_lane_near_its_limit(
    tmp_path, run_cli, monkeypatch
):
    monkeypatch.setenv("TEST_OPENAI_KEY", "k")
    server_logic = RequestsPerSecond(25)
    with Loopback(server_logic, delay=0.1) as server:
        body = f"""
[retry]
max_attempts = 30

[[models]]
name = "limited"
provider = "openai"
model = "m"
max_concurrency = 64
[models.options]
base_url = "{server.base_url}/v1"
api_key_env = "TEST_OPENAI_KEY"
"""
        code, out, _ = run_cli("run", write_config(tmp_path, body, prompts=150))
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert code == 0 and {r["status"] for r in records} == {"ok"} and len(records) == 150
    # The lane came down from 64 within the first second; after that it sent little more than the
    # server takes (22 a second on average here), and finished in about the time the limit
    # allows (150 / 25 = 6 s; 7.6 s here).
    assert "concurrency 64 -> 32" in out
    sent = [seen.at for seen in server.seen]
    late = [t for t in sent if t >= sent[0] + 1.5]
    rate = len(late) / (late[-1] - late[0])
    assert rate <= 2 * 25  # at 64 requests in flight it would send 640 a second
    assert server_logic.rejected < 2 * len(records)
    assert sent[-1] - sent[0] <= 2 * 150 / 25


@pytest.mark.slow
def test_a_server_restarted_mid_run_costs_no_job(tmp_path):
    port = free_port()
    body = f"""
[retry]
max_attempts = 2
initial_wait = 0.1
max_wait = 0.2
server_down_wait = 30

[[models]]
name = "restarting"
provider = "openai"
model = "m"
max_concurrency = 4
[models.options]
base_url = "http://127.0.0.1:{port}/v1"
api_key_env = ""
"""
    config = write_config(tmp_path, body, prompts=80)
    with Loopback(openai_api, port=port, delay=0.05) as first:
        process = harness_process("run", str(config))
        deadline = time.monotonic() + 20
        while len(first.seen) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    time.sleep(3.0)  # longer than every attempt a job has, at these waits
    with Loopback(openai_api, port=port, delay=0.05):
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert len(records) == 80 and {r["status"] for r in records} == {"ok"}
    waited = [r for r in records if r["attempt_errors"]]
    assert waited and {e["type"] for r in waited for e in r["attempt_errors"]} == {
        "ConnectionFailed"
    }
