"""A run from start to end: validate everything, then pick the jobs, run the lanes, summarize.

All checks (config, prompts, provider names and options) happen in `prepare`, before anything is
written, so bad input leaves no output directory and no ledger behind.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.api.provider import BatchProvider, Provider
from harness.config.adapters import Adapter, read_adapter
from harness.config.prices import Price, answer_price
from harness.config.run_config import (
    ModelConfig,
    RetryPolicy,
    RunConfig,
    Variant,
    load_config,
    make_variant,
)
from harness.errors import (
    EXIT_BUDGET,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ConfigError,
    InputError,
    LedgerWriteError,
    listed,
)
from harness.fields import FieldError, answer_defining, from_table
from harness.input_files import refuse_special
from harness.ledger.file import LEDGER_NAME, LedgerWriter, OpenBatch, ResumeIndex, build_index
from harness.ledger.sets import Ledgers, tree
from harness.ledger.shards import SHARDS_DIR, Shard
from harness.prompts.load import Prompt, load_prompts
from harness.prompts.selection import Selection
from harness.providers import batch_providers, config_secrets, provider_class
from harness.run.batch_lane import BatchLane, reattachable
from harness.run.budget import Budget, Budgets, ledger_spend
from harness.run.jobs import Job, Wanted, iter_jobs
from harness.run.lane import Lane, LaneEvents
from harness.run.limits import LaneLimits
from harness.run.preflight import Target
from harness.run.progress import Progress
from harness.run.provenance import new_run_id, run_line
from harness.run.scheduler import LaneWork, batch_events, lane_events, run_lanes
from harness.run.summary import summarize, summary_table
from harness.scrub import SECRETS, named_secrets
from harness.terminal import command_line


@dataclass(frozen=True)
class Overrides:
    """Command-line changes to a config: fewer prompts or models, other paths."""

    prompts: str | Path | None = None
    output: Path | None = None
    selection: Selection = field(default_factory=Selection)
    models: tuple[str, ...] = ()
    mode: str | None = None  # "live" or "batch" for every model
    shard: Shard | None = None


@dataclass(frozen=True)
class ModelSetup(Target):
    """A model (its place in the config, its validated provider options and the provider class
    that takes them), its variants, and the LoRA adapters some of them answer through."""

    variants: tuple[Variant, ...]
    adapters: tuple[Adapter, ...] = ()

    def provider(self) -> Provider:
        """The model's provider, given its adapters when it has some."""
        if self.adapters:
            return self.provider_cls(  # type: ignore[call-arg]
                self.model.model_id, self.options, adapters=self.adapters
            )
        return self.provider_cls(self.model.model_id, self.options)


