"""Shards: a run's jobs split into N disjoint, deterministic parts, for job arrays.

`run CONFIG --shard K/N` runs only the jobs whose key falls in part K of N (0 <= K < N, 0-based
like SLURM's `$SLURM_ARRAY_TASK_ID` under `--array=0-(N-1)`, a Kubernetes indexed Job's
`$JOB_COMPLETION_INDEX` and a Ray task's index). A key's part is the first 8 bytes of the SHA-256
of its UTF-8 text, read big-endian, modulo N: it depends on the key alone, never on which jobs are
done, on the machine or on the Python version, and a good hash spreads every variant, prompt and
sample evenly over the parts. Shard K of N writes to `OUTPUT/shards/K-of-N/ledger.jsonl`
(see `harness.ledger.sets` for reading such a tree and `harness.ledger.merge` for joining it).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError

SHARDS_DIR = "shards"
_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
_MOST = 1_000_000  # parts; more is surely a typo


@dataclass(frozen=True, slots=True)
class Shard:
    """Part `index` (0-based) of `count`."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`K/N` from the command line; InputError with one line saying what is wrong."""
        found = _SPEC.fullmatch(text)
        if found is None:
            raise InputError(f"--shard {text}: expected K/N, e.g. 0/8 (part K of N, 0-based)")
        index, count = int(found[1]), int(found[2])
        if not 1 <= count <= _MOST:
            raise InputError(f"--shard {text}: N must be from 1 to {_MOST:,}, got {count:,}")
        if index >= count:
            raise InputError(
                f"--shard {text}: K must be from 0 to {count - 1} (0-based, as "
                f"$SLURM_ARRAY_TASK_ID with --array=0-{count - 1}), got {index}"
            )
        return cls(index, count)

    @property
    def name(self) -> str:
        """`K-of-N`: the shard's folder under `OUTPUT/shards/`."""
        return f"{self.index}-of-{self.count}"

    def folder(self, output: Path) -> Path:
        """Where this shard writes when no `--output` is given."""
        return output / SHARDS_DIR / self.name

    def holds(self, key: str) -> bool:
        """Whether the job with this key is in this shard."""
        return part_of(key, self.count) == self.index

    def as_record(self) -> dict[str, object]:
        """The shard as the run line records it."""
        return {"index": self.index, "count": self.count, "hash": "sha256[:8] mod count"}

    def argv(self) -> list[str]:
        """The command-line words that select this shard."""
        return ["--shard", f"{self.index}/{self.count}"]


def part_of(key: str, count: int) -> int:
    """The part (0 .. count - 1) a job key falls in."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def shard_name_order(folder: Path) -> tuple[int, int, str]:
    """A sort key for shard folders: `2-of-8` before `10-of-8`, by N and then K."""
    found = re.fullmatch(r"(\d+)-of-(\d+)", folder.name)
    if found is None:
        return (1 << 62, 0, folder.name)
    return (int(found[2]), int(found[1]), folder.name)
