"""Files the harness reads as input, checked before they are opened, and where a text file's
undecodable byte is.

Every input (a config, a prompts file and a dataset's own files, an ids file, a ledger or scores
file a verb reads, an annotation key or sheet, an adapter's files) must be a regular file. A FIFO
blocks its reader until a writer comes, and is empty the second time it is read (a run reads its
prompts twice: to load them and to hash them); a device such as `/dev/zero` never ends. So such a
path is refused in one line before anything opens it: the harness never waits on an input. So is
a symbolic link to nothing, which a folder of data files would otherwise skip without a word.
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path
from typing import Any

import orjson

from harness.errors import InputError

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_kind(path: str | os.PathLike[str]) -> str | None:
    """What `path` is when it exists and is neither a regular file nor a directory (links
    followed): "a FIFO (named pipe)", "a character device", ...; None otherwise."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing, unreadable or a bad name: the reader says so
        return None
    return next((kind for test, kind in _KINDS if test(mode)), None)


def special_problem(path: str | os.PathLike[str], what: str = "") -> str | None:
    """The one line that refuses `path` (given as `what`, an option such as `--ids`) when it is
    a FIFO, a device, a socket or a symbolic link to nothing; None when it is none of them."""
    given = f"{what} " if what else ""
    if os.path.islink(path) and not os.path.exists(path):
        return (
            f"{given}{path}: is a symbolic link to {os.readlink(path)}, which does not exist; "
            "the harness reads its inputs from files"
        )
    kind = special_kind(path)
    if kind is None:
        return None
    return (
        f"{given}{path}: is {kind}, not a regular file; the harness reads its inputs from files "
        "(save it to one and name that)"
    )


def refuse_special(path: str | os.PathLike[str], what: str = "") -> None:
    """InputError when `path` is a FIFO, a device, a socket or a link to nothing (see
    `special_problem`): reading one could block forever, never end, differ from one reading to
    the next, or fail."""
    problem = special_problem(path, what)
    if problem is not None:
        raise InputError(problem)


def utf8_problem(data: bytes) -> tuple[int, str] | None:
    """The line (from 1) of the first byte of `data` that is not UTF-8, and why; None when
    every byte is."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data.count(b"\n", 0, exc.start) + 1, str(exc.reason)
    return None


def utf8_problem_in(path: Path) -> tuple[int, str] | None:
    """The line (from 1) of the first byte of `path` that is not UTF-8, and why; None when
    every byte is. For error messages: a decoder reading blocks cannot say where it failed."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as file:
        while block := file.read(1 << 16):
            pending = len(decoder.getstate()[0])  # a sequence cut by the last block: no newline
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                before = block[: max(exc.start - pending, 0)]
                return line + before.count(b"\n"), str(exc.reason)
            line += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return line, str(exc.reason)
    return None


def json_object(path: Path, what: str, missing: str = "no such file") -> dict[str, Any]:
    """The JSON object in the input file `path`, which should be `what` ("an annotation key");
    InputError in one line naming the file when it is no regular one, missing (`missing` says
    so), unreadable, not UTF-8, not JSON or no object."""
    refuse_special(path)  # a FIFO would block the reader
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: {missing}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    bad = utf8_problem(data)  # orjson would say "line 1 column 1" wherever the byte is
    if bad is not None:
        raise InputError(f"{path}: line {bad[0]}: not UTF-8 text ({bad[1]})")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not {what} ({exc})") from None
    if not isinstance(body, dict):
        raise InputError(f"{path}: not {what} (expected a JSON object)")
    return body
