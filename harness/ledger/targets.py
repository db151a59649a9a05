"""The files verbs write where they are told (`export --to`, `stats --json`, `report --out` and
`--figures`, `annotate export`, merge's conflicts list): what is there already, and whether it
may be replaced.

A file that holds results is never replaced, whatever its name or `--force`: a ledger (a judge's,
a shard's: a line of it is a run, batch or result line), a scores file (a sealed score line), a
scorers file (a sealed scorer line: `harness.analysis.probe_labels`) or an annotation key. Any
other file is replaced only when it is one the same verb wrote before, known by what the verb
writes in it (its `OwnFile` test, given the file), or with `--force`. A folder that cannot be
written is said at once, before any work.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError
from harness.ledger.lines import LEDGER_NAME, parse_line, parse_sealed
from harness.whole import discard, temporary_path

_HEAD_LINES = 16  # the first lines looked at
_LINE_MOST = 1 << 20  # bytes read of one line at most
# The sealed files of results other than ledgers, by the `type` of their lines, and what a file of
# each name is (an empty one, or one whose first lines are torn).
_SEALED = {"score": "a scores file", "scorer": "a scorers file"}
_NAMED = {
    LEDGER_NAME: "a ledger",
    "scores.jsonl": "a scores file",
    "scorers.jsonl": "a scorers file",
}
_KEY = re.compile(rb'\A\{\s*"schema":\s*\d+,\s*"type":\s*"annotation"')


@dataclass(frozen=True)
class OwnFile:
    """What a verb writes: its name in errors (`an export`) and the test that knows one."""

    what: str
    test: Callable[[Path], bool]


def check_target(
    path: Path,
    option: str,
    own: OwnFile,
    *,
    force: bool = False,
    hint: str = "name another file, or add --force",
) -> None:
    """InputError unless `path` may be written by `option` (the verb and option in errors:
    `export --to`): not a folder, not a file of results, a file of the kind `own` (or `force`),
    in a folder that can be written; `hint` says what to do instead of replacing another file."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory; name a file to write")
    if path.exists() and not path.is_file():  # a FIFO, a device: never read, never replaced
        raise InputError(f"{path}: is not a regular file; name a file to write")
    if path.exists() and not _ours(own, path):
        results = results_in(path)
        if results is not None:
            raise InputError(
                f"{path}: is {results}, which {option} never replaces; name another file"
            )
        if not force:
            raise InputError(f"{path}: is not {own.what}; {option} replaces nothing else ({hint})")
    _check_folder(path)


def results_in(path: Path) -> str | None:
    """What results the file `path` holds ("a ledger", "a scores file", "a scorers file", "an
    annotation key"), or None."""
    lines = list(head_lines(path))
    if _KEY.match(b"".join(lines)):
        return "an annotation key"
    for line in lines:
        if parse_line(line) is not None:
            return "a ledger"
        sealed = parse_sealed(line)
        if sealed is not None and sealed.get("type") in _SEALED:
            return _SEALED[sealed["type"]]
    return _NAMED.get(path.name)


def head(path: Path) -> bytes:
    """The first lines of a file that are not blank, as one string of bytes."""
    return b"".join(head_lines(path))


def head_lines(path: Path) -> Iterator[bytes]:
    """The first lines of a file that are not blank (each cut at 1 MiB); none when it cannot be
    read."""
    try:
        with path.open("rb") as file:
            found = 0
            while found < _HEAD_LINES and (line := file.readline(_LINE_MOST)):
                if line.strip():
                    found += 1
                    yield line
    except OSError:
        return


def _ours(own: OwnFile, path: Path) -> bool:
    try:
        return own.test(path)
    except (OSError, ValueError):
        return False


def _check_folder(path: Path) -> None:
    """InputError when no file can be made in the folder `path` goes to (or, when it is still to
    be made, in its nearest existing parent)."""
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{path}: cannot write: {folder} is not a folder")
    probe = temporary_path(folder, path.name)
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror}") from None
    discard(probe)
