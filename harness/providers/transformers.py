"""`provider = "transformers"`: the legacy path for machines without vLLM (CPU, Apple), batched.

Requests that share sampling parameters go through one `model.generate` call (left-padded, in a
worker thread), up to `batch_size` at a time (by default as many as fit the GPU's memory, or half
the free RAM on a CPU, see `batch_fitting`). A batch starts once `batch_size` requests wait, or
once none has arrived for `QUIET` seconds: requests that arrive together go together. Logprobs
come from the raw logits of each step, like vLLM's: the chosen token's and the top k
alternatives, found on the device for the whole batch (one top-k per step, one transfer), their
text from a table of token strings kept per tokenizer. Turning a batch into answers runs while
the next batch generates. Above temperature 0 each request samples with a generator of its own,
seeded with its own seed, so a request gives the same text whatever batch it shares. A request
cancelled while queued never runs.

LoRA adapters are loaded once, through PEFT, onto the model; a batch holds the requests of one
adapter (or of the model itself) and runs with that adapter active (or all of them disabled).
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

from harness.api.provider import DeviceNeeds, Provider
from harness.api.types import (
    Adapter,
    Completion,
    Request,
    SamplingParams,
    TokenLogprob,
    Usage,
)
from harness.errors import FatalError
from harness.providers._hub import MemoryShape, locate, memory_shape
from harness.providers._local import (
    adapter_fit,
    needs_of,
    pinned,
    prompt_ids,
    verify_adapters,
    weights_folder,
)
from harness.providers.options import TransformersOptions

QUIET = 0.005  # seconds without a new request after which a batch starts short of `batch_size`
CPU_BATCH = 16  # the default batch where the free memory is not known (Apple's GPU)
LARGEST_BATCH = 512  # the most a batch holds by default on a GPU, however much memory is free
PROMPT_ALLOWANCE = 512  # the prompt tokens `doctor` sizes a batch for (a run: the batch's own)


@dataclass(eq=False)  # compared by identity: the queue removes exactly this one
class _Pending:
    request: Request
    ids: list[int]
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Completion | None = None
    error: BaseException | None = None


class TransformersProvider(Provider):
    """Generates with a Hugging Face model in this process, batching concurrent requests."""

    options: TransformersOptions
    holds_device = True
    serves_adapters = True

    def __init__(
        self, model: str, options: TransformersOptions, adapters: Sequence[Adapter] = ()
    ) -> None:
        super().__init__(model, options, adapters)
        # PEFT's name for each adapter: ours may hold a '.', which a module's name may not.
        self._adapters = {a.name: f"adapter{number}" for number, a in enumerate(adapters)}
        self.path = options.path or model
        self.label = self.path  # what records name: `hub/id@commit` once loaded
        self._model: Any = None
        self._tokenizer: Any = None
        self._loading = anyio.Lock()
        self._batching = anyio.Lock()
        # Requests waiting for a batch, oldest first, and how many have arrived.
        self._queue: deque[_Pending] = deque()
        self._arrived = 0
        self._pieces: dict[int, str] = {}  # each token id's text, decoded alone
        self._free = 0  # the device's free bytes once the model is loaded (0: not known)
        self._shape: MemoryShape | None = None
        self._halved = 0  # half the batch that last ran out of memory (0: none did)

    @classmethod
    def resolve(cls, model: str, options: TransformersOptions) -> TransformersOptions:
        """Pin the weights: a folder, or a hub id's revision resolved to its commit."""
        return pinned(model, options)

    @classmethod
    def adapter_problems(
        cls, model: str, options: TransformersOptions, adapter: Adapter
    ) -> list[str]:
        """Whether PEFT can put `adapter` on the model: its weights fit the model's."""
        return adapter_fit(model, options, adapter)

    @classmethod
    def logprobs_asked(cls, options: TransformersOptions) -> int:
        """`top_logprobs`."""
        return options.top_logprobs

    @classmethod
    def device_needs(cls, model: str, options: TransformersOptions) -> DeviceNeeds:
        """The weights' memory at `dtype`, and the batches it would make (see `batch_size`)."""
        weights = locate(options.path or model, options.revision)
        needs = needs_of(weights, options)
        shape = memory_shape(weights.folder, options.dtype) if weights.folder else None

        def batch(offered: int | None, max_tokens: int) -> tuple[int, str]:
            if options.batch_size is not None:
                return options.batch_size, "as configured"
            if shape is None or weights.size is None:
                return CPU_BATCH, "batch_size unset: 16 until the weights are on disk"
            where = "beside the weights"
            if offered is None:  # the CPU: half its free RAM, as a run takes it
                offered, where = free_ram() // 2 + weights.size, "of half the free RAM"
            free = max(0, offered - weights.size)
            fitting = batch_fitting(
                shape, free, PROMPT_ALLOWANCE, max_tokens, bool(options.top_logprobs)
            )
            return fitting, (
                f"batch_size unset: what fits the {free / 2**30:,.1f} GiB {where} with prompts "
                f"of {PROMPT_ALLOWANCE} tokens; a run sizes each batch by its own"
            )

        return dataclasses.replace(needs, batch=batch)

    async def start(self) -> None:
        """Load the tokenizer and model (in a worker thread)."""
        await self._loaded()

    async def generate(self, request: Request) -> Completion:
        """Queue the request; whoever holds the batch lock generates batches until its own is
        taken, then turns its last batch into answers while the next one generates."""
        await self._loaded()
        if request.adapter is not None and request.adapter not in self._adapters:
            raise FatalError(f"no adapter {request.adapter} was given to this model")
        item = _Pending(request, prompt_ids(self._tokenizer, request.messages, self.options.chat))
        self._queue.append(item)
        self._arrived += 1
        try:
            while item in self._queue:
                async with self._batching:
                    if item not in self._queue:  # taken into another's batch
                        break
                    batch, generated = await self._generate_next()
                await self._answer(batch, generated)
            await item.done.wait()
        except BaseException:  # cancelled while queued: it must never run
            if item in self._queue:
                self._queue.remove(item)
            raise
        if item.error is not None:
            raise FatalError(f"{type(item.error).__name__}: {item.error}") from item.error
        assert item.result is not None
        return item.result

    async def aclose(self) -> None:
        """Drop the model and free its memory."""
        self._model = None
        gc.collect()
        _free_cache()

    async def _loaded(self) -> None:
        if self._model is not None:  # no checkpoint: requests that arrive together queue together
            return
        async with self._loading:
            if self._model is None:
                try:
                    self._tokenizer, self._model = await anyio.to_thread.run_sync(self._load)
                except Exception as exc:
                    message = f"could not load {self.path}: {type(exc).__name__}: {exc}"
                    raise FatalError(message) from exc

    def _load(self) -> tuple[Any, Any]:
        o = self.options
        folder, self.label = weights_folder(self.path, o.revision)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=o.trust_remote_code)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=o.dtype, trust_remote_code=o.trust_remote_code
        )
        if self.adapters:
            model = self._with_adapters(model)
        model = model.to(_device(o.device)).eval()
        self._shape = memory_shape(folder, o.dtype)
        if model.device.type == "cuda":
            self._free = torch.cuda.mem_get_info(model.device)[0]
        elif model.device.type == "cpu":
            self._free = free_ram() // 2  # the rest for the run and the machine
        return tokenizer, model

    def _with_adapters(self, model: Any) -> Any:
        """The model with every adapter loaded through PEFT, checked to be the one planned."""
        from peft import PeftModel

        first, *rest = self.adapters
        model = PeftModel.from_pretrained(
            model, first.folder, adapter_name=self._adapters[first.name]
        )
        for adapter in rest:
            model.load_adapter(adapter.folder, adapter_name=self._adapters[adapter.name])
        verify_adapters(self.adapters)
        return model

    @contextmanager
    def _adapter(self, name: str | None) -> Iterator[None]:
        """`name`'s adapter active for the batch inside, or every adapter off when None."""
        if not self.adapters:
            yield
        elif name is None:
            with self._model.disable_adapter():
                yield
        else:
            self._model.set_adapter(self._adapters[name])
            yield

    async def _generate_next(self) -> tuple[list[_Pending], _Generated | Exception]:
        """Wait until a batch is full or the queue quiet, take it from the queue and generate
        it; what came out, or the exception that stopped it."""
        head = self._queue[0].request
        group, max_tokens = _group(head), head.sampling.max_tokens
        while not self._full(group, max_tokens):
            arrived = self._arrived
            await anyio.sleep(QUIET)
            if self._arrived == arrived:
                break
        # From here on not cancelled: every request taken from the queue gets its answer even
        # when the one running the batch is cancelled.
        with anyio.CancelScope(shield=True):
            taken = await self._take_and_generate(group, head.sampling)
        return taken

    async def _take_and_generate(
        self, group: tuple[Any, ...], sampling: SamplingParams
    ) -> tuple[list[_Pending], _Generated | Exception]:
        """Take a batch of `group` from the queue and generate it; a batch that runs out of the
        device's memory goes back to the queue, to be taken again in batches half as large."""
        while True:
            batch = self._fitting(self._of(group), sampling.max_tokens)
            for item in batch:
                self._queue.remove(item)
            try:
                return batch, await anyio.to_thread.run_sync(self._generate_batch, batch, sampling)
            except torch.OutOfMemoryError as exc:
                if len(batch) == 1:
                    return batch, exc
                self._queue.extendleft(reversed(batch))
                self._halved = len(batch) // 2
                _free_cache()
            except Exception as exc:  # one bad batch fails its requests, not the run
                return batch, exc

    def _full(self, group: tuple[Any, ...], max_tokens: int) -> bool:
        """Whether the queue holds a whole batch of `group`."""
        queued = self._of(group)
        batch = self._fitting(queued, max_tokens)
        longest = max(len(item.ids) for item in batch)
        return len(batch) < len(queued) or len(batch) >= self.batch_size(max_tokens, longest)

    def _of(self, group: tuple[Any, ...]) -> list[_Pending]:
        return [p for p in self._queue if _group(p.request) == group]

    def _fitting(self, queued: list[_Pending], max_tokens: int) -> list[_Pending]:
        """Of the `queued` requests of one group, those one batch takes, oldest first: as many
        as fit with the longest prompt among them (`batch_size`), at least one."""
        batch: list[_Pending] = []
        longest = 0
        for item in queued:
            longest = max(longest, len(item.ids))
            if batch and len(batch) + 1 > self.batch_size(max_tokens, longest):
                break
            batch.append(item)
        return batch

    async def _answer(self, batch: list[_Pending], generated: _Generated | Exception) -> None:
        """Turn a generated batch into its requests' answers (in a worker thread), or fail them
        with what stopped it; done even when the one answering is cancelled."""
        with anyio.CancelScope(shield=True):
            if not isinstance(generated, Exception):
                try:
                    results = await anyio.to_thread.run_sync(self._completions, batch, generated)
                except Exception as exc:
                    generated = exc
            for at, item in enumerate(batch):
                if isinstance(generated, Exception):
                    item.error = generated
                else:
                    item.result = results[at]
                item.done.set()

    def batch_size(self, max_tokens: int, prompt_tokens: int) -> int:
        """Requests per batch: the configured `batch_size`, else as many as fit the free memory
        of the GPU (on a CPU, half the free RAM) with prompts of `prompt_tokens` at `max_tokens`
        (`batch_fitting`), or `CPU_BATCH` where that is not known (Apple's GPU); never more than
        half a batch that ran out of memory."""
        if self.options.batch_size is not None:
            size = self.options.batch_size
        elif not self._free:
            size = CPU_BATCH
        else:
            logprobs = bool(self.options.top_logprobs)
            size = batch_fitting(self._shape, self._free, prompt_tokens, max_tokens, logprobs)
        return min(size, self._halved) if self._halved else size

    def _generate_batch(self, batch: list[_Pending], sampling: SamplingParams) -> _Generated:
        tokenizer, model = self._tokenizer, self._model
        width = max(len(item.ids) for item in batch)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p.ids)) + p.ids for p in batch])
        mask = torch.tensor([[0] * (width - len(p.ids)) + [1] * len(p.ids) for p in batch])
        sampler = (
            _RowSampler([p.request.sampling.seed for p in batch], sampling, model.device)
            if sampling.temperature > 0
            else None
        )
        with torch.inference_mode(), self._adapter(batch[0].request.adapter):
            out = model.generate(
                input_ids=input_ids.to(model.device),
                attention_mask=mask.to(model.device),
                max_new_tokens=sampling.max_tokens,
                do_sample=False,  # greedy: the sampler leaves one token possible per row
                logits_processor=LogitsProcessorList([sampler] if sampler else []),
                temperature=None,
                top_p=None,
                top_k=None,
                stop_strings=list(sampling.stop) or None,
                tokenizer=tokenizer if sampling.stop else None,
                pad_token_id=pad,
                output_logits=bool(self.options.top_logprobs),
                return_dict_in_generate=True,
            )
        sequences = out.sequences[:, width:]
        if not self.options.top_logprobs:
            return _Generated(sequences.cpu().tolist())
        # Per step, on the device: log-softmax of the raw logits, the top k and the chosen
        # token's logprob, then one transfer of the three.
        steps = out.logits[: self.options.max_logprob_tokens]
        if not steps:  # no position's logprobs asked for
            rows = len(batch)
            return _Generated(sequences.cpu().tolist(), [[]] * rows, [[]] * rows, [[]] * rows)
        found = [
            (*logprobs.topk(self.options.top_logprobs, dim=-1), logprobs.gather(1, chosen[:, None]))
            for logprobs, chosen in (
                (torch.log_softmax(logits.float(), dim=-1), sequences[:, step])
                for step, logits in enumerate(steps)
            )
        ]
        values, ids, chosen = (torch.stack(part, dim=1).cpu() for part in zip(*found, strict=True))
        return _Generated(
            sequences.cpu().tolist(), values.tolist(), ids.tolist(), chosen[..., 0].tolist()
        )

    def _completions(self, batch: list[_Pending], generated: _Generated) -> list[Completion]:
        return [self._completion(item, generated, row) for row, item in enumerate(batch)]

    def _completion(self, item: _Pending, generated: _Generated, row: int) -> Completion:
        tokens = generated.sequences[row]
        eos = self._tokenizer.eos_token_id
        count = tokens.index(eos) + 1 if eos in tokens else len(tokens)
        tokens = tokens[:count]
        return Completion(
            text=self._tokenizer.decode(tokens, skip_special_tokens=True),
            finish_reason="stop" if eos in tokens else "length",
            usage=Usage(len(item.ids), count),
            model=self.label,
            token_logprobs=self._logprobs(tokens, generated, row)
            if self.options.top_logprobs
            else None,
        )

    def _logprobs(
        self, tokens: list[int], generated: _Generated, row: int
    ) -> tuple[TokenLogprob, ...]:
        """Each position's chosen token and its k most likely, with their ids: a byte token
        decodes alone to '' or U+FFFD, like its neighbours, but keeps its own id."""
        shown = tokens[: self.options.max_logprob_tokens]
        values, ids, chosen = generated.values[row], generated.ids[row], generated.chosen[row]
        pieces = self._pieces_of([*shown, *(i for step in ids[: len(shown)] for i in step)])
        return tuple(
            TokenLogprob(
                token=pieces[token],
                logprob=round(chosen[step], 6),
                top=tuple(
                    (pieces[i], round(v, 6)) for v, i in zip(values[step], ids[step], strict=True)
                ),
                token_id=token,
                top_ids=tuple(ids[step]),
            )
            for step, token in enumerate(shown)
        )

    def _pieces_of(self, ids: list[int]) -> dict[int, str]:
        """The table of token strings, with every id of `ids` in it (each decoded alone, once
        per tokenizer)."""
        missing = sorted(set(ids) - self._pieces.keys())
        if missing:
            texts = self._tokenizer.batch_decode([[i] for i in missing])
            self._pieces.update(zip(missing, texts, strict=True))
        return self._pieces


