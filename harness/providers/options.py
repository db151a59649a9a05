"""Every provider's options (its `[models.options]` table), declared apart from the provider.

`OPTIONS` is the one place that says what a provider's options are: the run path reads a
model's `[models.options]` into `options_of(provider)` before it imports the provider (importing
vLLM takes seconds), and so do `python -m harness options PROVIDER` and docs/config-reference.md,
on a machine without the provider's package too. Each field says its type, default, bounds,
one-line description, and whether it can change an answer (see `harness.fields.described`). A
provider that takes options adds its class here and a line to `OPTIONS`; one that takes none
needs neither (`NoOptions`). tests/harness/providers/test_options.py checks that `OPTIONS` and
`REGISTRY` agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from harness.fields import FieldError, from_table, option

# The most alternatives OpenAI gives per position, and vLLM's default `--max-logprobs`.
MAX_OPENAI_LOGPROBS = 20
# What an attempt of the simulated provider may do, in its `script`.
SimulatedOutcome = Literal["ok", "429", "500", "503", "timeout", "400", "malformed"]
# The simulated provider's failure rates, in the order of `SimulatedOptions.rates`.
_RATES = ("fatal_rate", "rate_limit_rate", "server_error_rate", "timeout_rate")

_SECONDS = {"min": 0.001, "max": 86_400}
_DAY_MS = 86_400_000  # a batch API's deadline: 24 hours
_KEY_ENV = "the environment variable that holds the API key"
_KEY = 'the API key itself, instead of api_key_env (e.g. "${MY_KEY}")'
_KEY_ENV_NEEDED = f"{_KEY_ENV} (empty only with api_key)"
_TIMEOUT = "the SDK's own timeout per request, in seconds (the lane's attempt_timeout also holds)"
_PATH = (
    "the weights: a hub id, or a folder (relative to the working directory); empty: the model id"
)
_REVISION = "the hub revision (branch, tag or commit) of the weights; pinned to its commit"
_DTYPE = 'the weights\' dtype as the engine takes it ("auto", "bfloat16", "float16", ...)'
_TRUST = "run the model repository's own Python code (needed by some architectures)"
_CHAT = "apply the model's chat template (false: send the prompt as raw text)"
_LOGPROB_CAP = "logprobs for at most this many generated tokens of an answer (unset: all)"


@dataclass(frozen=True)
class NoOptions:
    """The options of a provider that takes none: any key in `[models.options]` is refused."""


class _KeyNeeded:
    """Options of an API that always needs a key: from `api_key`, or from `api_key_env`."""

    @classmethod
    def table_problems(cls, values: Mapping[str, Any], path: str) -> list[FieldError]:
        """An empty `api_key_env` without an `api_key` leaves no key to send."""
        if values.get("api_key_env") == "" and not values.get("api_key"):
            return [FieldError(f"{path}.api_key_env", "must not be empty without api_key")]
        return []


@dataclass(frozen=True)
class AnthropicOptions(_KeyNeeded):
    """Options of `provider = "anthropic"`."""

    api_key_env: str = option("ANTHROPIC_API_KEY", _KEY_ENV_NEEDED, answer=False)
    api_key: str = option("", _KEY, answer=False)
    base_url: str = option("", "the API's URL, for a proxy or gateway (empty: Anthropic's own)")
    timeout: float = option(600.0, _TIMEOUT, **_SECONDS, answer=False)


@dataclass(frozen=True)
class GeminiOptions(_KeyNeeded):
    """Options of `provider = "gemini"`."""

    api_key_env: str = option("GEMINI_API_KEY", _KEY_ENV_NEEDED, answer=False)
    api_key: str = option("", _KEY, answer=False)
    base_url: str = option("", "the API's URL, for a proxy or gateway (empty: Google's own)")
    top_logprobs: int = option(
        0, "alternatives recorded per generated token, with logprobs (0: none)", min=0, max=20
    )
    timeout: float = option(600.0, _TIMEOUT, **_SECONDS, answer=False)


@dataclass(frozen=True)
class OpenAIOptions:
    """Options of `provider = "openai"`. An empty `api_key_env` means the server needs no key."""

    base_url: str = option(
        "https://api.openai.com/v1",
        "the server's URL, up to /v1 (vLLM, SGLang, Ollama, ...)",
        nonempty=True,
    )
    api_key_env: str = option("OPENAI_API_KEY", f"{_KEY_ENV} (empty: no key)", answer=False)
    api_key: str = option("", _KEY, answer=False)
    endpoint: Literal["chat", "completions"] = option(
        "chat", '"chat" (/chat/completions) or "completions" (raw text, for base models)'
    )
    top_logprobs: int = option(
        0,
        "the k most likely tokens recorded per generated token, with logprobs (0: none)",
        min=0,
        max=MAX_OPENAI_LOGPROBS,
    )
    # vLLM's `return_tokens_as_token_ids`: OpenAI's own servers reject unknown fields.
    token_ids: bool | None = option(
        None, "ask for token ids with logprobs (unset: every server but OpenAI's and Azure's)"
    )
    send_seed: bool = option(True, "send each job's seed (false for a server that rejects it)")
    max_connections: int = option(
        256, "open connections to the server at most", min=1, max=100_000, answer=False
    )
    timeout: float = option(600.0, "seconds per request", **_SECONDS, answer=False)


@dataclass(frozen=True)
class SimulatedOptions:
    """Options of `provider = "simulated"`: deterministic answers, latency and failures, live
    or in batches, as a model or as a judge."""

    latency_ms: float = option(
        0.0, "milliseconds each answer takes", min=0, max=3_600_000, answer=False
    )
    jitter_ms: float = option(
        0.0, "up to this many milliseconds more or less, at random", min=0, max=3_600_000,
        answer=False,
    )  # fmt: skip
    output_tokens: int = option(48, "tokens in each answer", min=1, max=10_000_000)
    top_logprobs: int = option(
        0, "alternatives recorded per generated token, with logprobs (0: none)", min=0, max=20
    )
    rate_limit_rate: float = option(
        0.0,
        "the chance that an attempt gets a 429 (the four rates add up to <= 1)",
        min=0,
        max=1,
        answer=False,
    )
    retry_after: float = option(
        1.0, "the seconds a simulated 429 asks to wait", min=0, max=3600, answer=False
    )
    server_error_rate: float = option(
        0.0,
        "the chance that an attempt gets a 500 or 503 (the rates add up to <= 1)",
        min=0,
        max=1,
        answer=False,
    )
    timeout_rate: float = option(
        0.0,
        "the chance that an attempt stalls until its timeout (the rates add up to <= 1)",
        min=0,
        max=1,
        answer=False,
    )
    fatal_rate: float = option(
        0.0,
        "the chance that an attempt gets a 400, never retried (the rates add up to <= 1)",
        min=0,
        max=1,
        answer=False,
    )
    # Attempts past the script fall back to the rates above.
    script: tuple[SimulatedOutcome, ...] = option(
        (),
        'the outcome of attempts 1, 2, ...: "ok", "429", "500", "503", "timeout", "400", '
        '"malformed"',
        answer=False,
    )
    # A judge scorer's model: labels read from the judge's prompt, not configured here.
    judge: bool = option(
        False,
        "answer as a judge scorer's model: end with VERDICT: and one of the labels the prompt "
        "lists last (as {labels} writes them), the same for the same prompt",
        answer="unless_default",
    )
    # Batch mode (mode = "batch"): a batch lives in the process that sent it.
    batch_submit_ms: float = option(
        0.0, 'mode = "batch": milliseconds creating a batch takes', min=0, max=_DAY_MS,
        answer=False,
    )  # fmt: skip
    batch_ready_ms: float = option(
        0.0,
        'mode = "batch": milliseconds from a batch\'s creation to its end, its requests done '
        "evenly over them (a batch lives in the process of the run that sent it)",
        min=0,
        max=_DAY_MS,
        answer=False,
    )
    batch_results_ms: float = option(
        0.0, 'mode = "batch": milliseconds reading an ended batch\'s results takes', min=0,
        max=_DAY_MS, answer=False,
    )  # fmt: skip
    # Taken like a real provider's key (so configs and tests can exercise secret handling).
    api_key: str = option("", "a pretend key, never sent or stored anywhere", answer=False)

    def __post_init__(self) -> None:
        problems = self.table_problems(dataclasses.asdict(self), "")
        if problems:
            raise FieldError.of(problems)

    @classmethod
    def table_problems(cls, values: Mapping[str, Any], path: str) -> list[FieldError]:
        """The failure rates given (the others at their defaults) add up to at most 1."""
        if sum(values.get(name, getattr(cls, name)) for name in _RATES) > 1:
            return [FieldError(path, "the failure rates add up to more than 1")]
        return []

    @property
    def rates(self) -> tuple[float, float, float, float]:
        """The chance of each failure: a 400, a 429, a 500, a stall (in this order)."""
        return (self.fatal_rate, self.rate_limit_rate, self.server_error_rate, self.timeout_rate)


@dataclass(frozen=True)
class LocalOptions:
    """What the options of every local-model provider (vllm, transformers) hold: where the
    weights are (`path`: a folder or a hub id, the model id when empty; `revision`), their
    precision, whether to run the model's own code, the chat template, and logprobs."""

    path: str = option("", _PATH)
    revision: str = option("", _REVISION)
    dtype: str = option("auto", _DTYPE, nonempty=True)
    trust_remote_code: bool = option(False, _TRUST, answer=False)
    chat: bool = option(True, _CHAT)
    top_logprobs: int = option(
        5, "alternatives recorded per generated token, with logprobs (0: none)", min=0, max=20
    )
    max_logprob_tokens: int | None = option(None, _LOGPROB_CAP, min=0, max=10_000_000)