@dataclass(frozen=True)
class Prepared:
    """Everything a run needs, checked; nothing written yet. A sharded run's `config.output` is
    its shard's folder (or `--output`), and `root` the config's own output, where the shard tree
    and the merged ledger live."""

    config: RunConfig
    prompts: list[Prompt]
    models: tuple[ModelSetup, ...]
    selection: Selection = field(default_factory=Selection)
    shard: Shard | None = None
    root: Path | None = None

    @property
    def ledger_path(self) -> Path:
        """Where this run's ledger lives."""
        return self.config.output / LEDGER_NAME

    @property
    def variants(self) -> list[Variant]:
        """Every variant of every model, in config order."""
        return [v for setup in self.models for v in setup.variants]

    def holds(self, key: str) -> bool:
        """Whether a job is this run's to do, as far as its shard goes."""
        return self.shard is None or self.shard.holds(key)

    def jobs(self, wanted: Wanted, variants: Sequence[Variant] | None = None) -> Iterator[Job]:
        """The jobs of the plan (of `variants`, else all) that `wanted` wants, prompt by prompt:
        the one place every count and every lane takes its jobs from, so a shard is kept alike."""
        if self.shard is not None:
            shard, asked = self.shard, wanted
            wanted = lambda key, prompt_hash: asked(key, prompt_hash) and shard.holds(key)  # noqa: E731
        variants = self.variants if variants is None else variants
        return iter_jobs(variants, self.prompts, self.config.samples, wanted)

    def totals(self) -> dict[str, int]:
        """How many jobs each variant has in all (in this run's shard)."""
        return self._totals

    def totals_unsharded(self) -> dict[str, int]:
        """How many jobs each variant has in all shards together."""
        per_variant = len(self.prompts) * self.config.samples
        return {variant.id: per_variant for variant in self.variants}

    @cached_property
    def _totals(self) -> dict[str, int]:
        if self.shard is None:
            return self.totals_unsharded()
        counts = dict.fromkeys((v.id for v in self.variants), 0)
        for job in self.jobs(lambda key, prompt_hash: True):
            counts[job.variant.id] += 1
        return counts

    def reads(self) -> list[Path]:
        """The ledgers whose results this run takes as done or failed: its own; a shard's, also
        the merged ledger of its root; a run without a shard, also every shard's ledger under
        its output (see `harness.ledger.sets`)."""
        own = self.ledger_path
        if self.shard is None:
            found = tree(self.config.output)
        else:
            merged = (self.root or self.config.output) / LEDGER_NAME
            found = [merged] if merged.is_file() else []
        return _once([*found, own] if own.is_file() else found)

    def other_shards(self) -> list[Path]:
        """Shard folders under this run's root cut another way (another N): a sharded run does
        not read them, so their jobs would run again until they are merged."""
        if self.shard is None:
            return []
        root = self.root or self.config.output
        suffix = f"-of-{self.shard.count}"
        return sorted(
            folder
            for folder in (root / SHARDS_DIR).glob("*")
            if (folder / LEDGER_NAME).is_file() and not folder.name.endswith(suffix)
        )


def _once(paths: list[Path]) -> list[Path]:
    """Each file once, however it is named."""
    return list({path.resolve(): path for path in paths}.values())


def load_config_registering_secrets(config_path: str | Path) -> RunConfig:
    """The config (see `load_config`), its secrets added to `SECRETS` before anything is
    written or shown (see `harness.providers.config_secrets`)."""
    config = load_config(config_path)
    SECRETS.add(*config_secrets(config))
    return config


def prepare(config_path: str | Path, overrides: Overrides = Overrides()) -> Prepared:
    """Load and check the config, prompts and providers (keys, URLs); raises InputError, with
    one line per problem, before anything is written."""
    config = load_config_registering_secrets(config_path)
    if overrides.prompts is not None:
        config = dataclasses.replace(config, prompts=config.prompts.at(overrides.prompts))
    root = config.output
    if overrides.output is not None:
        config = dataclasses.replace(config, output=overrides.output)
    elif overrides.shard is not None:
        config = dataclasses.replace(config, output=overrides.shard.folder(config.output))
    if overrides.mode is not None:
        models = tuple(dataclasses.replace(m, mode=overrides.mode) for m in config.models)
        config = dataclasses.replace(config, models=models)
    prompts = overrides.selection.apply(load_prompts(config.prompts), config.seed)
    chosen = [(i, m) for i, m in enumerate(config.models) if _chosen(m, overrides.models)]
    unknown = set(overrides.models) - {m.name for m in config.models}
    if unknown:
        known = ", ".join(m.name for m in config.models)
        raise InputError(
            f"--models: no model named {', '.join(sorted(unknown))} in {config.path} "
            f"(models: {known})"
        )
    setups, problems = [], []
    for index, model in chosen:
        try:
            setups.append(_setup(config, index, model))
        except InputError as exc:  # every model's problem is told, not only the first one's
            problems.append(str(exc))
    if problems:
        raise InputError("\n".join(problems))
    return Prepared(config, prompts, tuple(setups), overrides.selection, overrides.shard, root)


def setup_model(config_path: str | Path, name: str) -> ModelSetup:
    """One model of a config, checked as `prepare` checks it (its provider, options and key);
    InputError when the config has no model of that name or it cannot be set up."""
    config = load_config_registering_secrets(config_path)
    for index, model in enumerate(config.models):
        if model.name == name:
            return _setup(config, index, model)
    raise InputError(f"{config.path}: no model named {name}")


def _chosen(model: ModelConfig, names: Sequence[str]) -> bool:
    return not names or model.name in names