@dataclass(frozen=True)
class _Generated:
    """A batch as generated, on the CPU: per row its new token ids and, with logprobs, per step
    the top k's logprobs and ids and the chosen token's logprob."""

    sequences: list[list[int]]
    values: list[list[list[float]]] = field(default_factory=list)
    ids: list[list[list[int]]] = field(default_factory=list)
    chosen: list[list[float]] = field(default_factory=list)


def batch_fitting(
    shape: MemoryShape | None, free: int, prompt_tokens: int, max_tokens: int, logprobs: bool
) -> int:
    """How many requests of `max_tokens` new tokens after prompts of `prompt_tokens` (a batch's
    longest: the others are padded to it) one batch can generate in `free` bytes of device
    memory, a fifth of it kept for what `generate` holds for a step: per sequence, its key-value
    cache and, with logprobs, each step's logits as `generate` keeps them (float32, the whole
    vocabulary). Between 1 and `LARGEST_BATCH`; `CPU_BATCH` when the model's shape is not known."""
    if shape is None or (logprobs and not shape.vocab):
        return CPU_BATCH
    per_sequence = shape.cache_bytes(prompt_tokens + max_tokens)
    if logprobs:
        per_sequence += max_tokens * shape.vocab * 4
    return max(1, min(LARGEST_BATCH, int(free * 0.8) // max(1, per_sequence)))


class _RowSampler(LogitsProcessor):  # type: ignore[misc]  # Any: transformers is not followed
    """Samples every row with its own generator, at the batch's temperature and top_p, and leaves
    only the drawn token possible, so that greedy search takes it. A row's draws come from its own
    seed alone, never from the other requests in its batch."""

    def __init__(self, seeds: list[int | None], sampling: SamplingParams, device: Any) -> None:
        self.temperature = sampling.temperature
        self.top_p = sampling.top_p
        self.generators = [_generator(seed, device) for seed in seeds]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            probs = _nucleus(probs, self.top_p)
        rows = zip(probs, self.generators, strict=True)
        drawn = torch.cat([torch.multinomial(row, 1, generator=g) for row, g in rows])
        return torch.full_like(scores, -math.inf).scatter_(1, drawn[:, None], 0.0)


def _generator(seed: int | None, device: Any) -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """`probs` with every token outside the smallest set whose mass reaches `top_p` set to 0."""
    ranked, order = probs.sort(dim=-1, descending=True)
    outside = ranked.cumsum(dim=-1) - ranked >= top_p
    outside[:, 0] = False  # the likeliest token always stays
    ranked[outside] = 0.0
    return torch.zeros_like(probs).scatter_(-1, order, ranked)


def _group(request: Request) -> tuple[Any, ...]:
    """What the requests of one batch share: the adapter, and the sampling but the seed."""
    sampling = request.sampling
    return (
        request.adapter,
        sampling.temperature,
        sampling.top_p,
        sampling.max_tokens,
        sampling.stop,
    )


def free_ram() -> int:
    """The machine's free memory in bytes (0: not known)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _free_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _device(choice: str) -> str:
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"
