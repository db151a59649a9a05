"""What a figure function returns: the figure, its caption, and notes on what it left out."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure

WIDTH = 7.0  # inches: a page's text width


@dataclass(frozen=True)
class Made:
    """A figure drawn, its caption, and what it left out (for the page's notes)."""

    figure: Figure
    caption: str
    notes: tuple[str, ...] = ()
