"""The provider contract: the base class every provider subclasses, with each hook the run path
calls and its default, and the batch interface.

A new provider is one module with a subclass of `Provider` that implements `generate`, plus one
line in `harness.providers.REGISTRY` (and, to take options, a dataclass in
`harness.providers.options.OPTIONS` whose fields declare types, bounds and secrets: the one place
a provider's options are declared); every other hook has a default here. A provider never
sleeps, retries or holds a semaphore: the scheduler's lane owns all of that. Failures are raised
as the `ProviderError` subclasses of `harness.errors`, translated from the SDK at the provider's
boundary. A provider whose API has a batch interface subclasses `BatchProvider` (see
`harness.run.batch_lane`).

Hooks that take `options` are classmethods: the run path asks them before any provider is built
(`prepare`, `doctor`, `plan`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from harness.api.types import Adapter, Completion, Request
from harness.errors import ProviderError, RateLimited, RetryableError


@dataclass(frozen=True, slots=True)
class Billing:
    """How a provider counts and bills tokens: whether its `input` count already includes the
    `cache_read` tokens, whether its `output` count already includes the `thoughts`, and whether
    its batch discount applies to cache reads and writes as well as input and output. The
    default is OpenAI's way (prompt_tokens include cached tokens, completion_tokens include
    reasoning), which every provider that reports neither cache nor thoughts shares."""

    input_has_cache_read: bool = True
    output_has_thoughts: bool = True
    batch_discounts_cache: bool = False


@dataclass(frozen=True, slots=True)
class DeviceNeeds:
    """What a model that holds the device needs of it: a line naming its weights as found, the
    bytes of GPU memory they need at the configured settings (None: known once downloaded), and
    the share of the GPU its engine may take."""

    weights: str
    needed: int | None
    share: float = 1.0
    # How many requests it batches, and why, given the GPU memory it is offered (None: no GPU)
    # and the requests' max_tokens; None for an engine that batches continuously
    batch: Callable[[int | None, int], tuple[int, str]] | None = None
    # The least CUDA compute capability it runs on at these settings, and why
    capability: tuple[int, int] = (0, 0)
    capability_for: str = ""
    engine: str = ""  # a line on the engine: its version, what it will run with


class Provider(ABC):
    """What every provider is. Built as `cls(model_id, options)` (cheap: nothing connects or
    loads), started with `start`, asked with `generate`, closed with `aclose`.

    Class attributes (defaults here):
    - `holds_device`: an engine in this process that takes the device; the scheduler runs such
      models one after another and `doctor` checks the GPU for them.
    - `serves_adapters`: it serves LoRA adapters (`harness.api.types.Adapter`): it is built as
      `cls(model_id, options, adapters=...)`, answers each request through `request.adapter`,
      and says in `adapter_problems` what it cannot serve.
    - `billing`: how its token counts overlap and what its batch discount covers (`Billing`).
    """

    holds_device: ClassVar[bool] = False
    serves_adapters: ClassVar[bool] = False
    billing: ClassVar[Billing] = Billing()

    def __init__(self, model: str, options: Any, adapters: Sequence[Adapter] = ()) -> None:
        """Take the model id, its options (an instance of its provider's dataclass in
        `harness.providers.options.OPTIONS`), and the adapters to serve."""
        self.model = model
        self.options = options
        self.adapters = tuple(adapters)

    @classmethod
    def resolve(cls, model: str, options: Any) -> Any:
        """The options with what will answer pinned (a local model's hub revision to its commit)
        before the variant id is made; InputError in one line when it cannot be. Default: as
        given."""
        return options

    @classmethod
    def preflight(cls, model: str, options: Any) -> list[str]:
        """Problems that would fail every request (a missing key, a malformed URL); no I/O.
        Default: none."""
        return []

    @classmethod
    def key_problems(cls, model: str, options: Any) -> list[str]:
        """Those of `preflight`'s problems that a key missing from this machine makes (`plan`,
        which sends nothing, notes them instead of refusing). Default: none."""
        return []

    @classmethod
    def adapter_problems(cls, model: str, options: Any, adapter: Adapter) -> list[str]:
        """What this provider cannot serve of `adapter`, found before the run starts; asked only
        when `serves_adapters`. Default: nothing."""
        return []

    @classmethod
    def key_source(cls, options: Any) -> str:
        """Where the API key comes from, for `doctor` (never the key). Default: none needed."""
        return "no key needed"

    @classmethod
    def logprobs_asked(cls, options: Any) -> int:
        """The alternatives per token the options ask logprobs for (0: none). Default: 0."""
        return 0

    @classmethod
    def base_url(cls, options: Any) -> str:
        """The URL requests go to as configured ("": the provider's default). Default: ""."""
        return ""

    @classmethod
    def device_needs(cls, model: str, options: Any) -> DeviceNeeds | None:
        """What the model needs of the GPU, for `doctor`; None when it needs none. Default:
        None."""
        return None

    def pushed_back(self, error: RetryableError) -> bool:
        """Whether a retryable failure is the server asking to slow down (the lane's adaptive
        concurrency counts these). Default: a rate limit."""
        return isinstance(error, RateLimited)

    async def start(self) -> None:  # noqa: B027  # a default: most providers load nothing
        """Load what the first request needs (a local model), before any attempt's timeout
        runs. Default: nothing to load."""

    @abstractmethod
    async def generate(self, request: Request) -> Completion:
        """Answer one request or raise a classified `ProviderError`."""

    async def aclose(self) -> None:  # noqa: B027  # a default: most providers hold nothing
        """Release clients and connections. Default: nothing to release."""


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """The most one provider batch may carry, from the provider's documentation."""

    requests: int
    bytes: int


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """A provider batch as last polled: the provider's own word for its state (`in_progress`,
    `JOB_STATE_RUNNING`), whether processing is over, its requests by status where the provider
    counts them, and once it ended, how long it took and the error of every request it holds no
    result for (a cancelled, expired or failed batch's reason)."""

    state: str
    ended: bool
    counts: Mapping[str, int] | None = None
    seconds: float | None = None
    error: ProviderError | None = None


class BatchProvider(Provider):
    """A provider that also speaks its API's batch interface. Custom ids are the harness's (a
    batch's label, a dash, the job's place in it); they come back with each result.
    `batch_limits`: the most one batch may carry."""

    batch_limits: ClassVar[BatchLimits]

    @abstractmethod
    def batch_item(self, request: Request, custom_id: str) -> dict[str, Any]:
        """One request in the form `submit_batch` sends it (its JSON size counts against
        `batch_limits.bytes`)."""

    @abstractmethod
    async def submit_batch(self, items: Sequence[dict[str, Any]], label: str) -> str:
        """Create a batch of `items`, labelled where the provider keeps a label; its id."""

    @abstractmethod
    async def find_batches(self, label: str, since: datetime, count: int) -> list[str]:
        """Ids of batches that may be the one submitted as `label` at `since` with `count`
        requests, when its creation was never confirmed (the run died while asking)."""

    @abstractmethod
    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Poll one batch."""

    @abstractmethod
    def batch_results(
        self, batch_id: str, request_of: Callable[[str], Request | None]
    ) -> AsyncIterator[tuple[str, Completion | ProviderError]]:
        """The ended batch's result per custom id: an answer, or the request's error classified
        as a live one would be. `request_of` gives the request a custom id was made from."""

    @abstractmethod
    async def cancel_batch(self, batch_id: str) -> None:
        """Ask the provider to cancel a batch (it ends soon after, keeping what it answered)."""
