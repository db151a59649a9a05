"""Command lines and plain lines for the user (what every verb prints to say what to do next), and
the argument types the verbs share."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

from rich.console import Console


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


def say(console: Console, text: str) -> None:
    """Print a line as it is: no markup, no wrapping (so a command can be copied whole)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


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
