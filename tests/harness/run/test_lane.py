"""The lane's retry loop: what is retried, how long it waits, and what ends up recorded."""

from __future__ import annotations

import gc
import hashlib
from dataclasses import replace

import anyio

from harness.api.types import Usage
from harness.config.models import ModelConfig
from harness.config.run_config import RetryPolicy, make_variant
from harness.errors import ConnectionFailed, RateLimited, RateLimitState, ServerError
from harness.ledger.record import Record
from harness.prompts.load import load_prompts
from harness.providers.simulated import SimulatedOptions, SimulatedProvider
from harness.run.jobs import Job, job_key, job_seed
from harness.run.lane import Lane, LaneEvents, backoff
from harness.run.limits import LaneLimits
from tests.clock import run_virtual
from tests.conftest import write_prompts

RETRY = RetryPolicy(max_attempts=4, initial_wait=1.0, max_wait=8.0, attempt_timeout=5.0)


def make_lane(options: SimulatedOptions, retry: RetryPolicy = RETRY, **limits: float):
    """A lane over the simulated provider; returns it with the list its retries are noted in."""
    retries: list[tuple[str, float, float]] = []

    def on_retry(job: Job, error: Exception, wait: float) -> None:
        retries.append((type(error).__name__, wait, anyio.current_time()))

    lane = Lane(
        "sim",
        SimulatedProvider("sim-1", options),
        limits=LaneLimits(limits.get("rpm"), limits.get("tpm")),
        concurrency=4,
        retry=retry,
        run_id="test",
        events=LaneEvents(on_record=lambda record: None, on_retry=on_retry),
    )
    return lane, retries


def one_job(tmp_path) -> Job:
    prompt = load_prompts(write_prompts(tmp_path / "p.json", 1))[0]
    variant = make_variant(ModelConfig(name="sim", provider="simulated"), 0.0, 1, {})
    return Job(job_key(variant.id, prompt.id, 0), variant, prompt, 0)


def run_one(lane: Lane, job: Job) -> tuple[Record, float]:
    async def go() -> tuple[Record, float]:
        record = await lane.run_job(job)
        return record, anyio.current_time()

    return run_virtual(go)


def test_retry_after_from_a_429_is_the_wait(tmp_path):
    lane, retries = make_lane(SimulatedOptions(script=("429", "429"), retry_after=7.5))
    record, finished = run_one(lane, one_job(tmp_path))
    assert record.status == "ok" and record.retry_count == 2
    assert [(name, wait) for name, wait, _ in retries] == [("RateLimited", 7.5)] * 2
    assert finished >= 15.0


def test_an_overloaded_lanes_own_waits_grow_exponentially_within_the_bounds():
    error = ServerError("503", status=503)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0)]:
        for _ in range(50):  # each a jittered draw: base plus up to as much again
            assert base <= backoff(RETRY, error, attempt) <= min(2 * base, RETRY.max_wait)


def test_a_lane_whose_every_attempt_fails_turns_from_prompt_retries_to_long_backoff(tmp_path):
    # The window is 16 attempts (twice the concurrency of 4, at least 16): once it is full of
    # failures the lane is overloaded, and its own waits are the long ones.
    retry = replace(RETRY, max_attempts=20)
    lane, retries = make_lane(SimulatedOptions(script=("500",) * 18), retry)
    record, _ = run_one(lane, one_job(tmp_path))
    assert record.status == "ok" and record.retry_count == 18
    waits = [wait for _, wait, _ in retries]
    assert all(wait <= RETRY.initial_wait for wait in waits[:15])
    assert waits[-2:] == [RETRY.max_wait] * 2


def test_fatal_error_is_recorded_after_one_attempt(tmp_path):
    lane, retries = make_lane(SimulatedOptions(script=("400",)))
    record, _ = run_one(lane, one_job(tmp_path))
    assert retries == []
    assert record.status == "error" and record.retry_count == 0
    assert record.error == {
        "type": "FatalError",
        "message": "invalid_request_error: simulated bad request",
        "retryable": False,
        "status": 400,
        "retry_after": None,
    }
    assert record.full_response is None and record.tokens is None


def test_retries_used_up_record_the_last_error(tmp_path):
    lane, retries = make_lane(SimulatedOptions(script=("503",) * 4))
    record, _ = run_one(lane, one_job(tmp_path))
    assert len(retries) == 3
    assert record.status == "error" and record.retry_count == 3
    assert record.error["type"] == "ServerError" and record.error["status"] == 503
    assert record.error["retryable"] is True


