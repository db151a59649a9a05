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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from harness.api.types import Adapter, SamplingParams
from harness.config.adapters import NAME as ADAPTER_NAME
from harness.config.models import BatchPolicy, Defaults, ModelConfig
from harness.config.prices import parse_price
from harness.config.scorers import Scorer, parse_scorers
from harness.errors import ConfigError
from harness.fields import FieldError, checked, described, from_table, option, table_values
from harness.input_files import refuse_special, utf8_problem
from harness.ledger.lines import LEDGER_NAME
from harness.prompts.sources import PromptSource, PromptTable
from harness.prompts.template import PromptTemplate, TemplateError
from harness.scrub import referenced_secrets, substituted_secrets, url_secrets


@dataclass(frozen=True)
class RetryPolicy:
    """How a lane retries one job: attempts, exponential backoff bounds (`quick_wait` while the
    lane is healthy, `initial_wait` while it is overloaded: see `harness.run.lane`), per-attempt
    timeout, the longest wait a server may ask for before the job is recorded as failed instead,
    and how long the lane holds its jobs while its server cannot be reached at all."""

    max_attempts: int = option(5, "attempts per job, the first included", min=1, max=100)
    initial_wait: float = option(
        1.0, "seconds an overloaded lane first backs off (doubling, with jitter)", min=0, max=3600
    )
    quick_wait: float = option(
        0.25, "seconds a healthy lane waits at most before its first retry", min=0, max=3600
    )
    max_wait: float = option(60.0, "the longest backoff, in seconds", min=0, max=86_400)
    attempt_timeout: float = option(120.0, "seconds per attempt", min=0.001, max=86_400)
    max_retry_after: float = option(
        300.0, "a server asking to wait longer fails the job now, to rerun later", min=0,
        max=86_400,
    )  # fmt: skip
    server_down_wait: float = option(
        120.0, "seconds a lane holds its jobs while its server refuses connections", min=0,
        max=86_400,
    )  # fmt: skip


@dataclass(frozen=True)
class Preflight:
    """`[preflight]`: whether `run` and `rerun` first send every API model one minimal request
    (see `harness.run.preflight`), and how long each may take."""

    probe: bool = option(False, "run and rerun first send every API model one request")
    timeout: float = option(30.0, "seconds each preflight request may take", min=0.001, max=3600)


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
class ConfigKeys:
    """The config file's top-level keys."""

    prompts: str | dict[str, Any] = field(
        metadata=described(
            "the prompt set: a path (relative to the config), or a [prompts] table",
            expected="a path or a table",
        )
    )
    models: tuple[dict[str, Any], ...] = field(
        metadata=described("the models to run: [[models]] tables", nonempty=True)
    )
    output: str = option("results/run", "the output directory (relative to the config's folder)")
    # Gemini takes an int32.
    seed: int = option(0, "sample i of a job is sent a seed made from it", min=0, max=2**31 - 1,
                       answer=True)  # fmt: skip
    samples: int = option(1, "answers per prompt and variant", min=1, max=1_000_000)
    grace_seconds: float = option(
        10.0, "how long Ctrl-C waits for requests in flight", min=0, max=3600
    )
    defaults: dict[str, Any] = field(
        default_factory=dict, metadata=described("values every model takes: [defaults]")
    )
    retry: dict[str, Any] = field(
        default_factory=dict, metadata=described("how a lane retries a job: [retry]")
    )
    preflight: dict[str, Any] = field(
        default_factory=dict, metadata=described("one request per model first: [preflight]")
    )
    budget_usd: float | None = option(
        None, "the most the whole ledger may spend, in USD", min=0, max=1e9
    )
    scorers: tuple[dict[str, Any], ...] = option((), "how answers get labels: [[scorers]]")


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