@dataclass(frozen=True)
class TransformersOptions(LocalOptions):
    """Options of `provider = "transformers"`."""

    device: str = option(
        "auto",
        '"cuda" (or "cuda:N"), "mps", "cpu", or "auto" for the first of those present',
        pattern=r"auto|cpu|mps|cuda(:[0-9]+)?",
        answer=False,
    )
    batch_size: int | None = option(
        None,
        "requests generated together in one batch (unset: as many as fit the GPU's free memory, "
        "or half the free RAM on a CPU, at the requests' max_tokens, at most 512)",
        min=1,
        max=100_000,
        answer=False,
    )


@dataclass(frozen=True)
class VLLMOptions(LocalOptions):
    """Options of `provider = "vllm"`: where the weights are, and how the engine runs them."""

    max_model_len: int | None = option(
        None, "the longest context, prompt and answer (unset: the model's)", min=1, max=10_000_000
    )
    gpu_memory_utilization: float = option(
        0.9, "the share of GPU memory the engine may take", min=0.01, max=1, answer=False
    )
    # Parallelism, as vLLM's engine takes it: GPUs per model copy (tensor x pipeline), copies
    # (data), and `ray` to span the nodes of a Ray cluster the user started.
    tensor_parallel_size: int = option(
        1, "GPUs each layer is split across", min=1, max=1024, answer=False
    )
    pipeline_parallel_size: int = option(
        1, "GPUs the layers are spread across, in stages", min=1, max=1024, answer=False
    )
    data_parallel_size: int = option(
        1, "copies of the model, each on its own GPUs", min=1, max=1024, answer=False
    )
    distributed_executor_backend: Literal["", "mp", "ray"] = option(
        "", 'how the engine starts its workers: "mp", "ray" (a cluster), "" (vLLM decides)',
        answer=False,
    )  # fmt: skip
    enable_prefix_caching: bool | None = option(
        None, "reuse the KV cache of shared prompt prefixes (unset: vLLM's default)", answer=False
    )
    max_num_seqs: int | None = option(
        None, "sequences in one engine step at most (unset: vLLM's default)",
        min=1, max=1_000_000, answer=False,
    )  # fmt: skip
    max_loras: int | None = option(
        None, "LoRA adapters one batch may mix (unset: all; fewer saves GPU memory)",
        min=1, max=1024, answer=False,
    )  # fmt: skip
    # The KV cache's precision changes the numbers an answer is made from: answer-defining.
    kv_cache_dtype: Literal["auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2"] = option(
        "auto", "the KV cache's precision"
    )
    quantization: str = option("", "the weights' quantization method, as vLLM names it")
    seed: int = option(0, "the engine's own seed (each request also sends its job's)",
                       min=0, max=2**31 - 1)  # fmt: skip
    enforce_eager: bool = option(
        False, "no CUDA graphs: starts sooner, generates slower", answer=False
    )
    chunked_prefill: bool | None = option(
        None, "prefill long prompts in chunks (unset: vLLM's default; off on a CPU)", answer=False
    )


# The options of each provider by its name in `harness.providers.REGISTRY`.
OPTIONS: dict[str, type] = {
    "anthropic": AnthropicOptions,
    "gemini": GeminiOptions,
    "openai": OpenAIOptions,
    "simulated": SimulatedOptions,
    "transformers": TransformersOptions,
    "vllm": VLLMOptions,
}


def options_of(provider: str) -> type:
    """The dataclass a registered provider's `[models.options]` is read into."""
    return OPTIONS.get(provider, NoOptions)


def read_options(provider: str, table: Mapping[str, Any], where: str) -> Any:
    """`table` read into a registered provider's options (see `options_of`); a FieldError for
    each mistake, all at once (see `harness.fields.from_table`)."""
    declared = options_of(provider)
    if declared is NoOptions and table:
        raise FieldError(where, f'provider "{provider}" takes no options')
    return from_table(declared, table, where)
