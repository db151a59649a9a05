"""harness: send a benchmark's prompts to many models at once, record everything, resume anywhere.

The public surface is small: configs and prompts load into frozen objects, providers implement
`harness.api.Provider`, and every result lands in the append-only ledger (`harness.ledger`).
"""

from harness.api import Completion, Message, Provider, Request, SamplingParams, TokenLogprob, Usage
from harness.config import RunConfig, load_config
from harness.errors import (
    AttemptTimeout,
    ConnectionFailed,
    FatalError,
    HarnessError,
    InputError,
    ProviderError,
    RateLimited,
    RetryableError,
    ServerError,
)
from harness.ledger import build_index, read_ledger
from harness.prompts import Prompt, load_prompts

__all__ = [
    "AttemptTimeout",
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
