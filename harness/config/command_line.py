"""A config given on the command line instead of a file: `--model [NAME=]PROVIDER:MODEL` (with
`--option KEY=VALUE` for the model before it), `--prompts`, `--temperatures`, `--max-tokens`,
`--output`. It becomes the TOML table a file would hold, checked and run like one, so the run
line records the config it amounts to and `--print-config` can print it to save and edit."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

# What a config from the command line is called where a file's path would be: its relative paths
# resolve against the working directory.
COMMAND_LINE = Path("(command line)")

_SPEC = re.compile(r"^(?:(?P<name>[^=:]+)=)?(?P<provider>[a-z_]+):(?P<model>.+)$")
_NOT_IN_NAMES = re.compile(r"[|@+\s]")


@dataclass
class ModelSpec:
    """One `--model`, with the `--option`s given after it."""

    spec: str
    given: list[str] = field(default_factory=list)  # each `--option` as typed

    @property
    def provider(self) -> str | None:
        """The provider named, if the spec is well formed."""
        match = _SPEC.match(self.spec)
        return None if match is None else match["provider"]

    @property
    def options(self) -> dict[str, Any]:
        """The provider options given, the last one given for a key winning."""
        return dict(map(option_value, self.given))


@dataclass(frozen=True)
class CommandLineConfig:
    """The models, prompts and defaults the command line gives in place of a config file."""

    models: tuple[ModelSpec, ...]
    prompts: str | None = None
    output: Path | None = None
    temperatures: tuple[float, ...] | None = None
    max_tokens: int | None = None

    def problems(self) -> list[str]:
        """What keeps these options from making a config, one line each."""
        lines = [f"--model {m.spec}: {why}" for m in self.models if (why := spec_problem(m.spec))]
        if self.prompts is None:
            lines.append("--model: name the prompts to send with --prompts FILE")
        names = [_name(m.spec) for m in self.models if not spec_problem(m.spec)]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            lines.append(
                f"--model: two models named {', '.join(repeated)}: name them, as "
                "--model NAME=PROVIDER:MODEL"
            )
        return lines

    def table(self) -> dict[str, Any]:
        """The config's TOML table, as a file would hold it."""
        defaults: dict[str, Any] = {}
        if self.temperatures is not None:
            defaults["temperatures"] = list(self.temperatures)
        if self.max_tokens is not None:
            defaults["max_tokens"] = self.max_tokens
        table: dict[str, Any] = {"prompts": self.prompts}
        if self.output is not None:
            table["output"] = str(self.output)
        if defaults:
            table["defaults"] = defaults
        table["models"] = [_model_table(m) for m in self.models]
        return table

    def toml(self) -> str:
        """The config as a TOML file's text."""
        return tomli_w.dumps(self.table())


def option_value(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` as a key and a value: VALUE read as TOML (`5`, `true`, `0.5`, `"x"`, `[1, 2]`)
    where it is one, else as the string it is (`bfloat16`, `http://127.0.0.1:8000/v1`)."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise ValueError("expected KEY=VALUE, got no '=' (the value is not shown: it may be a key)")
    try:
        return key.strip(), tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), value


def spec_problem(spec: str) -> str | None:
    """What is wrong with a `--model` spec, or None."""
    if _SPEC.match(spec) is None:
        return "expected PROVIDER:MODEL or NAME=PROVIDER:MODEL"
    return None


def _parts(spec: str) -> tuple[str, str, str]:
    """The model's name, provider and id; a name not given is the model id's last part."""
    match = _SPEC.match(spec)
    assert match is not None, spec  # told by `problems` first
    model = match["model"]
    name = match["name"] or _NOT_IN_NAMES.sub("-", model.rstrip("/").rsplit("/", 1)[-1])
    return name.strip(), match["provider"], model


def _name(spec: str) -> str:
    return _parts(spec)[0]


def _model_table(model: ModelSpec) -> dict[str, Any]:
    name, provider, model_id = _parts(model.spec)
    table: dict[str, Any] = {"name": name, "provider": provider, "model": model_id}
    if model.options:
        table["options"] = dict(model.options)
    return table


def given_models(specs: Sequence[ModelSpec]) -> list[str]:
    """The command-line words that give `specs` again, in order (for the lines a run prints)."""
    words: list[str] = []
    for model in specs:
        words += ["--model", model.spec]
        for given in model.given:
            words += ["--option", given]
    return words
