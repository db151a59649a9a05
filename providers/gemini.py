"""`provider = "gemini"`: Gemini through `google-genai`'s async client (aiohttp when installed).

The SDK's retries are off (`HttpRetryOptions(attempts=1)`) so the harness alone retries. A
response blocked by safety filters is a finished answer with finish_reason `safety` and the
block reason in `finish_detail`, never a retry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from google import genai
from google.genai import errors, types

from harness.api import Completion, Request, TokenLogprob, Usage
from harness.errors import AttemptTimeout, ConnectionFailed
from harness.fields import OPERATIONAL
from providers._http import api_key, error_for_status, setup_problems

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
_BLOCKED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}


@dataclass(frozen=True)
class GeminiOptions:
    """Options of `provider = "gemini"`."""

    api_key_env: str = field(default="GEMINI_API_KEY", metadata=OPERATIONAL)
    api_key: str = field(default="", metadata=OPERATIONAL)
    base_url: str = ""
    top_logprobs: int = field(default=0, metadata={"min": 0, "max": 20})
    timeout: float = field(default=600.0, metadata={"min": 0.001, "max": 86_400, **OPERATIONAL})


class GeminiProvider:
    """Gemini via `genai.Client(...).aio.models.generate_content`."""

    Options = GeminiOptions

    def __init__(self, model: str, options: GeminiOptions) -> None:
        self.model = model
        self.options = options
        self._client = genai.Client(
            api_key=api_key(options.api_key, options.api_key_env),
            http_options=types.HttpOptions(
                base_url=options.base_url or None,
                timeout=int(options.timeout * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    @classmethod
    def preflight(cls, model: str, options: GeminiOptions) -> list[str]:
        """A missing key or a malformed base URL."""
        return setup_problems(options.api_key, options.api_key_env, options.base_url)

    async def start(self) -> None:
        """Nothing to load: the client connects on the first request."""

    async def generate(self, request: Request) -> Completion:
        """One generateContent call, its errors translated."""
        config = self._config(request)
        contents = [
            types.Content(
                role="model" if m.role == "assistant" else "user",
                parts=[types.Part(text=m.content)],
            )
            for m in request.messages
            if m.role != "system"
        ]
        try:
            response = await self._client.aio.models.generate_content(
                model=request.model, contents=contents, config=config
            )
        except errors.APIError as exc:
            message = f"{exc.status or exc.code}: {exc.message}"
            headers = getattr(exc.response, "headers", None) or {}
            error = error_for_status(exc.code, message, headers)
            if error.retryable and error.retry_after is None:
                error.retry_after = _retry_delay(exc.details)
            raise error from exc
        except TimeoutError as exc:
            raise AttemptTimeout("no answer within the client timeout") from exc
        except aiohttp.ClientError as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from exc
        return _completion(response, request, config)

    async def aclose(self) -> None:
        """Close the async client and the sync one the SDK opens alongside it."""
        try:
            await self._client.aio.aclose()
        finally:
            self._client.close()

    def _config(self, request: Request) -> types.GenerateContentConfig:
        sampling = request.sampling
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        k = self.options.top_logprobs
        return types.GenerateContentConfig(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_output_tokens=sampling.max_tokens,
            seed=sampling.seed,
            stop_sequences=list(sampling.stop) or None,
            system_instruction=system or None,
            candidate_count=1,
            response_logprobs=bool(k) or None,
            logprobs=k or None,
        )


def _completion(
    response: types.GenerateContentResponse, request: Request, config: types.GenerateContentConfig
) -> Completion:
    usage = response.usage_metadata
    thoughts = usage.thoughts_token_count if usage else None
    candidate = response.candidates[0] if response.candidates else None
    parts = candidate.content.parts if candidate and candidate.content else None
    reason = candidate.finish_reason.value if candidate and candidate.finish_reason else None
    blocked = response.prompt_feedback.block_reason if response.prompt_feedback else None
    if blocked:
        finish, detail = "safety", f"prompt blocked: {blocked.value}"
    elif reason in _BLOCKED:
        finish, detail = "safety", _blocked_categories(candidate, reason)
    else:
        finish, detail = _FINISH.get(reason or "", (reason or "unknown").lower()), None
    return Completion(
        text="".join(part.text or "" for part in parts or () if not part.thought),
        finish_reason=finish,
        finish_detail=detail,
        usage=Usage(
            (usage.prompt_token_count or 0) if usage else 0,
            (usage.candidates_token_count or 0) if usage else 0,
            {"thoughts": thoughts} if thoughts else None,
        ),
        model=response.model_version or request.model,
        token_logprobs=_logprobs(candidate.logprobs_result if candidate else None),
        sampling_sent={
            "temperature": config.temperature,
            "top_p": config.top_p,
            "max_tokens": config.max_output_tokens,
            "seed": config.seed,
            "stop": config.stop_sequences or [],
        },
    )


def _blocked_categories(candidate: types.Candidate, reason: str) -> str:
    flagged = [
        f"{rating.category.value if rating.category else '?'}"
        f" ({rating.probability.value if rating.probability else '?'})"
        for rating in candidate.safety_ratings or ()
        if rating.blocked
    ]
    return f"{reason}: {', '.join(flagged)}" if flagged else reason


def _logprobs(result: types.LogprobsResult | None) -> tuple[TokenLogprob, ...] | None:
    """Gemini's chosen and top candidates (sorted by the API), with their token ids."""
    if result is None or not result.chosen_candidates:
        return None
    tops = result.top_candidates or []
    entries = []
    for i, chosen in enumerate(result.chosen_candidates):
        alternatives = tops[i].candidates if i < len(tops) and tops[i].candidates else []
        ids = tuple(alt.token_id for alt in alternatives)
        entries.append(
            TokenLogprob(
                token=chosen.token,
                logprob=chosen.log_probability,
                top=tuple((alt.token, alt.log_probability) for alt in alternatives),
                token_id=chosen.token_id,
                top_ids=ids if ids and None not in ids else None,
            )
        )
    return tuple(entries)


def _retry_delay(details: Any) -> float | None:
    """The `RetryInfo.retryDelay` ("2s", "1.5s") a Google API error may carry."""
    error = details.get("error", details) if isinstance(details, dict) else {}
    for detail in error.get("details") or ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        match = re.fullmatch(r"(\d+(?:\.\d+)?)s", delay or "")
        if match:
            return float(match.group(1))
    return None
