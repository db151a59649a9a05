"""Which prompts of a set a run takes: filters, a stratified sample, then the first N.

In order: `--category` keeps the named categories, `--ids FILE` the listed ids, `--probes-only` /
`--no-probes` one side of the synthetic-probe flag; `--sample N` then draws N prompts stratified
by category and probe flag, and `--limit N` keeps the first N of what is left, in file order.

The sample is deterministic: within each stratum, prompts are ranked by a hash of the seed and
their id, so the same seed draws the same prompts whatever the file's order, and adding prompts
to a set changes few of those drawn. Strata get one prompt each first (every category before a
category's second stratum, so N >= the number of categories covers every category), then the
rest one at a time to the stratum with the most prompts per prompt drawn (Sainte-Lague), which
keeps the shares close to the strata's sizes and makes every sample of N part of the sample of
N + 1: a run that grows its sample only adds prompts.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import InputError, listed
from harness.input_files import refuse_special, utf8_problem
from harness.prompts.load import Prompt

Stratum = tuple[str, bool]


@dataclass(frozen=True)
class Selection:
    """The command line's choice of prompts; empty means all of them."""

    categories: tuple[str, ...] = ()
    ids_file: Path | None = None
    probes: bool | None = None  # True: probes only; False: no probes
    sample: int | None = None
    limit: int | None = None

    def apply(self, prompts: Sequence[Prompt], seed: int) -> list[Prompt]:
        """The prompts chosen, in file order; InputError for a filter that names what the set
        lacks, or that leaves nothing."""
        chosen = list(prompts)
        if self.ids_file is not None:
            ids = read_ids(self.ids_file)
            _all_known(ids, chosen, self.ids_file)
        if self.categories:
            present = {p.category for p in chosen}
            missing = [c for c in self.categories if c not in present]
            if missing:
                raise InputError(
                    f"--category: no prompt in {listed(missing)} (have: {listed(sorted(present))})"
                )
            wanted = set(self.categories)
            chosen = [p for p in chosen if p.category in wanted]
        if self.ids_file is not None:
            chosen = [p for p in chosen if p.id in ids]
        if self.probes is not None:
            chosen = [p for p in chosen if p.is_synthetic_probe == self.probes]
        if self.sample is not None:
            chosen = stratified_sample(chosen, self.sample, seed)
        if self.limit is not None:
            chosen = chosen[: self.limit]
        if not chosen:
            raise InputError(f"no prompts left to run after {self.describe()}")
        return chosen

    def describe(self) -> str:
        """The options as typed, for messages."""
        return " ".join(self.argv()) or "no filter"

    def argv(self) -> list[str]:
        """The command-line options that make this selection again."""
        words: list[str] = []
        if self.categories:
            words += ["--category", ",".join(self.categories)]
        if self.ids_file is not None:
            words += ["--ids", str(self.ids_file)]
        if self.probes is not None:
            words.append("--probes-only" if self.probes else "--no-probes")
        if self.sample is not None:
            words += ["--sample", str(self.sample)]
        if self.limit is not None:
            words += ["--limit", str(self.limit)]
        return words

    def as_record(self, seed: int) -> dict[str, Any]:
        """What the run line keeps of it: each filter set, the ids file's hash, the sample's
        seed."""
        record: dict[str, Any] = {}
        if self.categories:
            record["categories"] = list(self.categories)
        if self.ids_file is not None:
            record["ids_file"] = {
                "path": str(self.ids_file.resolve()),
                "sha256": hashlib.sha256(self.ids_file.read_bytes()).hexdigest(),
            }
        if self.probes is not None:
            record["probes"] = "only" if self.probes else "none"
        if self.sample is not None:
            record["sample"] = {"n": self.sample, "seed": seed, "by": ["category", "probe"]}
        if self.limit is not None:
            record["limit"] = self.limit
        return record

    def keeps_record(self) -> RecordFilter:
        """A test for ledger records by the filters a record itself can answer (category, ids,
        probe flag): what `status` shows under them."""
        return RecordFilter(self)