def test_a_stalled_attempt_times_out_and_is_retried(tmp_path):
    lane, retries = make_lane(SimulatedOptions(script=("timeout",)))
    record, finished = run_one(lane, one_job(tmp_path))
    assert [name for name, _, _ in retries] == ["AttemptTimeout"]
    assert record.status == "ok" and record.retry_count == 1
    assert finished >= RETRY.attempt_timeout


def test_a_provider_bug_is_recorded_as_fatal_not_raised(tmp_path):
    class Broken(SimulatedProvider):
        async def generate(self, request):
            raise KeyError("choices")

    lane, retries = make_lane(SimulatedOptions())
    lane.provider = Broken("sim-1", SimulatedOptions())
    record, _ = run_one(lane, one_job(tmp_path))
    assert retries == []
    assert record.status == "error"
    assert record.error["type"] == "FatalError" and "KeyError" in record.error["message"]


def test_success_record_carries_the_answer_and_its_accounting(tmp_path):
    lane, _ = make_lane(SimulatedOptions(output_tokens=10, top_logprobs=5))
    job = one_job(tmp_path)
    record, _ = run_one(lane, job)
    assert record.key == job.key and record.variant == job.variant.id
    assert record.tokens["total"] == record.tokens["input"] + record.tokens["output"]
    assert len(record.token_logprobs) == record.tokens["output"]
    assert all(len(entry.top) == 5 for entry in record.token_logprobs)
    assert record.sampling_params == {
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": 1024,
        "seed": job_seed(1, "p000", 0),
        "stop": (),
    }
    assert record.timestamp.endswith("Z") and record.prompt_category == "a"
    assert record.metadata == {"source": "test"}


def test_every_job_sends_a_seed_of_its_own_stable_across_runs(tmp_path):
    job = one_job(tmp_path)
    others = [replace(job, sample=2), replace(job, prompt=replace(job.prompt, id="p999"))]
    seeds = [j.request(1).sampling.seed for j in (job, *others)]
    assert len(set(seeds)) == 3  # no two prompts or samples share their random draws
    # The documented function: the first 31 bits of SHA-256 of "run seed|prompt id|sample".
    assert seeds[0] == int(hashlib.sha256(b"1|p000|0").hexdigest()[:8], 16) & 0x7FFFFFFF
    assert job.request(2).sampling.seed == seeds[0]  # every attempt of a job draws the same
    assert all(0 <= seed < 2**31 for seed in seeds)


def test_a_wait_beyond_max_retry_after_is_recorded_as_failed_at_once(tmp_path):
    retry = replace(RETRY, max_retry_after=300.0)
    lane, retries = make_lane(SimulatedOptions(script=("429",), retry_after=86400.0), retry)
    record, finished = run_one(lane, one_job(tmp_path))
    assert retries == [] and finished < 1.0
    assert record.status == "error" and record.error["type"] == "RateLimited"
    assert "asked to wait 86,400 s" in record.error["message"]
    assert "max_retry_after = 300 s" in record.error["message"]
    assert record.error["retry_after"] == 86400.0


class SpentLimit(SimulatedProvider):
    """Answers after 1 s; the first request gets a 429 whose headers say the limit is spent for
    the next 5 s. Notes when each request arrives."""

    def __init__(self, model, options) -> None:
        super().__init__(model, options)
        self.arrivals: list[float] = []

    async def generate(self, request):
        self.arrivals.append(anyio.current_time())
        if len(self.arrivals) == 1:
            state = RateLimitState(requests_remaining=0, requests_reset_seconds=5.0)
            raise RateLimited("rate limited", status=429, retry_after=5.0, rate_limit=state)
        return await super().generate(request)


def test_a_429_saying_the_limit_is_spent_pauses_the_whole_lane(tmp_path):
    lane, _ = make_lane(SimulatedOptions(latency_ms=1000))
    lane.provider = SpentLimit("sim-1", SimulatedOptions(latency_ms=1000))
    job = one_job(tmp_path)
    jobs = [replace(job, key=f"{job.key}-{i}", sample=i) for i in range(4)]

    async def main() -> None:
        await lane.run(iter(jobs), anyio.Event())

    run_virtual(main)
    first, *others = lane.provider.arrivals
    assert first < 0.1 and len(others) == 4
    assert min(others) >= 5.0  # not one request went out while the limit was spent


def test_a_stop_while_a_job_waits_to_retry_leaves_it_pending(tmp_path):
    records: list[Record] = []
    lane, _ = make_lane(SimulatedOptions(script=("429",), retry_after=10.0))
    lane.events = LaneEvents(on_record=records.append, on_retry=lambda *_: None)
    job = one_job(tmp_path)

    async def main() -> None:
        stopping = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(lane.run, iter([job]), stopping)
            await anyio.sleep(1.0)
            stopping.set()

    run_virtual(main)
    assert records == []  # no record: the next run takes the job up again