def _check_batch(config: RunConfig, entry: str, model: ModelConfig, cls: type) -> None:
    """A model in batch mode needs a provider with a batch API, and limits within its own."""
    limits = cls.batch_limits if issubclass(cls, BatchProvider) else None
    if model.mode != "batch":
        return
    if limits is None:
        batched = ", ".join(batch_providers())
        message = f'provider "{model.provider}" has no batch API (batch mode: {batched})'
        raise ConfigError(config.path, f"{entry}.mode", message)
    policy = model.batch_policy
    for name, value, most in (
        ("max_requests", policy.max_requests, limits.requests),
        ("max_bytes", policy.max_bytes, limits.bytes),
    ):
        if value is not None and value > most:
            message = f"must be <= {most:,} (the {model.provider} batch API's limit), got {value:,}"
            raise ConfigError(config.path, f"{entry}.batch.{name}", message)


def prepare_prompts(
    config: RunConfig, prompts: list[Prompt], models: Sequence[tuple[ModelConfig, str]]
) -> Prepared:
    """A run of prompts made in memory (a judge's, from answers) through `models`, each given
    with where the config defines it (`scorers[1].model`), checked as `prepare` checks a config's
    models; `config` says where the ledger goes and what limits the run."""
    setups = [_setup(config, index, model, where) for index, (model, where) in enumerate(models)]
    return Prepared(config, prompts, tuple(setups))


def _setup(
    config: RunConfig, index: int, model: ModelConfig, entry: str | None = None
) -> ModelSetup:
    """A model's provider, options and variants; InputError naming the file and model for each
    problem (a provider not installed, bad options, weights not to be had, a missing key).
    `entry` says where the config defines the model, `models[index]` unless given."""
    entry = entry or f"models[{index}]"
    try:
        cls = provider_class(model.provider)
    except InputError as exc:
        raise ConfigError(config.path, f"{entry}.provider", str(exc)) from None
    where = f"{entry}.options"
    try:
        options = from_table(cls.Options, model.options, where)
    except FieldError as exc:
        path = exc.path if exc.path.startswith(where) else f"{where}{exc.path and '.'}{exc.path}"
        raise ConfigError(config.path, path, exc.message) from None
    SECRETS.add(*named_secrets(options))
    label = f"{config.path}: {entry} ({model.name})"
    try:
        options = cls.resolve(model.model_id, options)  # local models: the exact weights, pinned
    except InputError as exc:
        raise InputError(f"{label}: {exc}") from None
    _check_batch(config, entry, model, cls)
    problems = cls.preflight(model.model_id, options)
    if _budgeted(config, model) and not model.unpriced_ok and answer_price(model) is None:
        problems.append(
            f'no price known for "{model.model_id}" under a budget: set [models.price], '
            "or unpriced_ok = true to count its answers as free"
        )
    lines = [f"{label}: {problem}" for problem in problems]
    adapters = _adapters(config, entry, model, cls, options, lines) if model.adapters else ()
    if lines:
        raise InputError("\n".join(lines))
    identity = answer_defining(options)
    variants = tuple(
        make_variant(model, t, config.seed, identity, adapter)
        for adapter in (None, *adapters)
        for t in model.temperatures
    )
    return ModelSetup(index, model, cls, options, variants, adapters)


def _adapters(
    config: RunConfig,
    entry: str,
    model: ModelConfig,
    cls: type[Provider],
    options: Any,
    problems: list[str],
) -> tuple[Adapter, ...]:
    """The model's LoRA adapters, read and checked by the provider that will serve them; each
    problem is appended to `problems` as a line naming the file and the adapter's key."""
    where = f"{entry}.adapters"
    check = cls.adapter_problems if cls.serves_adapters else None
    if check is None:
        refusal = f'provider "{model.provider}" cannot serve LoRA adapters'
        problems.append(str(ConfigError(config.path, where, refusal)))
        return ()
    adapters = []
    for name, path in model.adapters.items():
        try:
            adapter = read_adapter(name, path)
        except InputError as exc:
            problems.append(str(ConfigError(config.path, f"{where}.{name}", str(exc))))
            continue
        found = check(model.model_id, options, adapter)
        problems += [str(ConfigError(config.path, f"{where}.{name}", p)) for p in found]
        adapters.append(adapter)
    return tuple(adapters)


