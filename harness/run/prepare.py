"""Validating and preparing a run: the config, prompts, models, providers and their options,
checked before anything is written, so bad input leaves no output directory and no ledger behind.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from harness.api.provider import BatchProvider, Provider
from harness.api.types import Adapter
from harness.config.adapters import read_adapter
from harness.config.models import ModelConfig
from harness.config.prices import answer_price
from harness.config.run_config import (
    ConfigDraft,
    ConfigKeys,
    RunConfig,
    Variant,
    config_error,
    make_variant,
    read_config,
    within,
)
from harness.errors import ConfigError, InputError
from harness.fields import FieldError, answer_defining
from harness.ledger.lines import LEDGER_NAME
from harness.ledger.record import Mode
from harness.ledger.sets import tree
from harness.ledger.shards import SHARDS_DIR, Shard
from harness.prompts.load import Prompt, load_prompts
from harness.prompts.selection import Selection
from harness.prompts.sources import PromptSource
from harness.providers import (
    MissingPackage,
    batch_providers,
    config_secrets,
    holds_device,
    provider_class,
    registered,
    stand_in,
)
from harness.providers.options import read_options
from harness.run.jobs import Job, Wanted, iter_jobs, iter_keys
from harness.run.preflight import Target
from harness.scrub import SECRETS, named_secrets


@dataclass(frozen=True)
class Overrides:
    """Command-line changes to a config: fewer prompts or models, other paths."""

    prompts: str | Path | None = None
    output: Path | None = None
    selection: Selection = field(default_factory=Selection)
    models: tuple[str, ...] = ()
    mode: Mode | None = None  # for every model
    shard: Shard | None = None
    inline: str | None = None  # the whole config as TOML, given on the command line (`--model`)


@dataclass(frozen=True)
class ModelSetup(Target):
    """A model (its place in the config, its validated provider options and the provider class
    that takes them), its variants, and the LoRA adapters some of them answer through."""

    variants: tuple[Variant, ...]
    adapters: tuple[Adapter, ...] = ()

    def provider(self) -> Provider:
        """The model's provider, given its adapters when it has some."""
        if self.adapters:
            return self.provider_cls(self.model.model_id, self.options, adapters=self.adapters)
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
    notes: tuple[str, ...] = ()  # planning: what a run would need that is missing here

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

    def jobs(
        self,
        wanted: Wanted,
        variants: Sequence[Variant] | None = None,
        prompts: Sequence[Prompt] | None = None,
        failed_before: Mapping[str, int] | None = None,
    ) -> Iterator[Job]:
        """The jobs of the plan (of `variants`, else all; of `prompts`, a part of the plan's in
        its order, else all) that `wanted` wants, prompt by prompt, each with its failure records
        (`failed_before`, the ledger's): the one place every count and every lane takes its jobs
        from, so a shard is kept alike."""
        variants = self.variants if variants is None else variants
        prompts = self.prompts if prompts is None else prompts
        shard = self._in_shard(wanted)
        return iter_jobs(variants, prompts, self.config.samples, shard, failed_before)

    def keys(self, wanted: Wanted) -> Iterator[tuple[Prompt, Variant, int, str]]:
        """(prompt, variant, sample, key) of each job `jobs` yields, with no job made."""
        return iter_keys(self.variants, self.prompts, self.config.samples, self._in_shard(wanted))

    def _in_shard(self, wanted: Wanted) -> Wanted:
        """`wanted`, of this run's shard's jobs only."""
        if self.shard is None:
            return wanted
        shard = self.shard
        return lambda key, prompt_hash: wanted(key, prompt_hash) and shard.holds(key)

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
        for _, variant, _, _ in self.keys(lambda key, prompt_hash: True):
            counts[variant.id] += 1
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
    draft = _read_registering_secrets(config_path)
    if draft.config is None:
        raise config_error(draft.path, draft.errors)
    return draft.config


def _read_registering_secrets(config_path: str | Path, text: str | None = None) -> ConfigDraft:
    """The config as far as it is right (see `read_config`), its secrets added to `SECRETS`
    before anything is written or shown, its problems included."""
    draft = read_config(config_path, text=text)
    SECRETS.add(*config_secrets(draft))
    return draft


