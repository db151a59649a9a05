"""A simulated provider: deterministic answers with configurable latency and injected failures,
live or in batches, as a model or as a judge.

Needs no key, no network and no GPU, so the demo, the tests and the benchmarks all use it. Answers
depend only on the prompt, the model and (above temperature 0) the seed. Whether an attempt fails
is drawn from the seed, the request id, the attempt number and how many times the ledger saw the
job fail for good before (`Request.failed_before`): a first run is reproducible from its seed, a
retried attempt gets a fresh draw, and so does every attempt of a `rerun`, which can then bring
in what failed.

Batch mode (`mode = "batch"`) keeps its batches in this process: a batch ends `batch_ready_ms`
after its creation, its requests done evenly over that time, and answers each request as
`generate` would, injected failures included (a request's error becomes its result). A batch
left open by a run that was killed is gone with its process: the next run finds it expired
(`BatchExpired`) and its jobs are run again by the one after.

With `judge = true` the model answers as a judge scorer's (see `harness.analysis.judge`): words,
then `VERDICT: <label>`, the label drawn like the words from the prompt among those the prompt
lists last (`a, b, c`, as the rubric's `{labels}` writes them); a prompt that lists none gets no
verdict.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio

from harness.api.provider import BatchLimits, BatchProvider, BatchStatus
from harness.api.types import Completion, Request, TokenLogprob, Usage
from harness.errors import (
    AttemptTimeout,
    BatchCancelled,
    BatchExpired,
    FatalError,
    MalformedResponse,
    ProviderError,
    RateLimited,
    ServerError,
)
from harness.providers.options import SimulatedOptions, SimulatedOutcome

_DRAWN: tuple[SimulatedOutcome, ...] = (
    "400",
    "429",
    "500",
    "timeout",
)  # in the order of `SimulatedOptions.rates`
_VERDICTS = ("Yes, it exists.", "No, I cannot find it.", "I am not certain.")
_WORDS = tuple(
    "the advisory describes a vulnerability in version package release maintainers published "
    "patch function returns value module exposes parameter remote attacker could execute code "
    "through crafted input affected versions before upgrade mitigates issue documentation lists "
    "this api call library registry source repository security researchers reported".split()
)
# A list of labels as a judge's rubric writes `{labels}`: words joined by ", ".
_LABELS = re.compile(r"[\w-]+(?:, [\w-]+)+")
_YIELD_EVERY = 512  # batch results made between two turns of the event loop


@dataclass
class _Batch:
    """A simulated batch: its label, its requests' custom ids in order, and on the event loop's
    clock when it was created, when it ends, and when it was cancelled."""

    label: str
    custom_ids: tuple[str, ...]
    created: float
    ready: float
    cancelled: float | None = None

    def ends(self) -> float:
        """When processing stops: at its end, or when it was cancelled."""
        return self.ready if self.cancelled is None else min(self.ready, self.cancelled)

    def done(self, now: float) -> int:
        """How many of its requests are done at `now` (evenly over its processing time)."""
        if now >= self.ready:
            return len(self.custom_ids)
        share = (now - self.created) / (self.ready - self.created)
        return int(len(self.custom_ids) * share)


# Every simulated batch this process created, by id.
_BATCHES: dict[str, _Batch] = {}


class SimulatedProvider(BatchProvider):
    """Scripted answers after a simulated delay, or one of the failures a real API gives; in
    batches too, within Anthropic's batch limits."""

    options: SimulatedOptions
    batch_limits = BatchLimits(requests=100_000, bytes=256_000_000)

    def __init__(self, model: str, options: SimulatedOptions) -> None:
        super().__init__(model, options)
        # Upper bounds of each outcome's slice of [0, 1), in the order of `_DRAWN`.
        self._bounds = list(itertools.accumulate(options.rates))

    @classmethod
    def key_source(cls, options: SimulatedOptions) -> str:
        """A key given in the config (taken, never sent), or none needed."""
        return "key given in the config" if options.api_key else "no key needed"

    @classmethod
    def logprobs_asked(cls, options: SimulatedOptions) -> int:
        """`top_logprobs`."""
        return options.top_logprobs

    async def generate(self, request: Request) -> Completion:
        """Fail as scripted or drawn, or wait the simulated latency and answer."""
        outcome, draw = self._outcome(request)
        if outcome == "timeout":
            await anyio.sleep(float("inf"))  # stall until the lane's attempt timeout
        if outcome not in ("ok", "malformed"):
            raise self._error(outcome)
        await self._delay(draw)
        return self._answer(request, malformed=outcome == "malformed")

    def batch_item(self, request: Request, custom_id: str) -> dict[str, Any]:
        """The request as a batch entry under its custom id."""
        sampling = request.sampling
        return {
            "custom_id": custom_id,
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            **sampling.as_record(),
        }

    async def submit_batch(self, items: Sequence[dict[str, Any]], label: str) -> str:
        """Create a batch after `batch_submit_ms`; it ends `batch_ready_ms` after that."""
        await _sleep_ms(self.options.batch_submit_ms)
        now = anyio.current_time()
        batch_id = f"simbatch_{secrets.token_hex(8)}"
        ready = now + self.options.batch_ready_ms / 1000
        _BATCHES[batch_id] = _Batch(label, tuple(i["custom_id"] for i in items), now, ready)
        return batch_id

    async def find_batches(self, label: str, since: datetime, count: int) -> list[str]:
        """This process's batches labelled `label` with `count` requests (a batch lives in the
        process that created it)."""
        return [
            batch_id
            for batch_id, batch in _BATCHES.items()
            if batch.label == label and len(batch.custom_ids) == count
        ]

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """In progress (requests processing and done) until it ends or is cancelled; one this
        process does not hold is expired: it went with the run that sent it."""
        batch = _BATCHES.get(batch_id)
        if batch is None:
            gone = f"simulated batch {batch_id} expired: it lived in the process that sent it"
            return BatchStatus("expired", ended=True, error=BatchExpired(gone))
        now, total = anyio.current_time(), len(batch.custom_ids)
        done = batch.done(min(now, batch.ends()))
        counts = {"processing": total - done, "done": done}
        if now < batch.ends():
            return BatchStatus("in_progress", ended=False, counts=counts)
        seconds = batch.ends() - batch.created
        if batch.cancelled is None or done == total:
            return BatchStatus("ended", ended=True, counts=counts, seconds=seconds)
        cancelled = BatchCancelled(f"simulated batch {batch_id} was cancelled before this ran")
        return BatchStatus("canceled", ended=True, counts=counts, seconds=seconds, error=cancelled)

    async def batch_results(
        self, batch_id: str, request_of: Callable[[str], Request | None]
    ) -> AsyncIterator[tuple[str, Completion | ProviderError]]:
        """After `batch_results_ms`, each done request's result: its answer, or its injected
        failure as the error a live attempt would have raised."""
        batch = _BATCHES.get(batch_id)
        if batch is None:
            return
        await _sleep_ms(self.options.batch_results_ms)
        for place, custom_id in enumerate(batch.custom_ids[: batch.done(batch.ends())]):
            if place % _YIELD_EVERY == _YIELD_EVERY - 1:
                await anyio.lowlevel.checkpoint()
            request = request_of(custom_id)
            if request is not None:
                yield custom_id, self._result(request)

    async def cancel_batch(self, batch_id: str) -> None:
        """Stop the batch's processing now: what is done keeps its answers. One this process
        does not hold has expired already."""
        batch = _BATCHES.get(batch_id)
        if batch is not None and batch.cancelled is None:
            batch.cancelled = anyio.current_time()

    def _outcome(self, request: Request) -> tuple[SimulatedOutcome, random.Random | None]:
        """The attempt's outcome, scripted or drawn, and the draw (which also jitters the
        latency). A job no run failed before draws by (seed, id, attempt); one the ledger saw
        fail n times, by (seed, id, n, attempt): each rerun draws afresh."""
        script = self.options.script
        if request.attempt <= len(script):
            return script[request.attempt - 1], None
        if not self._bounds[-1]:
            return "ok", None
        seed, before = request.sampling.seed, request.failed_before
        earlier = f"|{before}" if before else ""
        draw = random.Random(f"{seed}|{request.id}{earlier}|{request.attempt}")
        return self._drawn(draw.random()), draw

    def _drawn(self, roll: float) -> SimulatedOutcome:
        for outcome, bound in zip(_DRAWN, self._bounds, strict=True):
            if roll < bound:
                if outcome == "500" and roll < bound - self.options.server_error_rate / 2:
                    return "503"
                return outcome
        return "ok"

    def _error(self, outcome: SimulatedOutcome) -> ProviderError:
        """The error a failed outcome gives."""
        if outcome == "400":
            return FatalError("invalid_request_error: simulated bad request", status=400)
        if outcome == "429":
            retry_after = self.options.retry_after
            return RateLimited("rate_limit_error: simulated", status=429, retry_after=retry_after)
        if outcome in ("500", "503"):
            return ServerError(f"api_error: simulated {outcome}", status=int(outcome))
        return AttemptTimeout("the simulated request stalled")

    def _result(self, request: Request) -> Completion | ProviderError:
        """A request's result in a batch: the answer `generate` gives, or the error it raises."""
        outcome, _ = self._outcome(request)
        if outcome not in ("ok", "malformed"):
            return self._error(outcome)
        try:
            return self._answer(request, malformed=outcome == "malformed")
        except MalformedResponse as error:  # this request's answer only: the rest go on
            return error

    async def _delay(self, draw: random.Random | None) -> None:
        latency = self.options.latency_ms
        if self.options.jitter_ms:
            draw = draw or random.Random()
            latency += draw.uniform(-self.options.jitter_ms, self.options.jitter_ms)
        await _sleep_ms(latency)

    def _answer(self, request: Request, *, malformed: bool = False) -> Completion:
        """The scripted answer; `malformed`: its text as a list of tokens, which the Completion
        refuses as a real server's would be (MalformedResponse)."""
        sampling = request.sampling
        text = "\n\n".join(m.content for m in request.messages)
        greedy = sampling.temperature == 0
        salt = "" if greedy else f"{sampling.seed}|{sampling.temperature}"
        rng = random.Random(f"{self.model}|{text}|{salt}")
        tokens, cut = self._tokens(rng, text, sampling.max_tokens)
        return Completion(
            text=tokens if malformed else " ".join(tokens),  # type: ignore[arg-type]  # a list on purpose
            finish_reason="length" if cut else "stop",
            usage=Usage(input=len(text) // 4 + 1, output=len(tokens)),
            model=self.model,
            token_logprobs=self._logprobs(rng, tokens) if self.options.top_logprobs else None,
        )

    def _tokens(self, rng: random.Random, text: str, max_tokens: int) -> tuple[list[str], bool]:
        """The answer's tokens, at most `max_tokens`, and whether they were cut there: a verdict
        phrase and words, or as a judge, words and the verdict (which a cut may leave out)."""
        wanted = max(1, round(self.options.output_tokens * rng.uniform(0.5, 1.5)))
        if not self.options.judge:
            count = min(wanted, max_tokens)
            return [rng.choice(_VERDICTS), *rng.choices(_WORDS, k=count - 1)], wanted > max_tokens
        listed = _LABELS.findall(text)
        verdict = ["VERDICT:", rng.choice(listed[-1].split(", "))] if listed else []
        tokens = [*rng.choices(_WORDS, k=wanted), *verdict]
        return tokens[:max_tokens], len(tokens) > max_tokens

    def _logprobs(self, rng: random.Random, tokens: list[str]) -> tuple[TokenLogprob, ...]:
        """Per token, the top k as a real model gives them: the chosen token first, then k - 1
        others less likely, their probabilities a share of one distribution (the rest of the
        vocabulary holds at least 5% of it), so they add up to less than 1."""
        k = self.options.top_logprobs
        entries = []
        for token in tokens:
            others = rng.sample([w for w in _WORDS if w != token], k - 1)
            weights = [1.0]
            for _ in others:
                weights.append(weights[-1] * (0.1 + 0.6 * rng.random()))
            total = sum(weights) * (1.05 + 0.45 * rng.random())  # the rest: 5-30% of the mass
            top = [
                (word, round(math.log(weight / total), 4))
                for word, weight in zip([token, *others], weights, strict=True)
            ]
            entries.append(TokenLogprob(token, top[0][1], tuple(top)))
        return tuple(entries)


async def _sleep_ms(milliseconds: float) -> None:
    """Wait `milliseconds` (a turn of the event loop when there are none)."""
    if milliseconds > 0:
        await anyio.sleep(milliseconds / 1000)
    else:
        await anyio.lowlevel.checkpoint()
