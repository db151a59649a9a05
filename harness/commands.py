"""Command lines and plain lines for the user (what every verb prints to say what to do next), and
the argument types the verbs share."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

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


def say(console: Console, text: str) -> None:
    """Print a line as it is: no markup, no wrapping (so a command can be copied whole), control
    characters as their escapes."""
    console.print(_escaped(text), markup=False, highlight=False, soft_wrap=True)


def count(text: str) -> int:
    """An argument that must be a whole number of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def positive(text: str) -> int:
    """An argument that must be a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
