"""`python -m benchmarks.peak_rss ARGS`: run the harness CLI, then print this process's peak RSS.

Read from /proc/self/status (VmHWM), which starts afresh at exec; a parent's wait4 ru_maxrss would
also count the memory of the benchmark process that forked it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.cli import main


def peak_rss_mb() -> float:
    """This process's high-water resident set size, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    code = main(sys.argv[1:])
    print(f"peak_rss_mb={peak_rss_mb():.1f}", file=sys.stderr)
    sys.exit(code)
