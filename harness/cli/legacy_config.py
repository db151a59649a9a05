"""The legacy script's JSON config as this harness's TOML (`harness convert`): every key it had
mapped to its equivalent, each choice that is not one-to-one said, each key that has no
equivalent refused with a line of its own.

The legacy config, as the script read it (paths relative to where it ran):

    {"prompts_file": "prompts.json", "output_dir": "results", "output_file": "results/all.json",
     "seed": 42, "max_retries": 3, "retry_delay": 2.0, "timeout": 120,
     "requests_per_minute": 60, "temperature": 0.7, "max_tokens": 1024, "top_p": 1.0,
     "num_samples": 1, "top_logprobs": 5,
     "models": [{"name": "claude", "type": "anthropic", "model": "claude-sonnet-4-5",
                 "temperature": 0.0, "max_tokens": 512, "top_p": 1.0, "top_logprobs": 5,
                 "base_url": "...", "api_key_env": "ANTHROPIC_API_KEY", "api_key": "..."}]}
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from harness.providers.options import OPTIONS

# The legacy model `type`s and the provider that answers for each.
PROVIDERS = {
    "anthropic": "anthropic",
    "claude": "anthropic",
    "gemini": "gemini",
    "google": "gemini",
    "openai": "openai",
    "openai_compatible": "openai",
    "vllm": "vllm",
    "local": "vllm",
    "transformers": "transformers",
    "hf": "transformers",
    "mock": "simulated",
}
# The legacy key a provider option comes from, and the providers that take it.
_OPTIONS = {
    "base_url": ("anthropic", "gemini", "openai"),
    "api_key_env": ("anthropic", "gemini", "openai"),
    "top_logprobs": ("gemini", "openai", "vllm", "transformers", "simulated"),
}
_SAMPLING = ("max_tokens", "top_p")  # the same name in both


@dataclass
class Converted:
    """The TOML a legacy config amounts to, what was decided on the way (`choices`), and what
    could not be mapped (`problems`: when there are any, nothing is to be written)."""

    table: dict[str, Any] = field(default_factory=dict)
    choices: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)  # a TOML key path: its legacy key

    def mapped(self, key: str, legacy: str) -> None:
        """Note that the config's `key` comes from the legacy `legacy`."""
        self.origins[key] = legacy

    def legacy_terms(self, line: str) -> str:
        """A problem line of the converted config (`retry.initial_wait: must be >= 0`) in the
        legacy config's terms (`retry_delay (as retry.initial_wait): must be >= 0`)."""
        key, colon, rest = line.partition(": ")
        for known in sorted(self.origins, key=len, reverse=True):
            if key == known or key.startswith((f"{known}.", f"{known}[")):
                legacy = f"{self.origins[known]}{key[len(known) :]}"
                return line if legacy == key else f"{legacy} (as {key}){colon}{rest}"
        return line

    def checkable(self) -> bool:
        """Whether there is a config to check: a prompt set and a model."""
        return "prompts" in self.table and bool(self.table.get("models"))

    def toml(self, source: Path) -> str:
        """The config file's text, its choices as comments at the top."""
        notes = "".join(f"# - {choice}\n" for choice in self.choices)
        return f"# Converted from {source} by `harness convert`:\n{notes}\n" + tomli_w.dumps(
            self.table
        )


def convert(legacy: Mapping[str, Any], target: Path, origin: Path) -> Converted:
    """`legacy` (a config the script read with `origin` as its working directory) as a config
    written at `target`, whose relative paths resolve against its folder."""
    done = Converted()
    if _deeper_than(legacy, _DEEPEST):
        done.problems.append(f"nested deeper than {_DEEPEST} levels: no config is")
        return done
    top = _without_nulls(legacy, "", done)
    _paths(top, target, origin, done)
    _retries(top, done)
    _sampling(top, done.table.setdefault("defaults", {}), "", "defaults.", done)
    if not done.table["defaults"]:
        del done.table["defaults"]
    rate = top.pop("requests_per_minute", None)
    models = top.pop("models", None)
    if not isinstance(models, list) or not models:
        done.problems.append("models: expected a list of at least one model")
        models = []
    done.table["models"] = []
    for index, model in enumerate(models):
        table = _model(model, f"models[{index}]", f"models[{len(done.table['models'])}]", top, done)
        if table is not None:
            done.table["models"].append(table)
    top.pop("top_logprobs", None)  # given to each model that takes it
    if rate is not None:
        _rate(rate, done)
    done.problems += [f"{_key(k)}: no equivalent here; remove it, or map it by hand" for k in top]
    return done


