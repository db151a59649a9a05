"""harness: send a benchmark's prompts to many models at once, record everything, resume anywhere.

The public surface is small: configs and prompts load into frozen objects, providers implement
`harness.api.types.Provider` (and `harness.api.types.BatchProvider` where their API has batches),
and every result lands in the append-only ledger (`harness.ledger.file`).
"""

from harness.api.types import (
    BatchLimits,
    BatchProvider,
    BatchStatus,
    Completion,
    Message,
    Provider,
    Request,
    SamplingParams,
    TokenLogprob,
    Usage,
)
from harness.config.run_config import RunConfig, load_config
from harness.errors import (
    AttemptTimeout,
    BatchCancelled,
    BatchExpired,
    ConnectionFailed,
    FatalError,
    HarnessError,
    InputError,
    ProviderError,
    RateLimited,
    RetryableError,
    ServerError,
)
from harness.ledger.file import build_index, read_ledger
from harness.prompts.load import Prompt, load_prompts

__all__ = [
    "AttemptTimeout",
    "BatchCancelled",
    "BatchExpired",
    "BatchLimits",
    "BatchProvider",
    "BatchStatus",
    "Completion",
    "ConnectionFailed",
    "FatalError",
    "HarnessError",
    "InputError",
    "Message",
    "Prompt",
    "Provider",
    "ProviderError",
    "RateLimited",
    "Request",
    "RetryableError",
    "RunConfig",
    "SamplingParams",
    "ServerError",
    "TokenLogprob",
    "Usage",
    "build_index",
    "load_config",
    "load_prompts",
    "read_ledger",
]
