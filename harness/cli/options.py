"""`harness options [PROVIDER]`: every key a config takes, or every option a provider takes, with
its type, default, bounds, whether it can change an answer, and what it does; `--markdown`
writes the same as docs/config-reference.md. It reads the declarations alone: no provider's SDK
is imported, so it answers at once and before the SDK is installed."""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.config.reference import SECTIONS
from harness.errors import InputError
from harness.fields import UNLESS_DEFAULT, description, number_text
from harness.providers import REGISTRY, batch_providers
from harness.providers.options import OPTIONS
from harness.terminal import Parser, command_line, say, shown

REFERENCE = "docs/config-reference.md"
_COLUMNS = ("key", "type", "default", "bounds", "answer-defining", "description")


def add_options_verb(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add `options` to the command line's verbs."""
    parser = verbs.add_parser(
        "options", help="every config key, or a provider's options, and what each does"
    )
    parser.add_argument("provider", nargs="?", help=f"one of {', '.join(sorted(REGISTRY))}")
    parser.add_argument(
        "--markdown", action="store_true", help=f"print the whole reference ({REFERENCE})"
    )
    parser.set_defaults(verb=_options)


def _options(args: argparse.Namespace, console: Console) -> int:
    if args.markdown:
        if args.provider is not None:
            raise InputError("--markdown writes the whole reference: give no PROVIDER with it")
        console.file.write(markdown())
        return 0
    if args.provider is None:
        for section in SECTIONS:
            _show(console, f"{section.title}: {section.about}", rows(section.table, answer=False))
        say(console, '[models.adapters]: a local model\'s LoRA adapters, name = "folder"')
        say(console, f"[models.options]: the provider's own; providers: {_providers()}")
        say(console, _BATCH_LINE.format(", ".join(batch_providers())))
        say(console, f"next: {command_line('options', 'PROVIDER')} for a provider's options")
        return 0
    options = OPTIONS.get(args.provider)
    if options is None:
        raise InputError(f'unknown provider "{args.provider}" (known: {_providers()})')
    title = f'[models.options] of provider = "{args.provider}": {_about(options)}'
    _show(console, title, rows(options, answer=True))
    say(
        console, f"next: set them under [models.options]; check: {command_line('doctor', 'CONFIG')}"
    )
    return 0


_BATCH_LINE = 'providers with a batch API (mode = "batch"): {}'


def _providers() -> str:
    return ", ".join(sorted(REGISTRY))


def _about(table: type) -> str:
    return " ".join((table.__doc__ or "").split())


def _show(console: Console, title: str, found: list[tuple[str, ...]]) -> None:
    """A table on a terminal; elsewhere plain lines, one per key."""
    if console.is_terminal:
        table = Table(*_COLUMNS, title=shown(title), title_justify="left")
        for row in found:
            table.add_row(*map(shown, row))
        console.print(table)
        return
    say(console, title)
    for key, kind, default, bounds, answer, text in found:
        given = default if default == _REQUIRED else f"default {default}"
        facts = ", ".join(x for x in (kind, given, bounds, answer) if x)
        say(console, f"  {key} ({facts}): {text}")


def rows(table: type, *, answer: bool) -> list[tuple[str, ...]]:
    """Each declared key of `table`: name, type, default, bounds, "answer-defining" (or
    "answer-defining when set", or ""), and description. `answer`: whether a key is
    answer-defining unless it says otherwise (a provider's options) or only where it says so (a
    config's keys)."""
    hints = typing.get_type_hints(table)
    return [
        (
            field.name,
            type_name(hints[field.name]),
            _default(field),
            _bounds(field.metadata),
            _answer_defining(field.metadata.get("identity", answer)),
            description(field),
        )
        for field in dataclasses.fields(table)
        if field.init
    ]


def _answer_defining(identity: object) -> str:
    if identity == UNLESS_DEFAULT:
        return "answer-defining when set"
    return "answer-defining" if identity else ""


def type_name(hint: Any) -> str:
    """A type as a config's author reads it: `integer`, `list of strings`, `"chat" | "raw"`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        named = [type_name(arg) for arg in args if arg is not type(None)]
        return " or ".join(named) + (", or unset" if type(None) in args else "")
    if origin is typing.Literal:
        return " | ".join(json.dumps(arg) for arg in args)
    if origin is tuple and typing.get_origin(args[0]) is typing.Literal:
        return f"list, each {type_name(args[0])}"
    if origin is tuple:
        return f"list of {type_name(args[0])}s"
    if origin is dict or hint is dict:
        return "table"
    return _NAMES.get(hint, str(hint))


_REQUIRED = "required"
_NAMES: dict[Any, str] = {int: "integer", float: "number", bool: "boolean", str: "string"}


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default_factory is not dataclasses.MISSING:
        return _value(field.default_factory())
    if field.default is dataclasses.MISSING:
        return _REQUIRED
    return _value(field.default)


def _value(value: Any) -> str:
    """A default as TOML writes it ("unset" for None: TOML has no null)."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else json.dumps(value)
    return json.dumps(value)


def _bounds(metadata: typing.Mapping[str, Any]) -> str:
    low, high = metadata.get("min"), metadata.get("max")
    parts = []
    if low is not None and high is not None:
        parts.append(f"{number_text(low)} to {number_text(high)}")
    elif low is not None:
        parts.append(f">= {number_text(low)}")
    elif high is not None:
        parts.append(f"<= {number_text(high)}")
    if metadata.get("nonempty"):
        parts.append("not empty")
    if "pattern" in metadata:
        parts.append(f"matches {metadata['pattern']}")
    return ", ".join(parts)


def markdown() -> str:
    """docs/config-reference.md: every config table and every provider's options."""
    return "".join(_markdown_lines())


def _markdown_lines() -> Iterator[str]:
    yield "# Config reference\n\n"
    yield (
        "Generated from the declarations (`harness.config`, `harness.providers.options`) by "
        "`python -m harness options --markdown`; `make docs` writes it, and a test fails when "
        "it and the declarations differ. *answer-defining*: part of the variant id, so changing "
        "it starts a new variant (*when set*: once set to other than its default).\n"
    )
    for section in SECTIONS:
        yield from _markdown_table(
            f"`{section.title}`", section.about, rows(section.table, answer=False)
        )
    yield "\n## Provider options (`[models.options]`)\n\n"
    yield _BATCH_LINE.format(", ".join(batch_providers())) + "\n"
    for name in sorted(OPTIONS):
        table = OPTIONS[name]
        yield from _markdown_table(
            f'`provider = "{name}"`', _about(table), rows(table, answer=True)
        )


def _markdown_table(title: str, about: str, found: list[tuple[str, ...]]) -> Iterator[str]:
    yield f"\n### {title}\n\n{about}\n\n"
    yield "| " + " | ".join(_COLUMNS) + " |\n"
    yield "|" + "---|" * len(_COLUMNS) + "\n"
    for key, *rest in found:
        cells = [f"`{key}`", *rest]
        yield "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n"
