"""Command lines and plain lines for the user (what every verb prints to say what to do next), and
the argument types the verbs share."""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.text import Text


def command_line(verb: str, *words: str) -> str:
    """A harness command line, quoted for the shell, that works as printed."""
    return shlex.join([_python_path(), "-m", "harness", verb, *words])


def _python_path() -> str:
    """This interpreter as the user's shell finds it: `python` when that is it, else its path
    (relative to the working directory when it lies inside)."""
    found = shutil.which("python")
    if found and os.path.abspath(found) == os.path.abspath(sys.executable):
        return "python"
    path = Path(os.path.abspath(sys.executable))
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(text: object) -> Text:
    """A string from data (a ledger, a prompt set, a config, a scores file) as a table cell or
    title: never read as markup (`[/]` would end a style, or fail), control characters as their
    escapes (an ESC would drive the terminal)."""
    return Text(_escaped(str(text)))


def _escaped(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def error_lines(message: str) -> list[str]:
    """An error's message as the lines to print (it breaks at "\n" alone), each with its
    control characters escaped: a CR, an ESC or a BEL from a file's data never drives the
    terminal, nor splits one line in two."""
    return [_escaped(line) for line in message.split("\n")]


def say(console: Console, text: str) -> None:
    """Print a line as it is: no markup, no wrapping (so a command can be copied whole), control
    characters as their escapes."""
    console.print(_escaped(text), markup=False, highlight=False, soft_wrap=True)


class Parser(argparse.ArgumentParser):
    """argparse's parser (its sub-parsers too) whose errors are one line and exit 2, as every
    other bad input's: `error: argument --seed: ... (python -m harness stats --help)`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {_escaped(message)} (see: {self.prog} --help)\n")


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argument type: a whole number from `low` to `high`. Every number the command line takes
    is bounded, so a typo (an extra zero or ten) cannot ask for days of work or all the memory
    there is."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # not a number, or more than 4,300 digits
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {low:,} to {high:,}, got {_shown_arg(text)}"
            )
        return value

    return parse


def seconds(text: str) -> float:
    """An argument type: more than 0 seconds, at most a day."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 86_400:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"expected seconds, more than 0 and at most 86,400, got {_shown_arg(text)}"
        )
    return value


def file_to_write(text: str) -> Path:
    """An argument type: the path of a file to write. A path that ends in a separator (or `.`,
    `..`) names a folder, and would be written as a file of that name."""
    if text.endswith(os.sep) or os.path.basename(text) in ("", ".", ".."):
        raise argparse.ArgumentTypeError(f"{_shown_arg(text)} names a folder; name a file to write")
    return Path(text)


def _shown_arg(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


SEED = whole(0, 2**32 - 1)  # what numpy's and Python's generators take from any platform
PROMPT_COUNT = whole(1, 100_000_000)  # `--sample`, `--limit`: more than any prompt set
RESAMPLES = whole(0, 100_000)  # a bootstrap's: 10,000 is already generous
THREADS = whole(1, 1024)
TOKENS = whole(1, 10_000_000)  # as a model's max_tokens
