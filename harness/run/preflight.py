"""One minimal request per model, to find a wrong base URL, a stopped server, a refused key or an
unknown model name before a long run does (`doctor --probe`, and `run` with `[preflight] probe`).

A probe builds the provider as a run does and sends one request (max_tokens 1, the model's first
temperature and its provider options, top_logprobs included) through its own `generate`, so the
probe takes the same code path as every job. It reports the latency, the model name the server
answered with, whether logprobs came back when asked, or the classified error. Models that hold the
device (vllm, transformers) load for minutes and are probed only when asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio

from harness.api.provider import Provider
from harness.api.types import Completion, Message, Request, SamplingParams
from harness.config.models import ModelConfig
from harness.errors import AttemptTimeout, ConnectionFailed, ProviderError, RateLimited
from harness.scrub import redact_url

_MESSAGES = (Message("user", "Say OK."),)


@dataclass(frozen=True)
class Target:
    """A model to probe: its place in the config, its entry, provider class and options."""

    index: int
    model: ModelConfig
    provider_cls: type[Provider]
    options: Any

    @property
    def local(self) -> bool:
        """Whether the model runs in-process (and takes minutes to load)."""
        return self.provider_cls.holds_device

    @property
    def where(self) -> str:
        """`models[i] (name)`, as other set-up problems name a model."""
        return f"models[{self.index}] ({self.model.name})"


@dataclass(frozen=True)
class Probe:
    """What one probe found. `ok` is None when the model was not probed."""

    target: Target
    ok: bool | None
    detail: str


async def probe_all(targets: list[Target], *, timeout: float, local: bool = False) -> list[Probe]:
    """Probe every target at once (local ones only when `local`); results in the targets' order."""
    found: dict[int, Probe] = {}

    async def one(position: int, target: Target) -> None:
        found[position] = await probe(target, timeout)

    async with anyio.create_task_group() as group:
        for position, target in enumerate(targets):
            if target.local and not local:
                found[position] = Probe(target, None, "not probed: a local model loads for minutes")
            else:
                group.start_soon(one, position, target)
    return [found[position] for position in range(len(targets))]


async def probe(target: Target, timeout: float) -> Probe:
    """Send one minimal request through the provider's `generate`; loading a local model is
    outside `timeout`, as it is outside a run's attempt timeout."""
    try:
        provider = target.provider_cls(target.model.model_id, target.options)
    except Exception as exc:  # a client that refuses its options: what a run would meet first
        return Probe(target, False, f"cannot build the client: {type(exc).__name__}: {exc}")
    try:
        await provider.start()
        started = time.monotonic()
        with anyio.fail_after(timeout):
            completion = await provider.generate(probe_request(target.model))
        return Probe(target, *_answered(target, completion, time.monotonic() - started))
    except TimeoutError:
        return Probe(target, False, f"AttemptTimeout: no answer within {timeout:g} s")
    except ProviderError as exc:
        return Probe(target, *_failed(target, exc))
    finally:
        await provider.aclose()


def probe_request(model: ModelConfig) -> Request:
    """The smallest request a run could send this model: one output token."""
    sampling = SamplingParams(
        temperature=model.temperatures[0],
        top_p=model.top_p,
        max_tokens=1,
        seed=0,
        stop=model.stop,
    )
    return Request(id="probe", model=model.model_id, messages=_MESSAGES, sampling=sampling)


def _answered(target: Target, completion: Completion, seconds: float) -> tuple[bool, str]:
    parts = [f"answered in {seconds:.3f} s", f'model "{completion.model}"']
    asked = target.provider_cls.logprobs_asked(target.options)
    if not asked:
        return True, ", ".join(parts)
    if not completion.token_logprobs:
        parts.append(f"top_logprobs = {asked} asked but no logprobs came back")
        return False, ", ".join(parts)
    alternatives = len(completion.token_logprobs[0].top)
    parts.append(f"logprobs with {alternatives} alternative(s) (asked {asked})")
    return True, ", ".join(parts)


def _failed(target: Target, error: ProviderError) -> tuple[bool, str]:
    """A rate limit still shows the server, key and model work; every other error fails."""
    kind = type(error).__name__
    if isinstance(error, RateLimited):
        return True, f"reachable, but rate limited now ({error.status}): {error.message}"
    if isinstance(error, ConnectionFailed):
        url = target.provider_cls.base_url(target.options)
        url = redact_url(url) or "the provider's default URL"
        return False, f"{kind}: cannot reach {url}: {error.message}"
    if isinstance(error, AttemptTimeout):
        return False, f"{kind}: {error.message}"
    if error.status in (401, 403):
        return False, f"{kind} ({error.status}): the key was refused: {error.message}"
    if error.status == 404:
        return False, (
            f'{kind} (404): no model "{target.model.model_id}" there (or a wrong base_url path): '
            f"{error.message}"
        )
    status = f" ({error.status})" if error.status else ""
    return False, f"{kind}{status}: {error.message}"
