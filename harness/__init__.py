"""harness: send a benchmark's prompts to many models at once, record everything, resume anywhere.

The public surface is small: configs and prompts load into frozen objects, providers subclass
`harness.api.provider.Provider` (and `harness.api.provider.BatchProvider` where their API has
batches), and every result lands in the append-only ledger (`harness.ledger.writer`; its lines:
`harness.ledger.lines`).
"""

from harness.api.provider import BatchLimits, BatchProvider, BatchStatus, Billing, Provider
from harness.api.types import (
    Completion,
    Message,
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
from harness.ledger.index import build_index
from harness.ledger.lines import read_ledger
from harness.prompts.load import Prompt, load_prompts

__all__ = [
    "AttemptTimeout",
    "BatchCancelled",
    "BatchExpired",
    "BatchLimits",
    "BatchProvider",
    "BatchStatus",
    "Billing",
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
