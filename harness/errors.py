"""Every error the harness raises or records, in one place.

    HarnessError
    ├── InputError             bad input or set-up: the CLI prints one line and exits 2
    │   ├── ConfigError        a config file: names the file and the key path
    │   └── PromptsError       a prompts file: names the file and the item or line
    ├── LedgerWriteError       the ledger failed mid-run (disk full, replaced): exit 3
    └── ProviderError          one failed attempt, already classified by the provider
        ├── RetryableError     worth another attempt, after `retry_after` if the server said
        │   ├── RateLimited        429, quota exhausted
        │   ├── ServerError        5xx, overloaded
        │   ├── AttemptTimeout     no answer within the attempt timeout
        │   ├── ConnectionFailed   refused, reset, DNS
        │   ├── BatchExpired       a provider batch ended before the request was processed
        │   └── MalformedResponse  an answer not in its API's shape: a field missing or of the
        │                          wrong type (content a list, a logprob a string); names the field
        ├── FatalError         never retried: 400, 401, 403, 404, content policy
        └── BatchCancelled     a provider batch was cancelled before the request ran

Providers translate their SDK's exceptions into these at their boundary
(`raise RateLimited(...) from exc`), so nothing foreign reaches the scheduler. The value objects of
`harness.api.types` raise MalformedResponse themselves when built from fields of the wrong type, so
no provider can turn a malformed answer into an `ok` record. `RateLimitState` is what a server's
rate-limit headers said: a failed attempt carries it (a 429's spent limit pauses the lane), and so
does an answer (`harness.api.types.Completion`).

Every verb's exit code is one of the `EXIT_*` below: 0 every job answered (or the verb's work
done), 1 some jobs failed for good, 2 bad input or set-up (an InputError: nothing written), 3 the
ledger could not be written mid-run (a LedgerWriteError), 4 a budget cap stopped the run, 130
interrupted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.scrub import redact_urls

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_LEDGER, EXIT_BUDGET, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class HarnessError(Exception):
    """Base of everything the harness raises on purpose."""


class InputError(HarnessError):
    """Bad input or set-up; reported as one line, exit code 2."""


class ConfigError(InputError):
    """A config value is wrong; the message names the file and the key path. Further problems
    of the same file (`more`: key paths and messages) come one line each."""

    def __init__(self, file: object, path: str, message: str, *more: tuple[str, str]) -> None:
        lines = [
            f"{file}: {where}: {text}" if where else f"{file}: {text}"
            for where, text in [(path, message), *more]
        ]
        super().__init__("\n".join(lines))


class PromptsError(InputError):
    """A prompts file is wrong; the message names the file and the item or line."""


class LedgerWriteError(HarnessError):
    """The ledger could not be written mid-run; what was written stays, the run stops."""


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """What a server's response headers say is left of its limits, and when each resets."""

    requests_remaining: int | None = None
    requests_reset_seconds: float | None = None
    tokens_remaining: int | None = None
    tokens_reset_seconds: float | None = None

    def wait_seconds(self) -> float | None:
        """How long until an exhausted limit resets; None when nothing is exhausted."""
        waits = [
            reset
            for remaining, reset in (
                (self.requests_remaining, self.requests_reset_seconds),
                (self.tokens_remaining, self.tokens_reset_seconds),
            )
            if remaining is not None and remaining <= 0 and reset is not None
        ]
        return max(waits) if waits else None


class ProviderError(HarnessError):
    """One failed attempt at a request, classified by the provider that made it."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        rate_limit: RateLimitState | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        # What the response's rate-limit headers said: a spent limit pauses the whole lane.
        self.rate_limit = rate_limit

    def as_record(self) -> dict[str, object]:
        """The `error` object stored in the ledger."""
        return {
            "type": type(self).__name__,
            "message": redact_urls(self.message),  # a client's error may quote its URL
            "retryable": self.retryable,
            "status": self.status,
            "retry_after": self.retry_after,
        }


class RetryableError(ProviderError):
    """Worth another attempt."""

    retryable = True


class RateLimited(RetryableError):
    """The provider asked us to slow down (429, quota exhausted)."""


class ServerError(RetryableError):
    """The provider failed on its side (5xx, overloaded)."""


class AttemptTimeout(RetryableError):
    """No answer within the per-attempt timeout."""


class ConnectionFailed(RetryableError):
    """The connection could not be made or was cut."""


class BatchExpired(RetryableError):
    """A provider batch reached its deadline (24 h at Anthropic) before this request ran."""


class MalformedResponse(RetryableError):
    """The provider answered, but not in its API's shape: a field missing or of the wrong type,
    named in the message. Retried: a server or proxy that garbles one answer (a truncated body,
    a worker mid-upgrade) most often sends the next one whole; one that always does uses up the
    lane's attempts and fails the job with this type, for `rerun --error-type` once it is fixed."""


class FatalError(ProviderError):
    """Retrying cannot help: the request itself is wrong or refused."""


class BatchCancelled(ProviderError):
    """The provider batch that carried this request was cancelled before the request ran (on
    purpose: not retried, but `rerun --error-type BatchCancelled` runs it again)."""


def recorded_error_types() -> list[str]:
    """The error types a failed record carries: every ProviderError defined here with no subclass
    here, in the order of the tree above."""
    ours = [
        obj
        for obj in globals().values()
        if isinstance(obj, type) and issubclass(obj, ProviderError) and obj.__module__ == __name__
    ]
    return [
        cls.__name__ for cls in ours if not any(o is not cls and issubclass(o, cls) for o in ours)
    ]


def listed(values: Iterable[object]) -> str:
    """Values from data (categories, variants, scorers) listed in one line of an error: comma
    separated, a line break in one shown as `\\n` (a message breaks at "\\n" between problems
    only), "none" for no value."""
    return ", ".join(str(value).replace("\n", "\\n") for value in values) or "none"
