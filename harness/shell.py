"""Harness command lines as the user's shell takes them, for every "what to do next" line."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def harness_command(verb: str, *words: str) -> str:
    """A harness command line, quoted for the shell, that works as printed."""
    return shlex.join([_python(), "-m", "harness", verb, *words])


def _python() -> str:
    """This interpreter as the user's shell finds it: `python` when that is it, else its path
    (relative to the working directory when it lies inside)."""
    found = shutil.which("python")
    if found and os.path.abspath(found) == os.path.abspath(sys.executable):
        return "python"
    path = Path(os.path.abspath(sys.executable))
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)
