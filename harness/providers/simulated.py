"""A simulated provider: deterministic answers with configurable latency and injected failures.

Needs no key, no network and no GPU, so the demo, the tests and the benchmarks all use it. Answers
depend only on the prompt, the model and (above temperature 0) the seed. Whether an attempt fails
is drawn from the seed, the request id, the attempt number and how many times the ledger saw the
job fail for good before (`Request.failed_before`): a first run is reproducible from its seed, a
retried attempt gets a fresh draw, and so does every attempt of a `rerun`, which can then bring
in what failed.
"""

from __future__ import annotations

import itertools
import math
import random

import anyio

from harness.api.provider import Provider
from harness.api.types import Completion, Request, TokenLogprob, Usage
from harness.errors import AttemptTimeout, FatalError, RateLimited, ServerError
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


class SimulatedProvider(Provider):
    """Scripted answers after a simulated delay, or one of the failures a real API gives."""

    options: SimulatedOptions

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
        draw = None
        script = self.options.script
        if request.attempt <= len(script):
            outcome = script[request.attempt - 1]
        elif self._bounds[-1]:
            # A job no run failed before draws by (seed, id, attempt); one the ledger saw fail n
            # times, by (seed, id, n, attempt): each rerun draws afresh.
            before = request.failed_before
            earlier = f"|{before}" if before else ""
            draw = random.Random(f"{request.sampling.seed}|{request.id}{earlier}|{request.attempt}")
            outcome = self._drawn(draw.random())
        else:
            outcome = "ok"
        if outcome not in ("ok", "malformed"):
            await self._fail(outcome)
        await self._delay(draw)
        return self._answer(request, malformed=outcome == "malformed")

    def _drawn(self, roll: float) -> SimulatedOutcome:
        for outcome, bound in zip(_DRAWN, self._bounds, strict=True):
            if roll < bound:
                if outcome == "500" and roll < bound - self.options.server_error_rate / 2:
                    return "503"
                return outcome
        return "ok"

    async def _fail(self, outcome: str) -> None:
        if outcome == "400":
            raise FatalError("invalid_request_error: simulated bad request", status=400)
        if outcome == "429":
            retry_after = self.options.retry_after
            raise RateLimited("rate_limit_error: simulated", status=429, retry_after=retry_after)
        if outcome in ("500", "503"):
            raise ServerError(f"api_error: simulated {outcome}", status=int(outcome))
        await anyio.sleep(float("inf"))  # "timeout": stall until the lane's attempt timeout
        raise AttemptTimeout("the simulated stall ended")

    async def _delay(self, draw: random.Random | None) -> None:
        latency = self.options.latency_ms
        if self.options.jitter_ms:
            draw = draw or random.Random()
            latency += draw.uniform(-self.options.jitter_ms, self.options.jitter_ms)
        if latency > 0:
            await anyio.sleep(latency / 1000)
        else:
            await anyio.lowlevel.checkpoint()

    def _answer(self, request: Request, *, malformed: bool = False) -> Completion:
        """The scripted answer; `malformed`: its text as a list of tokens, which the Completion
        refuses as a real server's would be (MalformedResponse)."""
        sampling = request.sampling
        text = "\n\n".join(m.content for m in request.messages)
        greedy = sampling.temperature == 0
        salt = "" if greedy else f"{sampling.seed}|{sampling.temperature}"
        rng = random.Random(f"{self.model}|{text}|{salt}")
        wanted = max(1, round(self.options.output_tokens * rng.uniform(0.5, 1.5)))
        count = min(wanted, sampling.max_tokens)
        tokens = [rng.choice(_VERDICTS), *rng.choices(_WORDS, k=count - 1)]
        return Completion(
            text=tokens if malformed else " ".join(tokens),  # type: ignore[arg-type]  # a list on purpose
            finish_reason="length" if wanted > sampling.max_tokens else "stop",
            usage=Usage(input=len(text) // 4 + 1, output=count),
            model=self.model,
            token_logprobs=self._logprobs(rng, tokens) if self.options.top_logprobs else None,
        )

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
