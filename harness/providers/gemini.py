"""`provider = "gemini"`: Gemini through `google-genai`'s async client (aiohttp when installed).

The SDK's retries are off (`HttpRetryOptions(attempts=1)`) so the harness alone retries. A
response blocked by safety filters is a finished answer with finish_reason `safety` and the
block reason in `finish_detail`, never a retry.

Batch mode goes through Gemini's Batch Mode (`client.aio.batches`) with inline requests, which the
API takes up to 20 MB a batch; each request carries its custom id as metadata, which its response
echoes. A request's error inside a batch is a `google.rpc.Status`, classified by the HTTP status
its code maps to.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import aiohttp
import pydantic
from google import genai
from google.genai import errors, types

from harness.api.provider import BatchLimits, BatchProvider, BatchStatus, Billing
from harness.api.types import (
    Completion,
    Request,
    TokenLogprob,
    Usage,
    malformed,
    token_count,
)
from harness.errors import (
    AttemptTimeout,
    BatchCancelled,
    BatchExpired,
    ConnectionFailed,
    MalformedResponse,
    ProviderError,
    ServerError,
)
from harness.providers._http import (
    LogprobsHTTPProvider,
    api_key,
    error_for_status,
    missing_key,
    setup_problems,
)
from harness.providers.options import GeminiOptions

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
BATCH_REQUESTS = 10_000
_BLOCKED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}

# google.rpc.Code -> (its name, the HTTP status it maps to), as google/rpc/code.proto gives them.
_RPC_CODES = {
    1: ("CANCELLED", 499),
    2: ("UNKNOWN", 500),
    3: ("INVALID_ARGUMENT", 400),
    4: ("DEADLINE_EXCEEDED", 504),
    5: ("NOT_FOUND", 404),
    6: ("ALREADY_EXISTS", 409),
    7: ("PERMISSION_DENIED", 403),
    8: ("RESOURCE_EXHAUSTED", 429),
    9: ("FAILED_PRECONDITION", 400),
    10: ("ABORTED", 409),
    11: ("OUT_OF_RANGE", 400),
    12: ("UNIMPLEMENTED", 501),
    13: ("INTERNAL", 500),
    14: ("UNAVAILABLE", 503),
    15: ("DATA_LOSS", 500),
    16: ("UNAUTHENTICATED", 401),
}


class GeminiProvider(LogprobsHTTPProvider, BatchProvider):
    """Gemini via `genai.Client(...).aio.models.generate_content`, or `aio.batches` in batch
    mode."""

    options: GeminiOptions
    # 20 MB of inline requests (the Batch API's documentation); the count is the harness's own
    # bound (none is documented), which keeps a batch's inline responses, read whole, in bounds.
    batch_limits = BatchLimits(requests=BATCH_REQUESTS, bytes=20_000_000)
    # prompt_token_count includes cached content; candidates_token_count leaves out thoughts,
    # which are billed as output. Context caching is billed at its usual rate in batch mode.
    billing = Billing(input_has_cache_read=True, output_has_thoughts=False)

    def __init__(self, model: str, options: GeminiOptions) -> None:
        super().__init__(model, options)
        self._ended: dict[str, types.BatchJob] = {}  # batches seen ended, until collected
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
        """A missing key, or a base URL the client would refuse on every request."""
        return setup_problems(options.api_key, options.api_key_env, options.base_url)

    @classmethod
    def key_problems(cls, model: str, options: GeminiOptions) -> list[str]:
        """A missing key."""
        return missing_key(options.api_key, options.api_key_env, options.base_url)

    async def generate(self, request: Request) -> Completion:
        """One generateContent call, its errors translated."""
        config = self._config(request)
        with _translated(), _unreadable():
            response = await self._client.aio.models.generate_content(
                model=request.model, contents=_contents(request), config=config
            )
        return _completion(response, request, config)

    def batch_item(self, request: Request, custom_id: str) -> dict[str, Any]:
        """One inline request of a batch, carrying its custom id as metadata."""
        contents = [content.model_dump(exclude_none=True) for content in _contents(request)]
        config = self._config(request).model_dump(exclude_none=True)
        return {"contents": contents, "config": config, "metadata": {"key": custom_id}}

    async def submit_batch(self, items: Sequence[dict[str, Any]], label: str) -> str:
        """Create a batch of inline requests, its display name the label."""
        with _translated():
            job = await self._client.aio.batches.create(
                model=self.model,
                src=list(items),  # type: ignore[arg-type]  # batch_item's dicts: InlinedRequestDict
                config={"display_name": label},
            )
        return _name(job)

    async def find_batches(self, label: str, since: datetime, count: int) -> list[str]:
        """Batches whose display name is the label."""
        with _translated():
            jobs = await self._client.aio.batches.list(config={"page_size": 100})
            return [_name(job) async for job in jobs if job.display_name == label]

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Get a batch: its state (the API gives no counts); an ended one is kept for
        `batch_results`, which would otherwise fetch its inline responses again."""
        with _translated():
            job = await self._client.aio.batches.get(name=batch_id)
        if job.done:
            self._ended[batch_id] = job
        return _status(job)

    async def batch_results(
        self, batch_id: str, request_of: Callable[[str], Request | None]
    ) -> AsyncIterator[tuple[str, Completion | ProviderError]]:
        """An ended batch's inline responses, matched to requests by their metadata."""
        job = self._ended.pop(batch_id, None)
        if job is None:
            with _translated():
                job = await self._client.aio.batches.get(name=batch_id)
        answers = job.dest.inlined_responses if job.dest else None
        for answer in answers or ():
            custom_id = (answer.metadata or {}).get("key", "")
            request = request_of(custom_id)
            if request is None:  # not one of ours
                continue
            if answer.error is not None or answer.response is None:
                yield custom_id, _status_error(answer.error)
                continue
            try:
                yield custom_id, _completion(answer.response, request, self._config(request))
            except MalformedResponse as error:  # this request's answer only: the rest go on
                yield custom_id, error

    async def cancel_batch(self, batch_id: str) -> None:
        """Ask for a batch to be cancelled."""
        with _translated():
            await self._client.aio.batches.cancel(name=batch_id)

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