async def execute(
    prepared: Prepared,
    *,
    command: str,
    wanted: Wanted,
    console: Console,
    writer: LedgerWriter | None = None,
    argv: Sequence[str] = (),
    index: ResumeIndex | None = None,
) -> int:
    """Run the wanted jobs, append to the ledger, print the summary; return the exit code.

    `writer` is the ledger opened (and locked) by `open_writer` before `index` was read from it
    (read here when not given); it is closed here. Keys that an open batch of the ledger still
    owes are never sent again: the batch is collected instead (see `harness.run.batch_lane`). A
    ledger that cannot be written at once raises InputError; one that fails mid-run stops the run
    and raises LedgerWriteError, counting what it lost.
    """
    config = prepared.config
    run_id = new_run_id()
    writer = writer or open_writer(prepared, fresh=False, console=console)
    try:
        index = index if index is not None else open_index(prepared, console)
    except BaseException:
        writer.close()
        raise
    earlier = reattachable(
        index, prepared.variants, prepared.prompts, config.samples, holds=prepared.holds
    )
    if index.awaiting:
        wanted = _not_owed(wanted, index.awaiting)
    line = run_line(
        run_id,
        command,
        config,
        prepared.prompts,
        prepared.variants,
        prepared.totals(),
        argv,
        selection=prepared.selection.as_record(config.seed),
        shard=_shard_record(prepared),
    )
    _write_run_line(writer, line)
    caps = _caps(prepared)
    batch_lanes: list[BatchLane] = []
    try:
        todo = _count_wanted(prepared, wanted)
        for variant, owed in earlier.jobs_per_variant().items():
            todo[variant] += owed
        progress = Progress(todo, console)
        events = lane_events(writer, progress)
        async with AsyncExitStack() as stack:
            work = []
            for setup in prepared.models:
                provider = setup.provider()
                stack.push_async_callback(provider.aclose)
                reattach = earlier.by_model.get(setup.model.name, [])
                if setup.model.mode == "batch" or reattach:
                    # the model's batches are priced at batch rates, even when it now runs live
                    model = dataclasses.replace(setup.model, mode="batch")
                    price = answer_price(model)
                    batch_lane = BatchLane(
                        setup.model.name,
                        provider,  # type: ignore[arg-type]
                        policy=setup.model.batch_policy,
                        retry=config.retry,
                        run_id=run_id,
                        events=batch_events(writer, progress),
                        price=price,
                        budgets=caps.of(model, price),
                        reattach=reattach,
                        known_ids=frozenset(index.batch_ids),
                    )
                    batch_lanes.append(batch_lane)
                    batch_variants = setup.variants if setup.model.mode == "batch" else ()
                    work.append(LaneWork(batch_lane, batch_variants))
                if setup.model.mode == "live":
                    lane = _live_lane(setup, provider, config.retry, run_id, events, caps)
                    work.append(LaneWork(lane, setup.variants))
            with progress:
                interrupted = await run_lanes(
                    work,
                    jobs_of=lambda variants: prepared.jobs(wanted, variants),
                    writer=writer,
                    progress=progress,
                    grace_seconds=config.grace_seconds,
                )
        writer.sync()
    except* LedgerWriteError as group:
        raise _ledger_failure(group, writer.unwritten) from None
    finally:
        writer.close()
    summary = summarize(prepared.ledger_path)
    console.print(summary_table(summary, f"{prepared.ledger_path} ({run_id})"))
    still_open = [
        batch_id or label for lane in batch_lanes for label, batch_id in lane.open.items()
    ]
    if still_open or earlier.left:
        console.print(_open_batches_note(still_open, earlier.left, prepared.config.output))
    if interrupted:
        console.print("Interrupted: run the same command again to continue.")
        return EXIT_INTERRUPTED
    if caps.stopped():
        console.print(caps.report())
        return EXIT_BUDGET
    failed = sum(t.failed for t in progress.tallies.values())
    return EXIT_FAILED if failed or still_open else EXIT_OK


