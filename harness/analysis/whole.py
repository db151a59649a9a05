"""Files written whole: to a temporary file beside the target, fsync'd, then renamed over it.

A reader sees the old file or the new one, never half of one; an error or an interrupt on the way
removes the temporary file and leaves the target as it was.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import InputError
from harness.ledger import sync_dir


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes `path` (its folder is made when
    missing). InputError when `path` cannot be written."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory; name a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path.parent}: cannot create the folder: {exc.strerror}") from None
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield temporary
        with temporary.open("rb") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
        sync_dir(path.parent)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)