def prepare(
    config_path: str | Path, overrides: Overrides = Overrides(), *, planning: bool = False
) -> Prepared:
    """Load and check the config, prompts and providers (keys, URLs); raises InputError, with
    one line per problem, before anything is written. A mistake in one part of the config does
    not hide one in another: every model's provider, options, batch mode and price, every inline
    judge model's options, and the prompts file are checked whatever else is wrong, against the
    declarations alone (no provider imported); then each model whose own entry is right is set up
    by its provider (key, URL, adapters, weights), except, while anything else is wrong, one whose
    provider holds the device (its engine takes seconds to import, its weights a look-up).
    `planning` (for `plan`, which sends nothing): no key, engine or package is needed; what a run
    would need that is missing becomes one of the `notes` (see `_planned`)."""
    draft = _read_registering_secrets(config_path, overrides.inline)
    problems = [str(config_error(draft.path, draft.errors))] if draft.errors else []
    source = draft.prompts
    if source is not None and overrides.prompts is not None:
        source = source.at(overrides.prompts)
    models = {i: _with_mode(m, overrides.mode) for i, m in draft.models.items()}
    unknown = set(overrides.models) - {m.name for m in models.values()}
    if unknown and draft.config is not None:
        known = ", ".join(m.name for m in models.values())
        problems.append(
            f"--models: no model named {', '.join(sorted(unknown))} in {draft.path} "
            f"(models: {known})"
        )
    right = []  # the chosen models whose own entry is right, by index
    for index, entry in draft.entries.items():
        if index not in models:  # wrong, told above: its options are still checked
            problems += _entry_option_problems(draft, f"models[{index}]", entry)
        elif _chosen(models[index], overrides.models):
            options, lines = _declared_problems(draft, f"models[{index}]", models[index])
            problems += lines
            right += [] if lines or options is None else [index]
    for where, judge in draft.judges.items():
        problems += _entry_option_problems(draft, where, judge, unknown_told=False)
    prompts = _prompts(draft, source, overrides, problems)
    setups, settled, notes = [], not problems, list[str]()
    for index in right:
        if not settled and holds_device(models[index].provider):
            continue
        try:
            if planning:
                setups.append(_planned(draft, index, models[index], notes))
            else:
                setups.append(_setup(draft, index, models[index]))
        except InputError as exc:  # every model's problem is told, not only the first one's
            problems.append(str(exc))
    if problems:
        raise InputError("\n".join(problems))
    assert draft.config is not None
    config = dataclasses.replace(draft.config, models=tuple(models.values()))
    # where a shard's tree and merged ledger live: the output given, which alone is read and
    # written, else the config's
    root = overrides.output if overrides.output is not None else config.output
    if overrides.output is not None:
        config = dataclasses.replace(config, output=overrides.output)
    else:
        refuse_moved_output(config)
        if overrides.shard is not None:
            config = dataclasses.replace(config, output=overrides.shard.folder(config.output))
    if source is not None:
        config = dataclasses.replace(config, prompts=source)
    prompts = overrides.selection.apply(prompts, config.seed)
    return Prepared(
        config, prompts, tuple(setups), overrides.selection, overrides.shard, root, tuple(notes)
    )


def _with_mode(model: ModelConfig, mode: Mode | None) -> ModelConfig:
    """`model`, in `mode` when the command line gives one."""
    return model if mode is None else dataclasses.replace(model, mode=mode)


def _prompts(
    draft: ConfigDraft, source: PromptSource | None, overrides: Overrides, problems: list[str]
) -> list[Prompt]:
    """The prompts `source` holds, or none with a line added to `problems` naming the config's
    key (or `--prompts`) that names them and why they cannot be read."""
    try:
        return load_prompts(source) if source is not None else []
    except InputError as exc:
        if overrides.prompts is not None:
            problems.append(f"--prompts: {exc}")
        else:
            problems.append(str(ConfigError(draft.path, "prompts", str(exc))))
        return []


def _entry_option_problems(
    config: _Loaded, where: str, entry: Any, *, unknown_told: bool = True
) -> list[str]:
    """The problems of a model table's provider and options (`where`: `models[1]`, or
    `scorers[0].model` for a judge's inline model) checked against the declarations, no provider
    imported: a `[[models]]` entry that is wrong otherwise, or a judge's inline model, whose
    options the config's loader leaves to the provider. `unknown_told`: an unknown provider is
    told already. A provider or options value of the wrong type is told already."""
    provider = entry.get("provider") if isinstance(entry, Mapping) else None
    table = entry.get("options", {}) if isinstance(entry, Mapping) else None
    if not isinstance(provider, str) or not isinstance(table, Mapping):
        return []
    try:
        registered(provider)
    except InputError as exc:
        return (
            [] if unknown_told else [str(ConfigError(config.path, f"{where}.provider", str(exc)))]
        )
    return _option_problems(config, f"{where}.options", provider, table)[1]


