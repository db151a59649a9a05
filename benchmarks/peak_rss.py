"""`python -m benchmarks.peak_rss ARGS`: run the harness CLI, then print this process's peak RSS.

Peak RSS is read from /proc/self/status (VmHWM), which starts afresh at exec; a parent's wait4
ru_maxrss would also count the memory of the benchmark process that forked it. `tree_pss_kb`
measures a process with the workers it forks: their PSS (each page shared by n processes
counted 1/n in each, so workers sharing their parent's pages are not counted twice), sampled by
the benchmark from outside (`benchmarks.project.measured_child`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.cli.main import main


def peak_rss_mb() -> float:
    """This process's high-water resident set size, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def tree_pss_kb(pid: int) -> int:
    """The PSS of process `pid` and every process under it, in kB (0 for one that is gone)."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += tree_pss_kb(int(child))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return total


if __name__ == "__main__":
    code = main(sys.argv[1:])
    print(f"peak_rss_mb={peak_rss_mb():.1f}", file=sys.stderr)
    sys.exit(code)
