"""No `# type: ignore` without a reason: each names the error it silences and says why, on its
line, in the package and in the benchmarks."""

from __future__ import annotations

import re

from tests.conftest import REPO

REASONED = re.compile(r"# type: ignore\[[a-z0-9-]+(,[a-z0-9-]+)*\]  # \S")


def test_every_type_ignore_names_its_error_and_says_why():
    files = [*(REPO / "harness").rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")]
    bare = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted(files)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "type: ignore" in line and not REASONED.search(line)
    ]
    assert bare == []