def _option_problems(
    config: _Loaded, where: str, provider: str, table: Mapping[str, Any]
) -> tuple[Any, list[str]]:
    """A provider's options built from `table` (read into its declaration in `OPTIONS`), or None
    and a line for each wrong one; a value whose `${...}` could not be resolved is told already."""
    try:
        return read_options(provider, table, where), []
    except FieldError as exc:
        wrong = [e for e in exc.errors if not within(e.path, _unresolved(config))]
        return None, [str(ConfigError(config.path, e.path, e.message)) for e in wrong]


def _unresolved(config: _Loaded) -> frozenset[str]:
    """The key paths whose `${...}` could not be resolved (none in a config that loaded)."""
    return config.unresolved if isinstance(config, ConfigDraft) else frozenset()


def refuse_moved_output(config: RunConfig) -> None:
    """A relative `output` (the default one too) once resolved against the working directory;
    now against the config's folder. Where only the old place holds a ledger, say so rather than
    start anew (or score, or read, nothing)."""
    written = Path(str(config.resolved.get("output", ConfigKeys.output)))
    old, new = written, config.output
    if written.is_absolute() or old.resolve() == new.resolve() or _holds_ledger(new):
        return
    if _holds_ledger(old):
        fixed = Path(os.path.relpath(old.resolve(), config.path.parent.resolve())).as_posix()
        raise ConfigError(
            config.path,
            "output",
            f'"{written}" resolves against the config\'s folder ({new}), but its ledger is at '
            f'{old}, where it resolved before: write output = "{fixed}", or give --output {old}',
        )


def _holds_ledger(folder: Path) -> bool:
    return bool(tree(folder))


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


def _batch_problems(path: Path, entry: str, model: ModelConfig, cls: type) -> list[str]:
    """A model in batch mode needs a provider with a batch API, and limits within its own."""
    limits = cls.batch_limits if issubclass(cls, BatchProvider) else None
    if model.mode != "batch":
        return []
    if limits is None:
        return [_no_batch_api(path, entry, model)]
    policy = model.batch_policy
    problems = []
    for name, value, most in (
        ("max_requests", policy.max_requests, limits.requests),
        ("max_bytes", policy.max_bytes, limits.bytes),
    ):
        if value is not None and value > most:
            message = f"must be <= {most:,} (the {model.provider} batch API's limit), got {value:,}"
            problems.append(str(ConfigError(path, f"{entry}.batch.{name}", message)))
    return problems


def _no_batch_api(path: Path, entry: str, model: ModelConfig) -> str:
    """The line for a model in batch mode whose provider has no batch API."""
    batched = ", ".join(batch_providers())
    message = f'provider "{model.provider}" has no batch API (batch mode: {batched})'
    return str(ConfigError(path, f"{entry}.mode", message))


def prepare_prompts(
    config: RunConfig, prompts: list[Prompt], models: Sequence[tuple[ModelConfig, str]]
) -> Prepared:
    """A run of prompts made in memory (a judge's, from answers) through `models`, each given
    with where the config defines it (`scorers[1].model`), checked as `prepare` checks a config's
    models; `config` says where the ledger goes and what limits the run."""
    setups = [_setup(config, index, model, where) for index, (model, where) in enumerate(models)]
    return Prepared(config, prompts, tuple(setups))


class _Loaded(Protocol):
    """What setting up a model reads of its config: a RunConfig, or a ConfigDraft."""

    @property
    def path(self) -> Path: ...
    @property
    def seed(self) -> int: ...
    @property
    def budget_usd(self) -> float | None: ...


def _setup(config: _Loaded, index: int, model: ModelConfig, entry: str | None = None) -> ModelSetup:
    """A model's provider, options and variants; InputError naming the file and model for each
    problem (see `_config_problems`; weights not to be had, a missing key). `entry` says where
    the config defines the model, `models[index]` unless given."""
    entry = entry or f"models[{index}]"
    options, lines = _declared_problems(config, entry, model)
    if lines or options is None:  # told without importing the provider
        raise InputError("\n".join(lines))
    label = f"{config.path}: {entry} ({model.name})"
    try:
        cls = provider_class(model.provider)
    except InputError as exc:
        raise InputError(f"{label}: {exc}") from None
    lines = _batch_problems(config.path, entry, model, cls)
    SECRETS.add(*named_secrets(options))
    try:
        options = cls.resolve(model.model_id, options)  # local models: the exact weights, pinned
    except InputError as exc:
        raise InputError("\n".join([*lines, f"{label}: {exc}"])) from None
    lines += [f"{label}: {problem}" for problem in cls.preflight(model.model_id, options)]
    adapters = _adapters(config, entry, model, cls, options, lines) if model.adapters else ()
    if lines:
        raise InputError("\n".join(lines))
    variants = _variants(config, model, options, adapters)
    return ModelSetup(index, model, cls, options, variants, adapters)


