"""Python scorers: a function of your own labels each answer.

`function = "module:callable"` is imported from the config's folder (then the usual import path)
when `score` starts; an import that fails, a name the module lacks or one that is not callable is
a config error naming the key, before anything is written. The function is called with two dicts,
the answer's record (the ledger's fields: `full_response`, `variant`, `token_logprobs`, ...) and
its prompt (`id`, `text`, `category`, `is_synthetic_probe` and every other field of the prompt
set: `target`, `ground_truth`, ...), and returns its label: a string, a `(label, value)` pair, or
a dict with `label` and optionally `value` (a number) and `explanation` (a string, kept as the
score's `detail`).

Its definition hash covers the file of the function's module (an edited function, or a helper
it calls there, rescores every answer), and a score's `input` the prompt it was given (an edited
prompt field rescores that prompt's answers). What it returns that is none of those, or an
exception it raises, stops `score` with one line naming the scorer, the answer's key and what
came back (the scores written before it stay).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import sys
from collections.abc import Callable, Mapping
from numbers import Real
from pathlib import Path
from typing import Any

import orjson

from harness.analysis.scores import Verdict
from harness.config.scorers import PythonScorer
from harness.errors import InputError
from harness.prompts.load import Prompt

_DETAIL_CHARS = 2000


class ImportProblem(ValueError):
    """The function named cannot be imported or called."""


class FunctionScorer:
    """A Python scorer, imported: `definition` (what its hash is taken of), `input_digest` and
    `label(answer, prompt)`."""

    def __init__(self, scorer: PythonScorer, folder: Path) -> None:
        self.scorer = scorer
        self.function, source = _imported(scorer.function, folder)
        self.definition = {"type": "python", "function": scorer.function, "source": source}

    def prompt_fields(self, prompt: Prompt) -> dict[str, Any]:
        """The prompt as the function is given it."""
        return {
            **prompt.metadata,
            "id": prompt.id,
            "text": prompt.text,
            "category": prompt.category,
            "is_synthetic_probe": prompt.is_synthetic_probe,
        }

    def input_digest(self, fields: Mapping[str, Any]) -> str:
        """16 hex digits of the prompt the function is given."""
        body = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS, default=str)
        return hashlib.sha256(body).hexdigest()[:16]

    def label(self, answer: dict[str, Any], fields: dict[str, Any]) -> Verdict:
        """The function's label of one answer; InputError naming the scorer and the answer when
        it raises or returns what no label is."""
        where = f"scorer {self.scorer.name} ({self.scorer.function}) on {answer['key']!r}"
        try:
            given = self.function(dict(answer), dict(fields))
        except (Exception, SystemExit) as exc:  # the user's code: one line, never a traceback
            raise InputError(f"{where}: raised {_one_line(exc)}") from None
        found = _labelled(given)
        if found is None:
            shown = repr(given)
            shown = shown if len(shown) <= 120 else shown[:117] + "..."
            raise InputError(
                f"{where}: returned {shown}: return a label (a non-empty string), a (label, "
                "value) pair or a dict with label, value and explanation"
            )
        return found


def _pythons(top: str) -> bool:
    """Whether the module `top` is Python's, an installed package's or the harness's (a user's
    module of that name would replace it for the rest of the process)."""
    loaded = sys.modules.get(top)
    spec = getattr(loaded, "__spec__", None) if loaded is not None else None
    if spec is None:
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return False
    if spec is None:
        return False
    if spec.origin is None or spec.origin in ("built-in", "frozen"):
        return spec.origin is not None
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(__file__).parents[1])}
    origin = Path(str(spec.origin)).resolve()
    return any(origin.is_relative_to(Path(root).resolve()) for root in roots)


def _one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    more = " ..." if len(lines) > 1 else ""
    return f"{type(exc).__name__}: {lines[0] if lines else ''}{more}".rstrip(": ")


def _labelled(given: Any) -> Verdict | None:
    """A return value as a label, value and explanation; None when it is none of the forms."""
    if isinstance(given, str):
        given = {"label": given}
    elif isinstance(given, tuple) and len(given) == 2:
        given = {"label": given[0], "value": given[1]}
    if not isinstance(given, Mapping) or set(given) - {"label", "value", "explanation"}:
        return None
    label, value, explanation = given.get("label"), given.get("value"), given.get("explanation")
    if not isinstance(label, str) or not label.strip() or label != label.strip():
        return None
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value)
    ):
        return None
    if explanation is not None and not isinstance(explanation, str):
        return None
    number = None if value is None else float(value)
    return Verdict(label, number, explanation[:_DETAIL_CHARS] if explanation else None)


def _imported(name: str, folder: Path) -> tuple[Callable[..., Any], str]:
    """The callable `module:attribute` names (its module imported from `folder` first, read
    afresh when it is there, whatever this process imported before) and the digest of its
    module's file; ImportProblem saying why not."""
    module_name, attribute = name.split(":")
    top = module_name.split(".")[0]
    if (folder / f"{top}.py").is_file() or (folder / top).is_dir():  # read afresh from there
        if _pythons(top):
            raise ImportProblem(
                f"{top} is a module Python or the harness has already: rename "
                f"{folder / top}{'' if (folder / top).is_dir() else '.py'}"
            )
        for key in [k for k in sys.modules if k == top or k.startswith(f"{top}.")]:
            del sys.modules[key]
    importlib.invalidate_caches()
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # the user's module: a failure to import is one line
        raise ImportProblem(f"cannot import {module_name}: {_one_line(exc)}") from None
    finally:
        sys.path.remove(str(folder))
    function = getattr(module, attribute, None)
    if function is None:
        raise ImportProblem(f"{module_name} ({module.__file__}) has no {attribute}")
    if not callable(function):
        raise ImportProblem(f"{name} is not a function: {type(function).__name__}")
    file = getattr(module, "__file__", None)
    if not file or not Path(file).is_file():
        raise ImportProblem(f"{module_name} has no source file: an edit to it could not be told")
    return function, hashlib.sha256(Path(file).read_bytes()).hexdigest()