@dataclass(frozen=True)
class ConfigDraft:
    """A config file read as far as it is right, with every problem found in it (`errors`, in
    the order of the file): what `harness.run.prepare` goes on checking (provider options, batch
    limits, prices, the prompts file), so that one run tells every mistake at once. `config` is
    the whole config when no problem was found; `models` the `[[models]]` entries that are right
    and `entries` every one as resolved, by index; `judges` the inline model tables of judge
    scorers as resolved, by where they are (`scorers[1].model`); `unresolved` the key paths of
    the strings whose `${...}` could not be resolved (told once, never again as a wrong value)."""

    path: Path
    config: RunConfig | None
    errors: tuple[FieldError, ...]
    models: Mapping[int, ModelConfig]
    entries: Mapping[int, Any]
    judges: Mapping[str, Mapping[str, Any]]
    unresolved: frozenset[str]
    prompts: PromptSource | None
    seed: int
    budget_usd: float | None
    secrets: frozenset[str]
    option_secrets: Mapping[str, frozenset[str]]


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> RunConfig:
    """Read and validate a config file; every problem is a ConfigError naming file and key."""
    draft = read_config(path, environ)
    if draft.config is None:
        raise config_error(draft.path, draft.errors)
    return draft.config


def config_error(path: Path, errors: Sequence[FieldError]) -> ConfigError:
    """One ConfigError with a line for each of `errors` (at least one), naming `path`."""
    first, *rest = errors
    return ConfigError(path, first.path, first.message, *((e.path, e.message) for e in rest))


def read_config(
    path: str | Path, environ: Mapping[str, str] | None = None, *, text: str | None = None
) -> ConfigDraft:
    """Read a config file (or take `text` as its content) and check all of it (see
    `ConfigDraft`); a ConfigError only when there is nothing to go on: the file cannot be read or
    is no TOML."""
    path = Path(path)
    env = os.environ if environ is None else environ
    raw = _read_toml(path) if text is None else _toml(path, text)
    found: _Found = {}
    errors: list[FieldError] = []  # every problem, told at once
    resolved = _interpolate(raw, env, "", found, errors)
    unresolved = frozenset(error.path for error in errors)
    checked: list[FieldError] = []
    parts = _build(path, resolved, checked)
    errors += [error for error in checked if not within(error.path, unresolved)]
    given: dict[str, set[str]] = {}
    for key, (text, spans) in found.items():
        option = _PROVIDER_OPTION.match(key)
        if option:
            provider = str(_table_at(resolved, option[1]).get("provider", ""))
            given.setdefault(provider, set()).update(substituted_secrets(text, spans))
    secrets = frozenset(referenced_secrets(raw, env) | url_secrets(resolved))
    options = {provider: frozenset(values) for provider, values in given.items()}
    config = None
    if not errors:
        config = RunConfig(
            path=path, raw=raw, resolved=resolved, secrets=secrets, option_secrets=options,
            **parts.config,
        )  # fmt: skip
    return ConfigDraft(
        path=path,
        config=config,
        errors=tuple(errors),
        models=parts.models,
        entries=dict(_entries(resolved, "models")),
        judges={
            f"scorers[{index}].model": entry["model"]
            for index, entry in _tables(resolved, "scorers")
            if isinstance(entry.get("model"), Mapping)
        },
        unresolved=unresolved,
        # A prompt set whose path or fields name an unset variable is not read: told once.
        prompts=None if any(map(_PROMPTS_KEY.match, unresolved)) else parts.config.get("prompts"),
        seed=parts.config["seed"],
        budget_usd=parts.config["budget_usd"],
        secrets=secrets,
        option_secrets=options,
    )


def within(path: str, paths: frozenset[str]) -> bool:
    """Whether the key path `path` is one of `paths` or lies inside one of them."""
    return any(path == other or path.startswith((f"{other}.", f"{other}[")) for other in paths)


def _folder_hint(path: Path) -> str:
    """What to give instead of a folder: the run's TOML config, or one of the configs in it."""
    configs = sorted(p.name for p in path.glob("*.toml"))
    if configs:
        more = ", ..." if len(configs) > 3 else ""
        return f"give the TOML config itself (here: {', '.join(configs[:3])}{more})"
    if (path / LEDGER_NAME).exists():
        return (
            "a run's output; give the run's TOML config (status, stats, export, query and "
            "report take this folder)"
        )
    return "give the run's TOML config file"


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML; a ConfigError when it cannot be read, is not UTF-8 or not TOML."""
    refuse_special(path)
    if path.is_dir():
        raise ConfigError(path, "", f"a folder, not a config: {_folder_hint(path)}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror or exc}") from None
    bad = utf8_problem(data)
    if bad is not None:
        raise ConfigError(path, "", f"line {bad[0]}: not UTF-8 text ({bad[1]})")
    # as `read_text` gave it: line ends made "\n"
    return _toml(path, data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n"))


def _toml(path: Path, text: str) -> dict[str, Any]:
    """The TOML table of a config's text; a ConfigError when it is no TOML (one that is the
    legacy script's JSON config says how to convert it)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        if _is_json_object(text):
            raise ConfigError(
                path, "", f"this is a legacy JSON config: python -m harness convert {path}"
            ) from None
        raise ConfigError(path, "", f"invalid TOML: {exc}") from None


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(orjson.loads(text), dict)
    except orjson.JSONDecodeError:
        return False


