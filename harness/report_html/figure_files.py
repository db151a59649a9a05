"""The `--figures` files: drawn into a temporary folder beside the one asked for and moved into
it only once the page is written, so a report that fails leaves no figure files behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import InputError


@contextmanager
def staged(folder: Path | None) -> Iterator[Path | None]:
    """A temporary folder to draw the figure files into (None without `folder`), on the file
    system of `folder` (in its nearest existing parent); removed on the way out with whatever
    `put_in_place` did not take."""
    if folder is None:
        yield None
        return
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is not a folder; name the figures' folder with --figures")
    parent = folder.absolute().parent
    while not parent.exists():
        parent = parent.parent
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=parent))
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the folder: {exc.strerror}") from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def put_in_place(staging: Path, folder: Path) -> None:
    """Move the files drawn in `staging` into `folder` (made if need be), each replacing the
    file of its name there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for drawn in sorted(staging.iterdir()):
            os.replace(drawn, folder / drawn.name)
    except OSError as exc:
        raise InputError(f"{folder}: cannot write the figures: {exc.strerror}") from None
