"""Installed versions, as the distributions' metadata gives them (the harness's own included)."""

from __future__ import annotations

from importlib import metadata


def package_version(package: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