class DownBetween(SimulatedProvider):
    """Refuses connections from `down` to `up` seconds (virtual), like a server restarting."""

    down, up = 1.0, 40.0

    async def generate(self, request):
        if self.down <= anyio.current_time() < self.up:
            raise ConnectionFailed("ClientConnectorError: Connection refused")
        return await super().generate(request)


def run_through_outage(tmp_path, patience: float) -> list[Record]:
    records: list[Record] = []
    retry = replace(
        RETRY, max_attempts=3, initial_wait=0.5, max_wait=1.0, server_down_wait=patience
    )
    lane, _ = make_lane(SimulatedOptions(latency_ms=500), retry)
    lane.provider = DownBetween("sim-1", SimulatedOptions(latency_ms=500))
    lane.events = LaneEvents(on_record=records.append, on_retry=lambda *_: None)
    job = one_job(tmp_path)
    jobs = [replace(job, key=f"{job.key}-{i}", sample=i) for i in range(40)]

    async def main() -> None:
        await lane.run(iter(jobs), anyio.Event())

    run_virtual(main)
    return records


def test_a_lane_waits_out_a_server_restart_without_spending_attempts(tmp_path):
    records = run_through_outage(tmp_path, patience=120.0)
    assert len(records) == 40 and {r.status for r in records} == {"ok"}
    waited = [r for r in records if r.attempt_errors]
    assert waited and all(e["type"] == "ConnectionFailed" for r in waited for e in r.attempt_errors)
    # A job failed as often as max_attempts = 3 allows, and more, yet none failed for good.
    assert max(r.retry_count for r in records) >= 3


def test_a_server_down_past_the_wait_fails_its_jobs_with_their_history(tmp_path):
    records = run_through_outage(tmp_path, patience=5.0)
    failed = [r for r in records if r.status == "error"]
    assert failed and {r.error["type"] for r in failed} == {"ConnectionFailed"}
    assert all(r.attempt_errors for r in failed)


def test_our_own_backoff_is_never_cut_by_max_retry_after(tmp_path):
    # Enough failures to make the lane overloaded: its own waits are then 8 s, past the cap.
    retry = replace(RETRY, max_attempts=20, initial_wait=4.0, max_wait=8.0, max_retry_after=2.0)
    lane, retries = make_lane(SimulatedOptions(script=("503",) * 18), retry)
    record, _ = run_one(lane, one_job(tmp_path))
    assert record.status == "ok" and len(retries) == 18  # the cap is for waits a server asks
    assert max(wait for _, wait, _ in retries) == 8.0


def test_a_server_that_sends_unreadable_token_counts_fails_that_job_as_malformed(tmp_path):
    class NullUsage(SimulatedProvider):
        async def generate(self, request):
            completion = await super().generate(request)
            return replace(completion, usage=Usage(None, 3))  # as a server's `null` arrives

    lane, _ = make_lane(SimulatedOptions())
    lane.provider = NullUsage("sim-1", SimulatedOptions())
    record, _ = run_one(lane, one_job(tmp_path))
    assert record.status == "error" and record.error["type"] == "MalformedResponse"
    assert record.error["retryable"] and record.retry_count == RETRY.max_attempts - 1
    assert (
        "tokens.input: expected a whole number from 0 to 2,147,483,647, got NoneType None"
        in record.error["message"]
    )


def test_a_local_models_lane_keeps_what_it_loaded_out_of_the_collectors_sight_while_it_runs(
    tmp_path,
):
    seen: dict[str, list[int]] = {"start": [], "generate": []}

    class Local(SimulatedProvider):
        holds_device = True

        async def start(self):
            seen["start"].append(gc.get_freeze_count())
            await super().start()

        async def generate(self, request):
            seen["generate"].append(gc.get_freeze_count())
            return await super().generate(request)

    class Remote(Local):
        holds_device = False

    for provider, frozen in ((Local, True), (Remote, False)):
        for noted in seen.values():
            noted.clear()
        lane, _ = make_lane(SimulatedOptions())
        lane.provider = provider("sim-1", SimulatedOptions())

        async def go(lane: Lane = lane) -> None:
            await lane.run(iter([one_job(tmp_path)]), anyio.Event())

        run_virtual(go)
        assert seen["start"] == [0]  # frozen once the model has loaded, not before
        assert (seen["generate"][0] > 0) is frozen  # an API's lane, beside others, never
        assert gc.get_freeze_count() == 0  # back in sight once the lane ended
