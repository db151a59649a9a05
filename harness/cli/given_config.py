"""The options of `run`, `rerun` and `plan` that give a config on the command line instead of a
file (`--model`, `--option`, `--temperatures`, `--max-tokens`, `--print-config`; see
`harness.config.command_line`), and the config they name."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config.command_line import (
    COMMAND_LINE,
    CommandLineConfig,
    ModelSpec,
    given_models,
    option_value,
    spec_problem,
)
from harness.errors import InputError
from harness.providers import registered
from harness.terminal import TOKENS, command_line

_BUILDING = ("model", "temperatures", "max_tokens", "print_config")


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """`CONFIG` (optional) and the options that stand in for one."""
    parser.add_argument(
        "config", nargs="?", help="the run's TOML config (or give models with --model)"
    )
    given = parser.add_argument_group("without a config file: the models on the command line")
    given.add_argument(
        "--model",
        action=_AddModel,
        default=[],
        metavar="[NAME=]PROVIDER:MODEL",
        help="a model to run (repeatable), e.g. anthropic:claude-sonnet-4-5 or "
        "vllm:Qwen/Qwen2.5-7B-Instruct; with --prompts FILE",
    )
    given.add_argument(
        "--option",
        action=_AddOption,
        metavar="KEY=VALUE",
        help="a provider option of the --model before it (repeatable), e.g. top_logprobs=5",
    )
    given.add_argument(
        "--temperatures",
        type=_temperatures,
        metavar="T1,T2",
        help="the temperatures to sweep (default: 0)",
    )
    given.add_argument("--max-tokens", type=TOKENS, metavar="N", help="(default: 1024)")
    given.add_argument(
        "--print-config",
        action="store_true",
        help="print the config these options amount to, as TOML, and stop",
    )


@dataclass(frozen=True)
class GivenConfig:
    """The config a command names: its file, or the stand-in for one (`COMMAND_LINE`) with the
    TOML of the models the command line gives right (`toml`, None when there is none to check:
    no model right, no prompts), those models, and what is wrong with the others (`problems`)."""

    path: str | Path
    toml: str | None = None
    models: tuple[ModelSpec, ...] = ()
    problems: tuple[str, ...] = ()

    def told(self, message: str) -> str:
        """An error about the config the command line gave in its words: its models by their
        `--model` (`(command line): models[1].options.x` as `--model SPEC: options.x`), its
        defaults by their options."""
        if self.path != COMMAND_LINE:
            return message
        for index, model in enumerate(self.models):
            message = message.replace(
                f"{COMMAND_LINE}: models[{index}].", f"--model {model.spec}: "
            )
        for key, flag in _FLAGS.items():
            message = message.replace(f"{COMMAND_LINE}: {key}", flag)
        return message


# The keys of a command-line config that options set, as its errors name them.
_FLAGS = {
    "defaults.temperatures": "--temperatures",
    "defaults.max_tokens": "--max-tokens",
    "prompts": "--prompts",
    "output": "--output",
}


def config_of(args: argparse.Namespace) -> GivenConfig:
    """The config file named, or the stand-in for one and the TOML the command line gives;
    InputError when neither is given, or both."""
    building = [f"--{name.replace('_', '-')}" for name in _BUILDING if _given(args, name)]
    if args.config is not None:
        if building:
            raise InputError(
                f"{', '.join(building)}: give models either in CONFIG or on the command line "
                "(to run some of CONFIG's models: --models A,B)"
            )
        return GivenConfig(args.config)
    if not args.model:
        raise InputError(
            "give a CONFIG file, or the models to run: --model PROVIDER:MODEL --prompts FILE"
        )
    given = _command_line_config(args)
    unknown = list(_unknown_providers(given))
    problems = given.problems() + [f"--model {m.spec}: {exc}" for m, exc in unknown]
    wrong = {id(m) for m, _ in unknown}
    right = tuple(m for m in given.models if id(m) not in wrong and not spec_problem(m.spec))
    checkable = right and given.prompts is not None
    toml = dataclasses.replace(given, models=right).toml() if checkable else None
    return GivenConfig(COMMAND_LINE, toml, right, tuple(problems))


def printed_config(args: argparse.Namespace) -> str:
    """`--print-config`'s text: the TOML, after a comment on where it came from."""
    given = config_of(args)
    if given.problems:
        raise InputError("\n".join(given.problems))
    toml = given.toml
    assert toml is not None  # a config file is refused with --print-config
    words = [w for w in args.argv if w != "--print-config"]
    return (
        f"# The config of: {command_line(words[0], *words[1:])}\n"
        "# Save it as a file and run it: python -m harness run FILE (a relative path in a config\n"
        "# resolves against the config file's folder). Every key: python -m harness options\n"
        f"{toml}"
    )


def config_words(args: argparse.Namespace) -> list[str]:
    """The command-line words that name this run's config again: the file, or the models and
    defaults given in its place."""
    if args.config is not None:
        return [args.config]
    words = given_models(args.model)
    if args.temperatures is not None:
        words += ["--temperatures", ",".join(map(str, args.temperatures))]
    if args.max_tokens is not None:
        words += ["--max-tokens", str(args.max_tokens)]
    return words


def _command_line_config(args: argparse.Namespace) -> CommandLineConfig:
    return CommandLineConfig(
        models=tuple(args.model),
        prompts=args.prompts,
        output=args.output,
        temperatures=args.temperatures,
        max_tokens=args.max_tokens,
    )


def _unknown_providers(given: CommandLineConfig) -> Iterator[tuple[ModelSpec, InputError]]:
    for model in given.models:
        provider = model.provider
        if provider is not None:
            try:
                registered(provider)
            except InputError as exc:
                yield model, exc


def _given(args: argparse.Namespace, name: str) -> bool:
    value = getattr(args, name)
    return bool(value) if isinstance(value, list | bool) else value is not None


def _temperatures(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas (0,0.7), got {text!r}"
        ) from None


class _AddModel(argparse.Action):
    """`--model SPEC`: one more model, its options to follow."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, [*getattr(namespace, self.dest), ModelSpec(str(values))])


class _AddOption(argparse.Action):
    """`--option KEY=VALUE`: an option of the model given last."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        text = str(values)
        if not namespace.model:
            parser.error(f"--option {text}: give it after the --model it is for")
        try:
            option_value(text)
        except ValueError as exc:
            parser.error(f"--option: {exc}")
        namespace.model[-1].given.append(text)
