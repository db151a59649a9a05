"""How long a lane waits between attempts: promptly while its errors are the server's noise, long
once its recent attempts mostly fail, and always what the server asked for."""

from __future__ import annotations

from dataclasses import replace

import anyio

from harness.config.run_config import RetryPolicy
from harness.errors import RateLimited, ServerError
from harness.ledger.record import Record
from harness.providers.simulated import SimulatedOptions, SimulatedProvider
from harness.run.adaptive import ErrorShare
from harness.run.lane import Lane, LaneEvents
from harness.run.limits import LaneLimits
from tests.clock import run_virtual
from tests.harness.run.test_lane import RETRY, make_lane, one_job, run_one


class EveryFifthFirstAttemptFails(SimulatedProvider):
    """The first attempt of every fifth request fails at once: a 429 asking for 1 s for every
    tenth, a 500 for the others; every other attempt is answered."""

    firsts = 0

    async def generate(self, request):
        if request.attempt == 1:
            self.firsts += 1
            if self.firsts % 10 == 0:
                raise RateLimited("rate limited", status=429, retry_after=1.0)
            if self.firsts % 5 == 0:
                raise ServerError("internal error", status=500)
        return await super().generate(request)


def run_jobs(lane: Lane, tmp_path, count: int) -> list[Record]:
    """Run `count` jobs through `lane` to the end; returns their records."""
    records: list[Record] = []
    lane.events = LaneEvents(on_record=records.append, on_retry=lane.events.on_retry)
    job = one_job(tmp_path)
    jobs = [replace(job, key=f"{job.key}-{i}", sample=i) for i in range(count)]

    async def main() -> None:
        await lane.run(iter(jobs), anyio.Event())

    run_virtual(main)
    return records


def test_a_healthy_lane_retries_a_500_within_the_short_base(tmp_path):
    options = SimulatedOptions(latency_ms=100)
    lane, retries = make_lane(options)
    lane.provider = EveryFifthFirstAttemptFails("sim-1", options)
    records = run_jobs(lane, tmp_path, 80)
    assert len(records) == 80 and {r.status for r in records} == {"ok"}
    server = [wait for name, wait, _ in retries if name == "ServerError"]
    limited = [wait for name, wait, _ in retries if name == "RateLimited"]
    assert len(server) == 8 and len(limited) == 8
    assert all(0 <= wait <= RETRY.quick_wait for wait in server)  # not 1-2 s
    assert limited == [1.0] * 8  # a server's retry-after is never shortened


def test_on_a_healthy_lane_a_job_failing_again_and_again_waits_a_little_longer_each_time(tmp_path):
    retry = replace(RETRY, max_attempts=6)
    lane, retries = make_lane(SimulatedOptions(script=("500",) * 5), retry)
    record, _ = run_one(lane, one_job(tmp_path))
    assert record.status == "ok" and record.retry_count == 5
    bounds = [0.25, 0.5, 1.0, 1.0, 1.0]  # doubling from quick_wait, never past initial_wait
    assert all(0 <= wait <= most for (_, wait, _), most in zip(retries, bounds, strict=True))


def test_a_lane_whose_recent_attempts_mostly_fail_backs_off_long(tmp_path):
    options = SimulatedOptions(latency_ms=100, script=("500", "503", "500"))
    lane, retries = make_lane(options)  # concurrency 4: a window of 16 attempts
    records = run_jobs(lane, tmp_path, 12)
    assert len(records) == 12 and {r.status for r in records} == {"ok"}
    waits = [wait for _, wait, _ in retries]
    assert len(waits) == 36
    # Until the window is full, the failures of the run's first requests are retried promptly...
    assert all(wait < RETRY.initial_wait for wait in waits[:15])
    # ...then more than half of it failed: the long exponential backoff, with its jitter.
    assert all(RETRY.initial_wait <= wait <= RETRY.max_wait for wait in waits[15:])
    assert max(waits) > 2 * RETRY.initial_wait


def test_the_error_share_turns_healthy_only_once_a_quarter_or_less_fails(caplog):
    caplog.set_level("INFO", logger="harness.lane")
    share = ErrorShare("sim", size=8)
    for _ in range(7):
        share.observe(True)
    assert not share.overloaded  # the window is not full yet
    share.observe(True)
    assert share.overloaded
    for _ in range(5):  # 3 of the last 8 failed: below half, still above a quarter
        share.observe(False)
    assert share.overloaded
    share.observe(False)  # 2 of 8
    assert not share.overloaded
    assert [r.getMessage() for r in caplog.records] == [
        "sim: 100% of recent attempts failed; overloaded: long backoff",
        "sim: 25% of recent attempts failed; healthy again: prompt retries",
    ]


def test_a_fifth_of_requests_failing_costs_little_more_than_the_servers_own_waits(tmp_path):
    """1,000 jobs at 100 ms, concurrency 64, 10% 429s asking for 1 s and 10% 5xx, in virtual time:
    the run ends within 1.5x of the ideal, every job's latency over the concurrency plus the
    longest series of waits the server asked of one job (with the old 1-2 s, 2-4 s, ... backoff
    for every 5xx it took 2.6-8.5x)."""
    options = SimulatedOptions(
        latency_ms=100, rate_limit_rate=0.1, server_error_rate=0.1, retry_after=1.0
    )
    records: list[Record] = []
    lane = Lane(
        "sim",
        SimulatedProvider("sim-1", options),
        limits=LaneLimits(None, None),
        concurrency=64,
        retry=RetryPolicy(max_attempts=10),  # the defaults, with room for long series
        run_id="test",
        events=LaneEvents(on_record=records.append, on_retry=lambda *_: None),
    )
    job = one_job(tmp_path)
    jobs = [replace(job, key=f"{job.key}-{i}", sample=i) for i in range(1000)]

    async def main() -> float:
        await lane.run(iter(jobs), anyio.Event())
        return anyio.current_time()

    wall = run_virtual(main)
    assert len(records) == 1000 and {r.status for r in records} == {"ok"}
    assert sum(r.retry_count for r in records) > 200  # about a fifth of the attempts failed
    asked = max(sum(e["retry_after"] or 0.0 for e in r.attempt_errors) for r in records)
    ideal = 1000 * 0.1 / 64 + asked
    assert wall <= 1.5 * ideal, (wall, ideal)
