"""The options of `run`, `rerun` and `plan` that give a config on the command line instead of a
file (`--model`, `--option`, `--temperatures`, `--max-tokens`, `--print-config`; see
`harness.config.command_line`), and the config they name."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.config.command_line import (
    COMMAND_LINE,
    CommandLineConfig,
    ModelSpec,
    given_models,
    option_value,
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


def config_of(args: argparse.Namespace) -> tuple[str | Path, str | None]:
    """The config file named, or the stand-in for one and the TOML the command line gives;
    InputError, with a line for each mistake, when neither is given right."""
    building = [f"--{name.replace('_', '-')}" for name in _BUILDING if _given(args, name)]
    if args.config is not None:
        if building:
            raise InputError(
                f"{', '.join(building)}: give models either in CONFIG or on the command line "
                "(to run some of CONFIG's models: --models A,B)"
            )
        return args.config, None
    if not args.model:
        raise InputError(
            "give a CONFIG file, or the models to run: --model PROVIDER:MODEL --prompts FILE"
        )
    given = _command_line_config(args)
    problems = given.problems() + [
        f"--model {model.spec}: {exc}" for model, exc in _unknown_providers(given)
    ]
    if problems:
        raise InputError("\n".join(problems))
    return COMMAND_LINE, given.toml()


def named_flags(args: argparse.Namespace, message: str) -> str:
    """An error about the config the command line gave, its models named by their `--model`
    (`(command line): models[1].options.x` as `--model SPEC: options.x`)."""
    if args.config is not None:
        return message
    for index, model in enumerate(args.model):
        message = message.replace(f"{COMMAND_LINE}: models[{index}].", f"--model {model.spec}: ")
    return message


def printed_config(args: argparse.Namespace) -> str:
    """`--print-config`'s text: the TOML, after a comment on where it came from."""
    _, toml = config_of(args)
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