def _planned(config: _Loaded, index: int, model: ModelConfig, notes: list[str]) -> ModelSetup:
    """A model's set-up as `plan` needs it, which sends nothing: its variants and how its
    provider bills and runs. A provider that holds the device, or whose package is missing, is
    not imported (`stand_in`); a missing key, an engine or weights not to be had here are noted
    in `notes`, not refused. Weights not found leave the options as written: the variants' ids
    lack the pinned commit, so jobs a run did under it are not counted done (a note says so)."""
    entry = f"models[{index}]"
    options, lines = _declared_problems(config, entry, model)
    if lines or options is None:
        raise InputError("\n".join(lines))
    name = model.name
    label = f"{config.path}: {entry} ({name})"
    cls: type[Provider]
    if holds_device(model.provider):
        cls = stand_in(model.provider)
    else:
        try:
            cls = provider_class(model.provider)
        except MissingPackage as exc:
            notes.append(f"{name}: {exc} (to run it)")
            cls = stand_in(model.provider)
        except InputError as exc:
            raise InputError(f"{label}: {exc}") from None
    SECRETS.add(*named_secrets(options))
    undone = "its jobs are counted as not done (their ids need the weights' commit)"
    try:
        options = cls.resolve(model.model_id, options)
    except InputError as exc:
        notes.append(f"{name}: {exc}; {undone}")
    except ImportError as exc:  # what finds the weights is not installed (huggingface_hub)
        notes.append(
            f"{name}: its weights are not looked up ({exc.name} is not installed); {undone}"
        )
    needs = cls.key_problems(model.model_id, options)
    notes += [f"{name}: {problem} (to run it)" for problem in needs]
    wrong = [p for p in cls.preflight(model.model_id, options) if p not in needs]
    if wrong:
        raise InputError("\n".join(f"{label}: {problem}" for problem in wrong))
    adapters = []
    for adapter, path in model.adapters.items():
        try:
            adapters.append(read_adapter(adapter, path, config.path.parent))
        except InputError as exc:
            raise ConfigError(config.path, f"{entry}.adapters.{adapter}", str(exc)) from None
    variants = _variants(config, model, options, adapters)
    return ModelSetup(index, model, cls, options, variants, tuple(adapters))


def _variants(
    config: _Loaded, model: ModelConfig, options: Any, adapters: Sequence[Adapter]
) -> tuple[Variant, ...]:
    """The model's variants: each temperature, of the model itself and through each adapter."""
    identity = answer_defining(options)
    return tuple(
        make_variant(model, t, config.seed, identity, adapter)
        for adapter in (None, *adapters)
        for t in model.temperatures
    )


def _declared_problems(config: _Loaded, entry: str, model: ModelConfig) -> tuple[Any, list[str]]:
    """What the config alone says of a model, checked whole against the declarations, with no
    provider imported: its options (None when wrong) and a line for each problem (an unknown
    provider, wrong options, batch mode for a provider with no batch API, no price under a
    budget)."""
    try:
        registered(model.provider)
    except InputError as exc:
        return None, [str(ConfigError(config.path, f"{entry}.provider", str(exc)))]
    options, lines = _option_problems(config, f"{entry}.options", model.provider, model.options)
    if model.mode == "batch" and model.provider not in batch_providers():
        lines.append(_no_batch_api(config.path, entry, model))
    if budgeted(config, model) and not model.unpriced_ok and answer_price(model) is None:
        lines.append(
            f"{config.path}: {entry} ({model.name}): no price known for "
            f'"{model.model_id}" under a budget: set [models.price], or unpriced_ok = true to '
            "count its answers as free"
        )
    return options, lines


def _adapters(
    config: _Loaded,
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
            adapter = read_adapter(name, path, config.path.parent)
        except InputError as exc:
            problems.append(str(ConfigError(config.path, f"{where}.{name}", str(exc))))
            continue
        found = check(model.model_id, options, adapter)
        problems += [str(ConfigError(config.path, f"{where}.{name}", p)) for p in found]
        adapters.append(adapter)
    return tuple(adapters)


def budgeted(config: _Loaded, model: ModelConfig) -> bool:
    """Whether the run or the model has a budget."""
    return config.budget_usd is not None or model.budget_usd is not None
