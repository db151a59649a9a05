"""The `--figures` files: drawn into a temporary folder beside the one asked for and moved into
it only once the page is written, so a report that fails leaves no figure files behind (the
folder is named after its writer: a report killed outright leaves it to the next one to remove,
see `harness.whole`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import InputError
from harness.ledger.targets import OwnFile
from harness.whole import discard, remove_stale, temporary_path

FIGURES = (
    "hallucination",
    "rates",
    "comparisons",
    "distributions",
    "timeline",
    "roc",
)  # each one's file name
MAKER = "harness report"  # the SVG's creator and the PNG's software, in their metadata


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
    remove_stale(parent, folder.name)  # what reports killed here left
    staging = temporary_path(parent, folder.name, "figures")
    try:
        staging.mkdir()
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the folder: {exc.strerror}") from None
    try:
        yield staging
    finally:
        discard(staging)


def put_in_place(staging: Path, folder: Path) -> None:
    """Move the files drawn in `staging` into `folder` (made if need be), each replacing the
    file of its name there, and take away an earlier report's figure not drawn this time (a
    figure of a view there is no more), so the folder never mixes two reports' figures."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        drawn = sorted(staging.iterdir())
        for path in drawn:
            os.replace(path, folder / path.name)
        made = {path.name for path in drawn}
        for name in FIGURES:
            for kind in ("svg", "png"):
                earlier = folder / f"{name}.{kind}"
                if earlier.name not in made and earlier.is_file() and is_figure(earlier):
                    earlier.unlink()
    except OSError as exc:
        raise InputError(f"{folder}: cannot write the figures: {exc.strerror}") from None


def is_figure(path: Path) -> bool:
    """Whether the file at `path` is a figure `report --figures` wrote (an SVG or PNG whose
    metadata names the report as its maker)."""
    with path.open("rb") as file:
        start = file.read(4096)
    maker = MAKER.encode()
    if start.startswith(b"\x89PNG"):
        return b"tEXtSoftware\x00" + maker in start
    return b"<dc:title>" + maker + b"</dc:title>" in start


FIGURE = OwnFile("a figure an earlier report drew", is_figure)