def _live_lane(
    setup: ModelSetup,
    provider: Any,
    retry: RetryPolicy,
    run_id: str,
    events: LaneEvents,
    caps: _Caps,
) -> Lane:
    """The live lane of a model: its buckets, concurrency, retries and budgets."""
    model, price = setup.model, answer_price(setup.model)
    return Lane(
        model.name,
        provider,
        limits=LaneLimits(model.requests_per_minute, model.tokens_per_minute),
        concurrency=model.max_concurrency,
        retry=retry,
        run_id=run_id,
        events=events,
        price=price,
        budgets=caps.of(model, price),
    )


def _shard_record(prepared: Prepared) -> dict[str, Any] | None:
    """What the run line says of the run's shard: which one, and every shard's jobs together."""
    if prepared.shard is None:
        return None
    return {**prepared.shard.as_record(), "plan_unsharded": prepared.totals_unsharded()}


def _not_owed(wanted: Wanted, awaiting: Mapping[str, str]) -> Wanted:
    """`wanted`, less the keys an open batch still owes a record (they are never sent twice)."""
    return lambda key, prompt_hash: key not in awaiting and wanted(key, prompt_hash)


def _open_batches_note(still_open: Sequence[str], left: Sequence[OpenBatch], output: Path) -> str:
    """What the run leaves open at the provider, and what to do about it."""
    lines = []
    if still_open:
        lines.append(
            f"{len(still_open):,} batch(es) still open at the provider, left running there "
            f"({', '.join(still_open)}): run the same command again to collect their results."
        )
    if left:
        names = ", ".join(
            f"{b.batch_id or b.label} ({b.model}, {len(b.keys):,} jobs)" for b in left
        )
        lines.append(
            f"{len(left):,} open batch(es) hold jobs this run leaves out (--models, --limit, "
            f"--prompts, samples): {names}. Their jobs are not sent again; run with the options "
            "that sent them to collect them."
        )
    lines.append(f"See them with: {command_line('status', str(output))}")
    lines.append(f"Cancel them with: {command_line('batches', 'cancel', str(output))}")
    return "\n".join(lines)


@dataclass
class _Caps:
    """The run's budget caps: the ledger's, and each model's, with what the ledger already holds
    counted as spent; the lanes' `Budgets` share them."""

    ledger: Budget | None
    models: dict[str, Budget]
    lanes: list[Budgets] = dataclasses.field(default_factory=list)

    def of(self, model: ModelConfig, price: Price | None) -> Budgets | None:
        """The caps a model's lane answers to, or None when there are none."""
        caps = [c for c in (self.ledger, self.models.get(model.name)) if c is not None]
        if not caps:
            return None
        budgets = Budgets(caps, price)
        self.lanes.append(budgets)
        return budgets

    def stopped(self) -> bool:
        """Whether a cap stopped a lane with jobs left."""
        return any(budgets.exhausted for budgets in self.lanes)

    def report(self) -> str:
        """What was spent of what, and what to do next."""
        spent = [c for c in (self.ledger, *self.models.values()) if c is not None]
        figures = "; ".join(f"{c.name}: ${c.total:,.4f} of ${c.cap:,.2f}" for c in spent)
        return (
            f"Stopped at the budget ({figures}): the jobs left stay pending. "
            "Raise budget_usd and run the same command again to continue."
        )


def _budgeted(config: RunConfig, model: ModelConfig) -> bool:
    return config.budget_usd is not None or model.budget_usd is not None


def _caps(prepared: Prepared) -> _Caps:
    """The run's caps, with what the ledgers it reads hold counted as spent (a line merged and
    still in its shard counts twice: the caps err on the safe side). A shard of N gets 1/N of
    each cap (shards are the same size, give or take) and counts its own ledger's spend and 1/N
    of its root's."""
    config = prepared.config
    models = {s.model.name: s.model for s in prepared.models if s.model.budget_usd is not None}
    if config.budget_usd is None and not models:
        return _Caps(None, {})
    share = 1.0 if prepared.shard is None else 1 / prepared.shard.count
    held: dict[str, float] = defaultdict(float)
    for path in prepared.reads():
        weight = share if prepared.shard is not None and path != prepared.ledger_path else 1.0
        for name, spent in ledger_spend(path).items():
            held[name] += spent * weight
    ledger = (
        Budget("ledger", config.budget_usd * share, held=sum(held.values()))
        if config.budget_usd is not None
        else None
    )
    caps = {
        name: Budget(name, m.budget_usd * share, held=held.get(name, 0.0))
        for name, m in models.items()
    }
    return _Caps(ledger, caps)