class RecordFilter:
    """A selection's test for ledger records, which notes the categories it meets and the ids
    it meets, so that a category or id no record has is refused as `run` refuses one its prompt
    set lacks (`refuse_unmet`, once every record has been tested)."""

    def __init__(self, selection: Selection) -> None:
        self.categories = set(selection.categories)
        self.ids_file = selection.ids_file
        self.ids = read_ids(selection.ids_file) if selection.ids_file is not None else None
        self.probes = selection.probes
        self.met_categories: set[Any] = set()
        self.met_ids: set[str] = set()

    def __call__(self, record: dict[str, Any]) -> bool:
        category, prompt_id = record.get("prompt_category"), record.get("prompt_id")
        self.met_categories.add(category)
        listed = self.ids is None or prompt_id in self.ids
        if listed and self.ids is not None:
            self.met_ids.add(str(prompt_id))  # one of the listed ids: a str already
        return (
            listed
            and (not self.categories or category in self.categories)
            and (self.probes is None or record.get("is_synthetic_probe") is self.probes)
        )

    def refuse_unmet(self, where: object) -> None:
        """InputError, naming `where` (the ledgers read), for a category or an id of `--ids`
        that no record has."""
        missing = sorted(self.categories - self.met_categories)
        if missing:
            known = listed(sorted(str(c) for c in self.met_categories))
            raise InputError(f"{where}: --category: no record in {listed(missing)} (have: {known})")
        unmet = sorted((self.ids or set()) - self.met_ids)
        if unmet:
            shown = ", ".join(unmet[:5]) + (", ..." if len(unmet) > 5 else "")
            raise InputError(
                f"{where}: --ids {self.ids_file}: {len(unmet):,} id(s) with no record here: {shown}"
            )


def read_ids(path: Path) -> set[str]:
    """Prompt ids, one per line; blank lines and lines starting with # are skipped."""
    refuse_special(path, "--ids")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"--ids {path}: cannot read: {exc.strerror or exc}") from None
    bad = utf8_problem(data)
    if bad is not None:
        raise InputError(f"--ids {path}: line {bad[0]}: not UTF-8 text ({bad[1]})")
    text = data.decode("utf-8").removeprefix("\ufeff")
    ids = {line.strip() for line in text.splitlines()}
    ids = {i for i in ids if i and not i.startswith("#")}
    if not ids:
        raise InputError(f"--ids {path}: no ids in it (one per line)")
    return ids


def _all_known(ids: set[str], prompts: list[Prompt], path: Path) -> None:
    unknown = ids - {p.id for p in prompts}
    if unknown:
        shown = ", ".join(sorted(unknown)[:5]) + (", ..." if len(unknown) > 5 else "")
        raise InputError(f"--ids {path}: {len(unknown):,} id(s) not in the prompt set: {shown}")


def stratified_sample(prompts: Sequence[Prompt], n: int, seed: int) -> list[Prompt]:
    """`n` prompts drawn by stratum (category, probe flag), in file order (see the module)."""
    if n >= len(prompts):
        return list(prompts)
    strata: dict[Stratum, list[Prompt]] = {}
    for prompt in prompts:
        strata.setdefault((prompt.category, prompt.is_synthetic_probe), []).append(prompt)
    quotas = _quotas({s: len(members) for s, members in strata.items()}, n, seed)
    chosen: set[str] = set()
    for stratum, members in strata.items():
        ranked = sorted(members, key=lambda p: _rank(seed, p.id))
        chosen.update(p.id for p in ranked[: quotas[stratum]])
    return [p for p in prompts if p.id in chosen]


def _quotas(sizes: dict[Stratum, int], n: int, seed: int) -> Counter[Stratum]:
    """How many prompts each stratum gives: one each in coverage order, then one at a time to
    the stratum with the highest size / (2 x drawn + 1) that has prompts left (ties: coverage
    order). Each draw only adds to the last, so the quotas of N + 1 contain those of N."""
    order = _coverage_order(sizes, seed)
    quotas: Counter[Stratum] = Counter({s: 1 for s in order[:n]})
    place = {s: i for i, s in enumerate(order)}
    heap = [(-sizes[s] / 3, place[s], s) for s in order if sizes[s] > 1]
    heapq.heapify(heap)
    for _ in range(n - len(quotas)):
        _, at, stratum = heapq.heappop(heap)
        quotas[stratum] += 1
        if quotas[stratum] < sizes[stratum]:
            heapq.heappush(heap, (-sizes[stratum] / (2 * quotas[stratum] + 1), at, stratum))
    return quotas


def _coverage_order(sizes: dict[Stratum, int], seed: int) -> list[Stratum]:
    """Strata in the order they get their first prompt: each category's largest stratum before
    any category's second one; larger strata first, ties broken by the seeded hash."""
    ranked = sorted(sizes, key=lambda s: (-sizes[s], _rank(seed, f"{s[0]}|{s[1]}")))
    firsts: list[Stratum] = []
    seconds: list[Stratum] = []
    covered: set[str] = set()
    for stratum in ranked:
        (seconds if stratum[0] in covered else firsts).append(stratum)
        covered.add(stratum[0])
    return firsts + seconds


def _rank(seed: int, name: str) -> bytes:
    return hashlib.sha256(f"{seed}|{name}".encode()).digest()