def _table_at(table: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    """The table at a key path of the form `models[2]` or `scorers[0].model`."""
    for name, index in _PATH_STEP.findall(path):
        table = table[name] if not index else table[name][int(index)]
    return table


@dataclass(frozen=True)
class _Parts:
    """What `_build` made of a config: the RunConfig's fields that are right (by name), and the
    `[[models]]` entries that are right, by index."""

    config: dict[str, Any]
    models: dict[int, ModelConfig]


def _build(path: Path, table: Mapping[str, Any], errors: list[FieldError]) -> _Parts:
    """Every section, model and scorer checked, each problem added to `errors`. A section with
    a wrong key is still used for what is right in it, so a mistake is told once, where it is
    made, and never hides another."""
    top, wrong = table_values(ConfigKeys, table, "")
    errors += wrong
    inherited = _defaults(top.get("defaults", {}), errors)

    def model_entry(entry: Mapping[str, Any], where: str) -> ModelConfig:
        merged = {**inherited, **entry}
        if isinstance(entry.get("batch"), Mapping):  # [models.batch] adds to [defaults.batch]
            merged["batch"] = {**inherited["batch"], **entry["batch"]}
        return _model(merged, where)

    models: dict[int, ModelConfig] = {}
    for index, entry in _tables(table, "models"):  # an entry that is no table: told above
        model = checked(errors, model_entry, entry, f"models[{index}]")
        if model is not None:
            models[index] = model
    errors += _duplicates(table, "models", "model")
    written = {e["name"] for _, e in _tables(table, "models") if isinstance(e.get("name"), str)}
    broken = written - {model.name for model in models.values()}
    parts: dict[str, Any] = {
        "output": _beside(path.parent, top.get("output", ConfigKeys.output)),
        **{key: top.get(key, getattr(ConfigKeys, key)) for key in _PLAIN_KEYS},
        "models": tuple(models.values()),
    }
    if "prompts" in top:
        parts["prompts"] = checked(errors, _prompt_source, top["prompts"], path.parent)
    parts["retry"] = checked(errors, from_table, RetryPolicy, top.get("retry", {}), "retry")
    preflight = top.get("preflight", {})
    parts["preflight"] = checked(errors, from_table, Preflight, preflight, "preflight")
    scorers = [(index, entry) for index, entry in _tables(table, "scorers")]
    parts["scorers"] = parse_scorers(scorers, list(models.values()), model_entry, broken, errors)
    errors += _duplicates(table, "scorers", "scorer")
    return _Parts(parts, models)


def _beside(folder: Path, path: str) -> Path:
    """`path` relative to the config's `folder` (as it is when absolute), its `..` folded where
    that names the same place (`configs/../results` as `results`)."""
    joined = folder / path
    folded = Path(os.path.normpath(joined))
    return folded if folded.resolve() == joined.resolve() else joined


# The top-level keys a RunConfig takes as they are, each defaulting to ConfigKeys's default.
_PLAIN_KEYS = ("seed", "samples", "grace_seconds", "budget_usd")


def _defaults(table: Mapping[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    """`[defaults]`, checked once at its own path: every key of `Defaults`, each the value given
    when it is right, else its default. A model checks only the keys it sets itself."""
    given, wrong = table_values(Defaults, table, "defaults")
    errors += wrong
    repeated: list[FieldError] = []
    checked(repeated, _no_repeats, given.get("temperatures", ()), "defaults.temperatures")
    if repeated:
        errors += repeated
        del given["temperatures"]
    if "batch" in given:
        batch, wrong = table_values(BatchPolicy, given["batch"], "defaults.batch")
        errors += wrong
        given["batch"] = {key: value for key, value in given["batch"].items() if key in batch}
    return {**dataclasses.asdict(Defaults()), **given}


def _duplicates(table: Mapping[str, Any], key: str, what: str) -> list[FieldError]:
    """A FieldError for each entry of `[[key]]` whose name, as written, an earlier one has:
    every entry's, whether or not it is right otherwise."""
    errors, seen = [], set()
    for index, entry in _tables(table, key):
        name = entry.get("name")
        if not isinstance(name, str):
            continue
        if name in seen:
            errors.append(FieldError(f"{key}[{index}].name", f'duplicate {what} name "{name}"'))
        seen.add(name)
    return errors


def _model(table: Mapping[str, Any], where: str) -> ModelConfig:
    """One `[[models]]` entry, `[defaults]` merged in; a FieldError for all its problems."""
    values, errors = table_values(ModelConfig, table, where)
    name = values.get("name")
    if name is not None and (not name or any(c in name for c in "|@+")):
        errors.append(FieldError(f"{where}.name", "must be non-empty without '|', '@' or '+'"))
    if "temperatures" in values:
        checked(errors, _no_repeats, values["temperatures"], f"{where}.temperatures")
        # -0.0 is 0.0: one variant id, so a config written either way resumes the same ledger
        values["temperatures"] = tuple(t + 0.0 for t in values["temperatures"])
    checked(errors, _adapter_names, values.get("adapters", {}), f"{where}.adapters")
    checked(errors, from_table, BatchPolicy, values.get("batch", {}), f"{where}.batch")
    if values.get("price"):
        checked(errors, parse_price, values["price"], f"{where}.price")
    if errors:
        raise FieldError.of(errors)
    return ModelConfig(**values)


def _entries(table: Mapping[str, Any], key: str) -> list[tuple[int, Any]]:
    """The entries of a list of tables (`[[models]]`) as written, with their index."""
    entries = table.get(key)
    return list(enumerate(entries)) if isinstance(entries, list) else []


def _tables(table: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    """The entries of a list of tables that are tables, with their index; one that is not is
    told by the top level's check (`ConfigKeys`), once."""
    return [(index, entry) for index, entry in _entries(table, key) if isinstance(entry, Mapping)]


def _prompt_source(value: str | dict[str, Any], base: Path) -> PromptSource:
    """`prompts = "file"`, or a `[prompts]` table: where the set is, its format and split, and
    which fields hold what (see harness.prompts.load). Every problem is told at once."""
    given = value if isinstance(value, dict) else {"path": value}
    values, errors = table_values(PromptTable, given, "prompts")
    if values.get("text") and values.get("template"):
        errors.append(FieldError("prompts.template", "set either text or template, not both"))
    if "path" in values and not values["path"].strip():
        errors.append(FieldError("prompts.path", "must not be empty"))
    if values.get("template"):
        try:
            PromptTemplate(values["template"])
        except TemplateError as exc:
            errors.append(FieldError("prompts.template", str(exc)))
    if errors:
        raise FieldError.of(errors)
    return PromptSource.from_config(PromptTable(**values), base)


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
_PROMPTS_KEY = re.compile(r"prompts(?:$|\.)")
_PATH_STEP = re.compile(r"(\w+)(?:\[(\d+)\])?")
# Key path -> a resolved string and where the environment's values are in it.
_Found = dict[str, tuple[str, list[tuple[int, int]]]]


def _interpolate(
    value: Any, env: Mapping[str, str], path: str, found: _Found, errors: list[FieldError]
) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string, recursively; `found` gets, by key
    path, each resolved string the environment gave to and where its values are in it (a
    default's are not). A string that cannot be resolved stays as written, its FieldError added
    to `errors`."""
    if isinstance(value, str):
        resolved = checked(errors, _substitute, value, env, path, found)
        return value if resolved is None else resolved
    if isinstance(value, Mapping):
        return {
            k: _interpolate(v, env, f"{path}.{k}" if path else k, found, errors)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, env, f"{path}[{i}]", found, errors) for i, v in enumerate(value)]
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
