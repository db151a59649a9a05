"""`python -m benchmarks.ledger_reads ARGS`: run the harness CLI, then print the bytes it read.

The figure is the growth of this process's `rchar` (/proc/self/io: every byte read() and pread()
returned, from any file) from just before the verb starts to its end, after the modules a run
imports are loaded: the ledger's reads, plus the config and prompts files (small next to a
ledger) and any module imported late. Divided by the ledger's size it is an upper bound on the
times a run reads its ledger.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from harness.cli.main import main

# Imported late by a run; loaded first so that their files are not counted.
_LATE = ("numpy", "msgspec", "harness.providers.simulated", "harness.run.summary")


def bytes_read() -> int:
    """Every byte this process has read so far (`rchar`)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


if __name__ == "__main__":
    for name in _LATE:
        importlib.import_module(name)
    before = bytes_read()
    code = main(sys.argv[1:])
    print(f"bytes_read={bytes_read() - before}", file=sys.stderr)
    sys.exit(code)