_DEEPEST = 16  # levels of nesting a legacy config may have (it has 3)


def _deeper_than(value: Any, most: int) -> bool:
    """Whether `value` nests objects or lists more than `most` levels deep (looked at without
    recursion, so any depth is told rather than crashing)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > most:
            return True
        if isinstance(item, Mapping):
            stack += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, depth + 1) for v in item]
    return False


def _key(key: str) -> str:
    """A key as a problem line shows it: quoted when it holds a control character."""
    return json.dumps(key) if any(ord(c) < 32 or ord(c) == 127 for c in key) else key


def _without_nulls(table: Mapping[str, Any], where: str, done: Converted) -> dict[str, Any]:
    """`table` less its nulls, at any depth (TOML has none), each told as a problem."""

    def kept(value: Any, path: str) -> Any:
        if isinstance(value, Mapping):
            return {
                k: kept(v, f"{path}.{_key(k)}" if path else _key(k))
                for k, v in value.items()
                if v is not None or _null(f"{path}.{_key(k)}" if path else _key(k))
            }
        if isinstance(value, list):
            return [
                kept(v, f"{path}[{i}]")
                for i, v in enumerate(value)
                if v is not None or _null(f"{path}[{i}]")
            ]
        return value

    def _null(path: str) -> bool:
        done.problems.append(f"{path}: null has no equivalent in TOML; remove it or give a value")
        return False

    return dict(kept(table, where))


def _paths(top: dict[str, Any], target: Path, origin: Path, done: Converted) -> None:
    """The prompts file and the output, from where the script ran to the config's folder."""
    here = target.parent
    prompts = top.pop("prompts_file") if "prompts_file" in top else top.pop("prompts", None)
    if isinstance(prompts, str):
        done.table["prompts"] = _moved(prompts, origin, here)
        done.mapped("prompts", "prompts_file")
    else:
        done.problems.append("prompts_file: expected the path of the prompts file")
    output_dir, output_file = top.pop("output_dir", None), top.pop("output_file", None)
    if output_file is not None and isinstance(output_file, str):
        folder = Path(output_file).with_suffix("")
        combined = output_file if folder != Path(output_file) else f"{output_file}.json"
        done.table["output"] = _moved(str(folder), origin, here)
        done.mapped("output", "output_file")
        done.choices.append(
            f"output_file {output_file}: the results go to the folder {folder} (a ledger, "
            f"resumable); the combined file: python -m harness export {folder} --format "
            f"pilot-json --to {combined}"
        )
        if isinstance(output_dir, str):
            done.choices.append(f"output_dir {output_dir}: left out; output_file gives the output")
    elif isinstance(output_dir, str):
        done.table["output"] = _moved(output_dir, origin, here)
        done.mapped("output", "output_dir")
    for key, value in (("output_dir", output_dir), ("output_file", output_file)):
        if value is not None and not isinstance(value, str):
            done.problems.append(f"{key}: expected a path")
    if here.resolve() != origin.resolve():
        done.choices.append(
            f"paths were relative to where the script ran ({origin}); they are written relative "
            f"to the config's folder ({here})"
        )
    if "seed" in top:
        done.table["seed"] = top.pop("seed")
        done.mapped("seed", "seed")
    for old in ("num_samples", "samples"):
        if old in top:
            done.table["samples"] = top.pop(old)
            done.mapped("samples", old)
            break


def _moved(path: str, origin: Path, here: Path) -> str:
    """`path` (relative to `origin`) relative to `here`, or as it is when absolute; by where it
    leads (a link's `..` goes up from the link's target, as the script's open did)."""
    if Path(path).is_absolute():
        return path
    return Path(os.path.relpath((origin / path).resolve(), here.resolve())).as_posix()