@contextmanager
def _translated() -> Iterator[None]:
    """The SDK's exceptions as harness errors."""
    try:
        yield
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


@contextmanager
def _unreadable() -> Iterator[None]:
    """A response the SDK cannot read into its types as MalformedResponse, naming the first
    field pydantic refused (or the SDK's own error where it fails before pydantic can say).
    Live calls only: a batch whose listing the SDK cannot read is left open, not polled on."""
    try:
        yield
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        where = "".join(
            f"[{step}]" if isinstance(step, int) else f".{step}" for step in error["loc"]
        )
        expected = error["msg"].removeprefix("Input should be ")
        raise malformed(where.lstrip("."), expected, error.get("input")) from exc
    except json.JSONDecodeError as exc:
        raise MalformedResponse(f"malformed response: not JSON ({exc})") from exc
    except (AttributeError, TypeError) as exc:  # an enum given a number, say
        raise MalformedResponse(f"malformed response: {type(exc).__name__}: {exc}") from exc


def _contents(request: Request) -> list[types.Content]:
    return [
        types.Content(
            role="model" if m.role == "assistant" else "user",
            parts=[types.Part(text=m.content)],
        )
        for m in request.messages
        if m.role != "system"
    ]


def _name(job: types.BatchJob) -> str:
    if not job.name:
        raise ProviderError("the batch API answered without a batch name")
    return job.name


def _status(job: types.BatchJob) -> BatchStatus:
    state = job.state.name if job.state else "JOB_STATE_UNSPECIFIED"
    end, start = job.end_time or job.update_time, job.create_time
    seconds = (end - start).total_seconds() if job.done and end and start else None
    error: ProviderError | None = None
    if state == "JOB_STATE_CANCELLED":
        error = BatchCancelled(f"batch {job.name} was cancelled before this request ran")
    elif state == "JOB_STATE_EXPIRED":
        error = BatchExpired(f"batch {job.name} expired before this request ran")
    elif state == "JOB_STATE_FAILED":
        error = _status_error(job.error)
    return BatchStatus(state=state, ended=job.done, seconds=seconds, error=error)


def _status_error(status: types.JobError | None) -> ProviderError:
    """A `google.rpc.Status` (a request's or a batch's error) classified like an HTTP error."""
    if status is None or status.code is None:
        return ServerError("the batch gave neither an answer nor an error for this request")
    name, http = _RPC_CODES.get(status.code, (str(status.code), 500))
    if status.code >= 100:  # an HTTP status already
        name, http = str(status.code), status.code
    return error_for_status(http, f"{name}: {status.message or ''}".rstrip(": "))


def _completion(
    response: types.GenerateContentResponse, request: Request, config: types.GenerateContentConfig
) -> Completion:
    usage = response.usage_metadata or types.GenerateContentResponseUsageMetadata()
    candidate = response.candidates[0] if response.candidates else None
    parts = candidate.content.parts if candidate and candidate.content else None
    reason = candidate.finish_reason.value if candidate and candidate.finish_reason else None
    blocked = response.prompt_feedback.block_reason if response.prompt_feedback else None
    if blocked:
        finish, detail = "safety", f"prompt blocked: {blocked.value}"
    elif candidate is None:
        raise malformed("candidates", "at least one candidate", response.candidates)
    elif candidate.content is None and reason is None:
        raise malformed(
            "candidates[0]", "content or a finishReason", candidate.model_dump(exclude_none=True)
        )
    elif reason in _BLOCKED:
        finish, detail = "safety", _blocked_categories(candidate, reason)
    else:
        finish, detail = _FINISH.get(reason or "", (reason or "unknown").lower()), None
    thoughts = token_count(usage.thoughts_token_count or 0, "usageMetadata.thoughtsTokenCount")
    return Completion(
        text="".join(part.text or "" for part in parts or () if not part.thought),
        finish_reason=finish,
        finish_detail=detail,
        usage=Usage(
            token_count(usage.prompt_token_count or 0, "usageMetadata.promptTokenCount"),
            token_count(usage.candidates_token_count or 0, "usageMetadata.candidatesTokenCount"),
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
        listed = tops[i].candidates if i < len(tops) else None
        alternatives = listed or []
        ids = tuple(alt.token_id for alt in alternatives if alt.token_id is not None)
        entries.append(
            TokenLogprob(
                token=chosen.token,
                logprob=chosen.log_probability,
                top=tuple((alt.token, alt.log_probability) for alt in alternatives),
                token_id=chosen.token_id,
                top_ids=ids if ids and len(ids) == len(alternatives) else None,
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