async def run_pending(
    prepared: Prepared, *, command: str, console: Console, argv: Sequence[str] = ()
) -> int | None:
    """Run every job of `prepared` its ledger does not hold done (resuming it), as `run` does;
    the exit code, or None when nothing was left to do (and nothing was appended)."""
    writer, index = open_locked(prepared, fresh=False, console=console)
    wanted = pending(index)
    if nothing_wanted(prepared, wanted) and not batches_to_collect(prepared, index):
        writer.close()
        return None
    return await execute(
        prepared,
        command=command,
        wanted=wanted,
        console=console,
        writer=writer,
        argv=argv,
        index=index,
    )


def batches_to_collect(prepared: Prepared, index: ResumeIndex) -> bool:
    """Whether the ledger holds open batches this run can collect."""
    if not index.batches:
        return False
    config = prepared.config
    return bool(reattachable(index, prepared.variants, prepared.prompts, config.samples).by_model)


def open_locked(
    prepared: Prepared, *, fresh: bool, console: Console
) -> tuple[LedgerWriter, ResumeIndex]:
    """The ledger opened and locked (see `open_writer`), then its index read."""
    writer = open_writer(prepared, fresh=fresh, console=console)
    try:
        return writer, open_index(prepared, console)
    except BaseException:
        writer.close()
        raise


def open_writer(prepared: Prepared, *, fresh: bool, console: Console) -> LedgerWriter:
    """Open and lock the ledger (setting the old one aside when `fresh`): taken before its index
    is read, so two runs can never both decide what is left to do."""
    writer = LedgerWriter(prepared.ledger_path, fresh=fresh)
    if writer.set_aside:
        console.print(f"Started a new ledger; the old one is now {writer.set_aside}")
    return writer


def _write_run_line(writer: LedgerWriter, line: dict[str, Any]) -> None:
    """Write the run line at once; a failure is an InputError, as nothing has run yet."""
    writer.append(line)
    try:
        writer.flush()
    except LedgerWriteError as exc:
        writer.close()
        raise InputError(str(exc)) from None


def _ledger_failure(group: BaseExceptionGroup, unwritten: int) -> LedgerWriteError:
    """The one-line error for a ledger that failed mid-run, out of the task group's wrapping."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    lost = f"; {unwritten:,} finished record(s) not written, to run again on resume"
    return LedgerWriteError(f"{error}; stopped the run{lost if unwritten else ''}")


def _count_wanted(prepared: Prepared, wanted: Wanted) -> dict[str, int]:
    counts = dict.fromkeys((v.id for v in prepared.variants), 0)
    for job in prepared.jobs(wanted):
        counts[job.variant.id] += 1
    return counts


def nothing_wanted(prepared: Prepared, wanted: Wanted) -> bool:
    """True when no job of the plan is wanted (for `run`: every one is done)."""
    return next(prepared.jobs(wanted), None) is None


def pending(index: ResumeIndex) -> Wanted:
    """For `run`: every job not yet done from its prompt's current content."""
    return lambda key, prompt_hash: not index.is_done(key, prompt_hash)


def changed_content(prepared: Prepared, index: ResumeIndex) -> int:
    """How many jobs were answered from other prompt content than they have now (an edited
    prompt, or another prompts file with the same ids): they run again."""
    return sum(1 for _ in prepared.jobs(index.changed))


@dataclass(frozen=True)
class FailedJobs:
    """The failed jobs a rerun's filters pick: those this run can do (key -> error type), those
    of variants it does not have (failed jobs per variant id), how many are of its variants but
    of prompts or samples it leaves out, and how many are other shards' jobs."""

    runnable: dict[str, str]
    elsewhere: Counter[str]
    left_out: int
    other_shards: int = 0