def _retries(top: dict[str, Any], done: Converted) -> None:
    retry: dict[str, Any] = {}
    retries = top.pop("max_retries", None)
    if isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0:
        retry["max_attempts"] = retries + 1
        done.mapped("retry.max_attempts", "max_retries")
        done.choices.append(
            f"max_retries = {retries} (retries after the first try) is max_attempts = "
            f"{retries + 1} (tries in all)"
        )
    elif retries is not None:
        done.problems.append(f"max_retries: expected a whole number >= 0, got {retries!r}")
    for old, new in (("retry_delay", "initial_wait"), ("timeout", "attempt_timeout")):
        if old in top:
            retry[new] = top.pop(old)
            done.mapped(f"retry.{new}", old)
            done.choices.append(f"{old} is [retry] {new}")
    if retry:
        done.table["retry"] = retry


def _sampling(
    source: dict[str, Any], into: dict[str, Any], where: str, at: str, done: Converted
) -> None:
    """`temperature` as a sweep of one (`temperatures` as it is), `max_tokens` and `top_p`;
    `where` is the legacy key path's start, `at` the config's."""
    if "temperature" in source and "temperatures" in source:
        done.problems.append(f"{where}temperature: give temperature or temperatures, not both")
    if "temperature" in source:
        into["temperatures"] = [source.pop("temperature")]
        done.mapped(f"{at}temperatures[0]", f"{where}temperature")
    if "temperatures" in source:
        into["temperatures"] = source.pop("temperatures")
        done.mapped(f"{at}temperatures", f"{where}temperatures")
    for key in _SAMPLING:
        if key in source:
            into[key] = source.pop(key)
            done.mapped(f"{at}{key}", f"{where}{key}")


def _model(
    entry: Any, where: str, at: str, top: dict[str, Any], done: Converted
) -> dict[str, Any] | None:
    """The legacy model at `where` as the config's model at `at`, or None when it has none."""
    if not isinstance(entry, Mapping):
        done.problems.append(f"{where}: expected an object")
        return None
    source = dict(entry)
    kind = source.pop("type") if "type" in source else source.pop("provider", None)
    provider = PROVIDERS.get(str(kind).lower()) if kind is not None else None
    if provider is None:
        known = ", ".join(sorted(PROVIDERS))
        done.problems.append(f"{where}.type: {kind!r} has no provider here (known: {known})")
        return None
    name = source.pop("name", None) or source.get("model")
    if not isinstance(name, str):
        done.problems.append(f"{where}: expected a name or a model (strings)")
        return None
    table: dict[str, Any] = {"name": name, "provider": provider}
    done.mapped(at, where)
    done.mapped(f"{at}.provider", f"{where}.type")
    if "model" in source:
        table["model"] = source.pop("model")
    _sampling(source, table, f"{where}.", f"{at}.", done)
    options: dict[str, Any] = {}
    for key, takers in _OPTIONS.items():
        if key in source:
            value = source.pop(key)
            if provider in takers:
                options[key] = value
                done.mapped(f"{at}.options.{key}", f"{where}.{key}")
            else:
                done.problems.append(f"{where}.{key}: the {provider} provider has no such option")
        elif key in top and provider in takers:  # the script's own, for every model
            options[key] = top[key]
            done.mapped(f"{at}.options.{key}", key)
        elif key in top:
            done.choices.append(f"{where}: {key} left out: the {provider} provider has none")
    if source.pop("api_key", None) is not None:
        done.choices.append(f"{where}.api_key: {_key_note(provider, options)}")
    if options:
        table["options"] = options
    done.problems += [f"{where}.{_key(key)}: no equivalent here" for key in source]
    return table


def _key_note(provider: str, options: Mapping[str, Any]) -> str:
    """What becomes of a key written in the legacy file: never carried over."""
    declared = {f.name: f.default for f in dataclasses.fields(OPTIONS[provider])}
    if "api_key_env" not in declared:
        return f"left out: the {provider} provider needs no key"
    variable = options.get("api_key_env", declared["api_key_env"])
    if not variable:
        return (
            "a key written in the file is not carried over, and api_key_env is empty: none is "
            "sent; set api_key_env to the variable that holds it"
        )
    return f"a key written in the file is not carried over; set {variable} in the environment"


def _rate(rate: Any, done: Converted) -> None:
    """The script's one request rate, shared by every model in turn, as each model's own."""
    for index, model in enumerate(done.table["models"]):
        model["requests_per_minute"] = rate
        done.mapped(f"models[{index}].requests_per_minute", "requests_per_minute")
    count = len(done.table["models"])
    done.choices.append(
        f"requests_per_minute = {rate} was one rate for the whole script, one request at a "
        f"time; it is now each model's own limit ({count} model(s) run at once)"
    )
