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

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

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
    top = _without_nulls(legacy, "", done)
    _paths(top, target, origin, done)
    _retries(top, done)
    _sampling(top, done.table.setdefault("defaults", {}), "", done)
    if not done.table["defaults"]:
        del done.table["defaults"]
    rate = top.pop("requests_per_minute", None)
    models = top.pop("models", None)
    if not isinstance(models, list) or not models:
        done.problems.append("models: expected a list of at least one model")
        models = []
    done.table["models"] = [
        table
        for index, model in enumerate(models)
        if (table := _model(model, f"models[{index}]", top, done)) is not None
    ]
    top.pop("top_logprobs", None)  # given to each model that takes it
    if rate is not None:
        _rate(rate, done)
    done.problems += [f"{key}: no equivalent here; remove it, or map it by hand" for key in top]
    return done


def _without_nulls(table: Mapping[str, Any], where: str, done: Converted) -> dict[str, Any]:
    """`table` less its nulls, at any depth (TOML has none), each told as a problem."""

    def kept(value: Any, path: str) -> Any:
        if isinstance(value, Mapping):
            return {
                k: kept(v, f"{path}.{k}" if path else k)
                for k, v in value.items()
                if v is not None or _null(f"{path}.{k}" if path else k)
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
    else:
        done.problems.append("prompts_file: expected the path of the prompts file")
    output_dir, output_file = top.pop("output_dir", None), top.pop("output_file", None)
    if output_file is not None and isinstance(output_file, str):
        folder = Path(output_file).with_suffix("")
        done.table["output"] = _moved(str(folder), origin, here)
        done.choices.append(
            f"output_file {output_file}: the results go to the folder {folder} (a ledger, "
            f"resumable); the combined file: python -m harness export {folder} --format "
            f"pilot-json --to {output_file}"
        )
    elif isinstance(output_dir, str):
        done.table["output"] = _moved(output_dir, origin, here)
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
    samples = top.pop("num_samples") if "num_samples" in top else top.pop("samples", None)
    if samples is not None:
        done.table["samples"] = samples


def _moved(path: str, origin: Path, here: Path) -> str:
    """`path` (relative to `origin`) relative to `here`, or as it is when absolute."""
    if Path(path).is_absolute():
        return path
    return Path(os.path.relpath(origin / path, here)).as_posix()


def _retries(top: dict[str, Any], done: Converted) -> None:
    retry: dict[str, Any] = {}
    retries = top.pop("max_retries", None)
    if isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0:
        retry["max_attempts"] = retries + 1
        done.choices.append(
            f"max_retries = {retries} (retries after the first try) is max_attempts = "
            f"{retries + 1} (tries in all)"
        )
    elif retries is not None:
        done.problems.append(f"max_retries: expected a whole number >= 0, got {retries!r}")
    for old, new in (("retry_delay", "initial_wait"), ("timeout", "attempt_timeout")):
        if old in top:
            retry[new] = top.pop(old)
            done.choices.append(f"{old} is [retry] {new}")
    if retry:
        done.table["retry"] = retry


def _sampling(source: dict[str, Any], into: dict[str, Any], where: str, done: Converted) -> None:
    """`temperature` as a sweep of one (`temperatures` as it is), `max_tokens` and `top_p`."""
    if "temperature" in source and "temperatures" in source:
        done.problems.append(f"{where}temperature: give temperature or temperatures, not both")
    if "temperature" in source:
        into["temperatures"] = [source.pop("temperature")]
    if "temperatures" in source:
        into["temperatures"] = source.pop("temperatures")
    for key in _SAMPLING:
        if key in source:
            into[key] = source.pop(key)


def _model(entry: Any, where: str, top: dict[str, Any], done: Converted) -> dict[str, Any] | None:
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
    if "model" in source:
        table["model"] = source.pop("model")
    _sampling(source, table, f"{where}.", done)
    options: dict[str, Any] = {}
    for key, takers in _OPTIONS.items():
        if key in source:
            value = source.pop(key)
            if provider in takers:
                options[key] = value
            else:
                done.problems.append(f"{where}.{key}: the {provider} provider has no such option")
        elif key in top and provider in takers:  # the script's own, for every model
            options[key] = top[key]
        elif key in top:
            done.choices.append(f"{where}: {key} left out: the {provider} provider has none")
    if source.pop("api_key", None) is not None:
        variable = options.get("api_key_env") or f"the variable `harness options {provider}` names"
        done.choices.append(
            f"{where}.api_key: a key written in the file is not carried over; set {variable} "
            "in the environment"
        )
    if options:
        table["options"] = options
    done.problems += [f"{where}.{key}: no equivalent here" for key in source]
    return table


def _rate(rate: Any, done: Converted) -> None:
    """The script's one request rate, shared by every model in turn, as each model's own."""
    for model in done.table["models"]:
        model["requests_per_minute"] = rate
    count = len(done.table["models"])
    done.choices.append(
        f"requests_per_minute = {rate} was one rate for the whole script, one request at a "
        f"time; it is now each model's own limit ({count} model(s) run at once)"
    )