def failed_jobs(
    prepared: Prepared,
    index: ResumeIndex,
    *,
    variants: Sequence[str] = (),
    error_types: Sequence[str] = (),
) -> FailedJobs:
    """Keys whose latest record failed, narrowed by variant (its id or its model's name) and
    error type, and sorted by whether this run can do them (its prompts: see
    harness.prompts.selection)."""
    ours = {variant.id for variant in prepared.variants}
    prompts = {prompt.id for prompt in prepared.prompts}
    samples = {str(sample) for sample in range(prepared.config.samples)}
    runnable: dict[str, str] = {}
    elsewhere: Counter[str] = Counter()
    left_out = other_shards = 0
    for key, record in index.failures.items():
        if key in index.awaiting:  # an open batch carries it again: it is not failing now
            continue
        variant, _, rest = str(key).partition("|")  # keys are `variant|prompt_id|sample`
        if not _matches(variant, record, variants, error_types):
            continue
        prompt_id, _, sample = rest.rpartition("|")
        if not prepared.holds(key):
            other_shards += 1
        elif variant not in ours:
            elsewhere[variant] += 1
        elif prompt_id in prompts and sample in samples:
            runnable[key] = _error_type(record)
        else:
            left_out += 1
    return FailedJobs(runnable, elsewhere, left_out, other_shards)


def variant_names(variant: str) -> set[str]:
    """The names `--variant` picks a variant by: its id, its model's name (every variant of the
    model) or `name+adapter` (every variant of that adapter)."""
    label = variant.split("@")[0]  # `name`, or `name+adapter`
    return {variant, label, label.partition("+")[0]}


def refuse_unknown_variants(prepared: Prepared, index: ResumeIndex, given: Sequence[str]) -> None:
    """InputError when a `--variant` names no variant of this run nor of its ledger, listing the
    names known."""
    known = {name for variant in prepared.variants for name in variant_names(variant.id)}
    if all(name in known for name in given):
        return
    recorded = {key.partition("|")[0] for keys in (index.answered, index.failed) for key in keys}
    for variant in recorded:  # a few variants, however many keys
        known |= variant_names(variant)
    unknown = [name for name in given if name not in known]
    if unknown:
        raise InputError(
            f"--variant: no variant {listed(unknown)} in {prepared.config.path} or its "
            f"ledger (known: {listed(sorted(known))})"
        )


def _matches(
    variant: str,
    record: dict[str, Any],
    variants: Sequence[str],
    error_types: Sequence[str],
) -> bool:
    """Whether a failure passes a rerun's filters (a variant by any of its `variant_names`)."""
    return (not variants or not variant_names(variant).isdisjoint(variants)) and (
        not error_types or _error_type(record) in error_types
    )


def _error_type(record: dict[str, Any]) -> str:
    error = record.get("error")
    return str(error.get("type")) if isinstance(error, dict) else "unknown"


def open_index(prepared: Prepared, console: Console, *, failures: bool = False) -> ResumeIndex:
    """The resume index of the ledgers the run reads (see `Prepared.reads`), saying how many
    unreadable lines it skipped; a shard's holds its own jobs only. With `failures`, the latest
    failures are parsed first (a rerun reads them), so those of no known shape count too."""
    path = prepared.ledger_path
    if path.is_dir():
        raise InputError(f"{path}: the ledger path is a directory, not a file")
    refuse_special(path)  # a device could be read forever
    for folder in prepared.other_shards():
        root = str(folder.parent.parent)
        console.print(
            f"{folder}: a shard cut another way; its jobs are not skipped here until merged "
            f"({command_line('merge', root, '--into', root)})",
            markup=False,
        )
    index = read_index(prepared)
    if failures:
        index.read_failures()
    if index.skipped:
        console.print(f"{_read_source(prepared)}: skipped {index.skipped} unreadable line(s)")
    return index


def read_index(prepared: Prepared) -> ResumeIndex:
    """The resume index of the ledgers the run reads; InputError when one cannot be read."""
    try:
        return build_index(_read_source(prepared), prepared.holds if prepared.shard else None)
    except OSError as exc:
        raise InputError(f"{exc.filename}: cannot read the ledger: {exc.strerror}") from None


def _read_source(prepared: Prepared) -> Ledgers | Path:
    reads = prepared.reads()
    return Ledgers(tuple(reads)) if reads else prepared.ledger_path
