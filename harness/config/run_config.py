"""Run configuration: a TOML file to typed, validated, frozen objects.

Every error names the file and the key path (`models[2].temperatures[0]: expected a number`).
Strings may say `${VAR}` or `${VAR:-default}`; both the table as written and the table as resolved
are kept, so provenance can say which server answered while secrets stay redacted. What the
environment gives to a provider's options (`[models.options]`: URLs, keys, headers, whatever the
provider sends) is secret unless known not to be (a URL's scheme, host and port):
`RunConfig.secrets` holds it, with every other secret the config shows (see harness.scrub). The
model id, sampling parameters and prompts are sent too, but every record holds them by design.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from harness.api.types import SamplingParams
from harness.config.adapters import NAME as ADAPTER_NAME
from harness.config.adapters import Adapter
from harness.config.prices import parse_price
from harness.config.scorers import Scorer, parse_scorers
from harness.errors import ConfigError
from harness.fields import FieldError, from_table
from harness.input_files import refuse_special, utf8_problem
from harness.prompts.sources import PromptSource, PromptTable
from harness.prompts.template import PromptTemplate, TemplateError
from harness.scrub import referenced_secrets, substituted_secrets, url_secrets


@dataclass(frozen=True)
class RetryPolicy:
    """How a lane retries one job: attempts, exponential backoff bounds (`quick_wait` while the
    lane is healthy, `initial_wait` while it is overloaded: see `harness.run.lane`), per-attempt
    timeout, the longest wait a server may ask for before the job is recorded as failed instead,
    and how long the lane holds its jobs while its server cannot be reached at all."""

    max_attempts: int = field(default=5, metadata={"min": 1, "max": 100})
    initial_wait: float = field(default=1.0, metadata={"min": 0, "max": 3600})
    quick_wait: float = field(default=0.25, metadata={"min": 0, "max": 3600})
    max_wait: float = field(default=60.0, metadata={"min": 0, "max": 86_400})
    attempt_timeout: float = field(default=120.0, metadata={"min": 0.001, "max": 86_400})
    max_retry_after: float = field(default=300.0, metadata={"min": 0, "max": 86_400})
    server_down_wait: float = field(default=120.0, metadata={"min": 0, "max": 86_400})


@dataclass(frozen=True)
class Preflight:
    """`[preflight]`: whether `run` and `rerun` first send every API model one minimal request
    (see `harness.run.preflight`), and how long each may take."""

    probe: bool = False
    timeout: float = field(default=30.0, metadata={"min": 0.001, "max": 3600})


@dataclass(frozen=True)
class BatchPolicy:
    """`[models.batch]` (or `[defaults.batch]`): how a model in batch mode sizes and polls its
    batches. A batch holds at most `max_requests` requests and `max_bytes` of them (each at most
    the provider's own limit, its default); the first poll comes `poll_interval` seconds after
    submission and each later one 1.5 times as long after, up to `max_poll_interval`."""

    max_requests: int | None = field(default=None, metadata={"min": 1, "max": 10_000_000})
    max_bytes: int | None = field(default=None, metadata={"min": 4096, "max": 1 << 40})
    poll_interval: float = field(default=30.0, metadata={"min": 0.001, "max": 86_400})
    max_poll_interval: float = field(default=300.0, metadata={"min": 0.001, "max": 86_400})


Mode = Literal["live", "batch"]


@dataclass(frozen=True, kw_only=True)
class Defaults:
    """Values every model takes unless it sets its own."""

    # 2.0 is the highest temperature any API takes.
    temperatures: tuple[float, ...] = field(
        default=(0.0,), metadata={"min": 0, "max": 2.0, "nonempty": True}
    )
    top_p: float = field(default=1.0, metadata={"min": 0, "max": 1})
    max_tokens: int = field(default=1024, metadata={"min": 1, "max": 10_000_000})
    stop: tuple[str, ...] = ()
    max_concurrency: int = field(default=16, metadata={"min": 1, "max": 100_000})
    # "batch": the model's jobs go through its provider's batch API (see harness.run.batch_lane);
    # this changes price and waiting, never the answer, so it is not part of the variant id.
    mode: Mode = "live"
    batch: dict[str, Any] = field(default_factory=dict)  # a BatchPolicy table


@dataclass(frozen=True, kw_only=True)
class ModelConfig(Defaults):
    """One `[[models]]` entry: a provider instance, its limits, and the temperatures to sweep."""

    name: str
    provider: str
    model: str = ""
    requests_per_minute: float | None = field(default=None, metadata={"min": 0.001, "max": 1e7})
    tokens_per_minute: float | None = field(default=None, metadata={"min": 1, "max": 1e11})
    options: dict[str, Any] = field(default_factory=dict)
    # The model's price per million tokens, replacing the shipped one (see harness.config.prices).
    price: dict[str, Any] = field(default_factory=dict)
    # What the model's lane costs per hour of wall time (a local model's GPUs).
    cost_per_gpu_hour: float | None = field(default=None, metadata={"min": 0, "max": 1e6})
    # The most this model may spend, in USD, its earlier records in the ledger included.
    budget_usd: float | None = field(default=None, metadata={"min": 0, "max": 1e9})
    # Under a budget, a model without a price is an error unless this says its cost may count as 0.
    unpriced_ok: bool = False
    # A local model's LoRA adapters, name -> folder: each a variant of its own
    # (harness.config.adapters).
    adapters: dict[str, Any] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        """The model id sent to the provider (the entry's name unless `model` is set)."""
        return self.model or self.name

    @property
    def batch_policy(self) -> BatchPolicy:
        """The model's `[models.batch]` table (checked when the config was loaded)."""
        return from_table(BatchPolicy, self.batch, "batch")


@dataclass(frozen=True)
class Variant:
    """A model with one set of sampling parameters, and the LoRA adapter it answers through (None:
    the model itself). Its id hashes `identity`: everything that can change an answer (provider,
    model id, the provider's answer-defining options, sampling, the adapter's path and content),
    so changing any of it starts a new variant instead of mixing results."""

    id: str
    model: ModelConfig
    sampling: SamplingParams
    identity: Mapping[str, Any]
    adapter: Adapter | None = None


@dataclass(frozen=True)
class RunConfig:
    """A whole run: where prompts come from, where results go, and every model."""

    path: Path
    prompts: PromptSource
    output: Path
    seed: int
    samples: int
    retry: RetryPolicy
    models: tuple[ModelConfig, ...]
    raw: Mapping[str, Any]  # as written, `${VAR}` unexpanded
    resolved: Mapping[str, Any]  # with every `${VAR}` expanded: what the run actually used
    grace_seconds: float = 10.0
    preflight: Preflight = Preflight()
    budget_usd: float | None = None  # the most the whole ledger may spend, in USD
    scorers: tuple[Scorer, ...] = ()  # `[[scorers]]`: see harness.config.scorers
    # The secret values the config holds (see the module's docstring), and by provider name what
    # the environment gave to its models' options: secret where the provider sends its options
    # away. Whatever loads a config adds them to harness.scrub.SECRETS
    # (`harness.providers.config_secrets`) before it writes or prints.
    secrets: frozenset[str] = frozenset()
    option_secrets: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _TopLevel:
    prompts: str | dict[str, Any]
    models: tuple[dict[str, Any], ...] = field(metadata={"nonempty": True})
    output: str = "results/run"
    seed: int = field(default=0, metadata={"min": 0, "max": 2**31 - 1})  # Gemini takes int32
    samples: int = field(default=1, metadata={"min": 1, "max": 1_000_000})
    grace_seconds: float = field(default=10.0, metadata={"min": 0, "max": 3600})
    defaults: dict[str, Any] = field(default_factory=dict)
    retry: dict[str, Any] = field(default_factory=dict)
    preflight: dict[str, Any] = field(default_factory=dict)
    budget_usd: float | None = field(default=None, metadata={"min": 0, "max": 1e9})
    scorers: tuple[dict[str, Any], ...] = ()


# Bumped whenever the meaning of a variant changes without its inputs changing (2: per-job seeds
# derived from the prompt id), so that records made under the old meaning never count as done.
IDENTITY_VERSION = 2


def make_variant(
    model: ModelConfig,
    temperature: float,
    seed: int,
    options: Mapping[str, Any],
    adapter: Adapter | None = None,
) -> Variant:
    """The variant of `model` at `temperature`, through `adapter` if given; `options` are the
    provider's answer-defining options (see `harness.fields.answer_defining`). The id is
    `name@t0.7-<hash>`, or `name+adapter@t0.7-<hash>`."""
    sampling = SamplingParams(
        temperature=temperature,
        top_p=model.top_p,
        max_tokens=model.max_tokens,
        seed=seed,
        stop=model.stop,
    )
    identity = {
        "version": IDENTITY_VERSION,
        "provider": model.provider,
        "model": model.model_id,
        "sampling": sampling.as_record(),
        "options": dict(options),
    }
    # Only an adapter's variants carry the key, so the model's own ids stay as they were.
    if adapter is not None:
        identity["adapter"] = adapter.identity()
    digest = hashlib.sha256(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)).hexdigest()
    label = f"{model.name}+{adapter.name}" if adapter is not None else model.name
    variant_id = f"{label}@t{temperature:g}-{digest[:6]}"
    return Variant(variant_id, model, sampling, identity, adapter)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> RunConfig:
    """Read and validate a config file; every problem is a ConfigError naming file and key."""
    path = Path(path)
    env = os.environ if environ is None else environ
    refuse_special(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror or exc}") from None
    bad = utf8_problem(data)
    if bad is not None:
        raise ConfigError(path, "", f"line {bad[0]}: not UTF-8 text ({bad[1]})")
    try:
        # as `read_text` gave it: line ends made "\n"
        raw = tomllib.loads(data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"invalid TOML: {exc}") from None
    found: _Found = {}
    try:
        config = _build(path, raw, _interpolate(raw, env, "", found))
    except FieldError as exc:
        raise ConfigError(path, exc.path, exc.message) from None
    secrets = referenced_secrets(raw, env) | url_secrets(config.resolved)
    given: dict[str, set[str]] = {}
    for key, (text, spans) in found.items():
        option = _PROVIDER_OPTION.match(key)
        if option:
            provider = str(_table_at(config.resolved, option[1]).get("provider", ""))
            given.setdefault(provider, set()).update(substituted_secrets(text, spans))
    options = {provider: frozenset(values) for provider, values in given.items()}
    return dataclasses.replace(config, secrets=frozenset(secrets), option_secrets=options)


def _table_at(table: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    """The table at a key path of the form `models[2]` or `scorers[0].model`."""
    for name, index in _PATH_STEP.findall(path):
        table = table[name] if not index else table[name][int(index)]
    return table


def _build(path: Path, raw: Mapping[str, Any], table: Mapping[str, Any]) -> RunConfig:
    top = from_table(_TopLevel, table, "")
    defaults = from_table(Defaults, top.defaults, "defaults")
    inherited = dataclasses.asdict(defaults)

    def model_entry(entry: Any, where: str) -> ModelConfig:
        if not isinstance(entry, Mapping):
            raise FieldError(where, "expected a table")
        merged = {**inherited, **entry}
        if isinstance(entry.get("batch"), Mapping):  # [models.batch] adds to [defaults.batch]
            merged["batch"] = {**defaults.batch, **entry["batch"]}
        model = from_table(ModelConfig, merged, where)
        if not model.name or any(c in model.name for c in "|@+"):
            raise FieldError(f"{where}.name", "must be non-empty without '|', '@' or '+'")
        _no_repeats(model.temperatures, f"{where}.temperatures")
        # -0.0 is 0.0: one variant id, so a config written either way resumes the same ledger
        model = dataclasses.replace(model, temperatures=tuple(t + 0.0 for t in model.temperatures))
        _adapter_names(model.adapters, f"{where}.adapters")
        from_table(BatchPolicy, model.batch, f"{where}.batch")
        if model.price:
            parse_price(model.price, f"{where}.price")
        return model

    models = [model_entry(entry, f"models[{i}]") for i, entry in enumerate(top.models)]
    names = [m.name for m in models]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise FieldError(f"models[{index}].name", f'duplicate model name "{name}"')
    base = path.parent
    return RunConfig(
        path=path,
        prompts=_prompt_source(top.prompts, base),
        output=Path(top.output),
        seed=top.seed,
        samples=top.samples,
        retry=from_table(RetryPolicy, top.retry, "retry"),
        models=tuple(models),
        raw=raw,
        resolved=table,
        grace_seconds=top.grace_seconds,
        preflight=from_table(Preflight, top.preflight, "preflight"),
        budget_usd=top.budget_usd,
        scorers=parse_scorers(top.scorers, models, model_entry),
    )


def _prompt_source(value: str | dict[str, Any], base: Path) -> PromptSource:
    """`prompts = "file"`, or a `[prompts]` table: where the set is, its format and split, and
    which fields hold what (see harness.prompts.load)."""
    given = value if isinstance(value, dict) else {"path": value}
    table = from_table(PromptTable, given, "prompts")
    if table.text and table.template:
        raise FieldError("prompts.template", "set either text or template, not both")
    if not table.path.strip():
        raise FieldError("prompts.path", "must not be empty")
    if table.template:
        try:
            PromptTemplate(table.template)
        except TemplateError as exc:
            raise FieldError("prompts.template", str(exc)) from None
    return PromptSource.from_config(table, base)


def _no_repeats(temperatures: tuple[float, ...], path: str) -> None:
    """Two equal temperatures would be one variant run twice, with two answers per job."""
    for index, temperature in enumerate(temperatures):
        if temperature in temperatures[:index]:
            raise FieldError(f"{path}[{index}]", f"temperature {temperature:g} is listed twice")


def _adapter_names(adapters: Mapping[str, Any], path: str) -> None:
    """Each adapter is `name = "folder"`, its name a plain word (it shows in variant ids)."""
    for name, folder in adapters.items():
        if not ADAPTER_NAME.fullmatch(name):
            raise FieldError(
                f"{path}.{name}",
                "an adapter's name is 1-64 letters, digits, '_', '.' or '-', starting with a "
                "letter or digit",
            )
        if not isinstance(folder, str) or not folder.strip():
            raise FieldError(f"{path}.{name}", "expected the adapter's folder, a non-empty string")


_UNSUPPORTED = "unsupported ${...} form: use ${VAR} or ${VAR:-default}"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Key paths of provider options: a model's, or an inline judge model's (`scorers[0].model`).
_PROVIDER_OPTION = re.compile(r"(models\[\d+\]|scorers\[\d+\]\.model)\.options[.\[]")
_PATH_STEP = re.compile(r"(\w+)(?:\[(\d+)\])?")
# Key path -> a resolved string and where the environment's values are in it.
_Found = dict[str, tuple[str, list[tuple[int, int]]]]


def _interpolate(value: Any, env: Mapping[str, str], path: str, found: _Found) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string, recursively; `found` gets, by key
    path, each resolved string the environment gave to and where its values are in it (a
    default's are not)."""
    if isinstance(value, str):
        return _substitute(value, env, path, found)
    if isinstance(value, Mapping):
        return {
            k: _interpolate(v, env, f"{path}.{k}" if path else k, found) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, env, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def _substitute(value: str, env: Mapping[str, str], path: str, found: _Found) -> str:
    """One string with its `${...}` replaced (see `_interpolate`)."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    end = 0
    for match in _ENV_REF.finditer(value):
        name, default = match.group(1), match.group(2)
        if default is not None and "${" in default:  # no nesting: ${A:-${B}}
            raise FieldError(path, _UNSUPPORTED)
        parts.append(value[end : match.start()])
        if name in env:
            start = sum(map(len, parts))
            spans.append((start, start + len(env[name])))
            parts.append(env[name])
        elif default is not None:
            parts.append(default)
        else:
            raise FieldError(path, f"environment variable {name} is not set")
        end = match.end()
    if "${" in _ENV_REF.sub("", value):
        raise FieldError(path, _UNSUPPORTED)
    resolved = "".join(parts) + value[end:]
    if spans:
        found[path] = (resolved, spans)
    return resolved
