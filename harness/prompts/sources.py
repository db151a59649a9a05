"""Where a prompt set is and which files it reads (their rows: harness.prompts.readers).

A source is a file (`.json`, `.jsonl`/`.ndjson`, `.csv`, `.tsv`, `.parquet`, `.arrow`), a folder
(a Hugging Face dataset saved with `save_to_disk`, or a folder of data files such as a hub
dataset's snapshot), or `hf://datasets/ORG/NAME[@REVISION][/FOLDER]`: a hub dataset read from the
local Hugging Face cache only, never downloaded (harness.prompts.hub_cache). The format comes from
the extension unless `format` says otherwise.

A folder of data files is read as Hugging Face lays out a dataset: files whose path names a split
(`test-00000-of-00001.parquet`, `data/train.jsonl`, `validation/part-0.csv`) belong to it, and
with any such file only one split is read (`split`, needed when there are several; files naming
none are then left out: they are a dataset's metadata). Data files in several sub-folders that
are not splits are several configurations (gsm8k's `main/` and `socratic/`): the path must name
one.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.errors import PromptsError
from harness.fields import described, option
from harness.input_files import refuse_special
from harness.prompts.hub_cache import hub_snapshot
from harness.prompts.readers import Batches, Rows, read_batches, read_rows, where

Format = Literal["auto", "json", "jsonl", "csv", "tsv", "parquet", "arrow"]

_EXTENSIONS: dict[str, Format] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
}
_SPLIT_NAMES = ("train", "validation", "valid", "dev", "test", "eval")
_NOT_DATA = ("dataset_info", "dataset_infos", "dataset_dict", "state")  # datasets' own files


@dataclass(frozen=True)
class FieldMap:
    """`[prompts]` fields naming which column holds what, for sets the built-in names miss.
    Each value is a field name, or a dotted path into a nested object (`metadata.subject`)."""

    id: str = option("", "the field holding each prompt's id (empty: the built-in names)")
    text: str = option(
        "", "the field holding the prompt's text (empty: the built-in names); not with template"
    )
    template: str = option(
        "", 'the prompt built from fields, e.g. "Question: {question}\\nAnswer:" (not with text)'
    )
    system: str = option("", "the field holding a system prompt (empty: the built-in names)")
    category: str = option(
        "", "the field holding the prompt's category (empty: the built-in names)"
    )
    probe: str = option("", "the field flagging a synthetic probe (empty: the built-in names)")
    target: str = option("", "the field holding the expected answer (empty: the built-in names)")
    drop: tuple[str, ...] = option((), "fields not kept on records (images, long contexts)")


@dataclass(frozen=True, kw_only=True)
class PromptTable(FieldMap):
    """`prompts` in the config as a table; a plain string is its `path` alone."""

    path: str = field(
        metadata=described(
            "a file, a folder, or hf://datasets/ORG/NAME (relative to the config); not empty"
        )
    )
    format: Format = option("auto", "the file format (auto: from the extension)")
    split: str = option("", "the dataset split to read, when there are several")


@dataclass(frozen=True)
class PromptSource:
    """A prompt set's location (resolved), how to read it, and which fields hold what."""

    location: str  # a path, or an hf://datasets/... name
    format: Format = "auto"
    split: str = ""
    fields: FieldMap = field(default_factory=FieldMap)

    @classmethod
    def from_config(cls, table: PromptTable, base: Path) -> PromptSource:
        """The source a config names; paths are relative to the config file's folder."""
        location = table.path
        if not location.startswith("hf://"):
            location = str((base / Path(location).expanduser()).resolve())
        mapping = {f.name: getattr(table, f.name) for f in dataclasses.fields(FieldMap)}
        return cls(location, table.format, table.split, FieldMap(**mapping))

    def at(self, location: str | Path) -> PromptSource:
        """Another file or folder (`--prompts`), read by its own extension, with this source's
        split and field mapping."""
        location = str(location)
        if not location.startswith("hf://"):
            location = str(Path(location).expanduser().resolve())
        return PromptSource(location, "auto", self.split, self.fields)

    def __str__(self) -> str:
        return self.location + (f" (split {self.split})" if self.split else "")


@dataclass(frozen=True)
class DataFile:
    """One file to read and its format."""

    path: Path
    format: Format

    def where(self, position: int) -> str:
        """A row's place in the file, as its reader counts."""
        return where(self.format, position)

    def rows(self) -> Rows:
        """Every row and its position."""
        return read_rows(self.path, self.format)

    def batches(self) -> Batches:
        """Every row and its position, several thousand at a time."""
        return read_batches(self.path, self.format)

    @property
    def typed(self) -> bool:
        """Whether values arrive with column types (Parquet, Arrow), some of which JSON lacks."""
        return self.format in ("parquet", "arrow")

    @property
    def text_cells(self) -> bool:
        """Whether every value arrives as text (CSV, TSV), so flags are written as words."""
        return self.format in ("csv", "tsv")


def data_files(source: PromptSource) -> tuple[list[DataFile], str | None]:
    """The files a source reads, in order, and the hub commit they come from (None off the hub)."""
    commit = None
    if source.location.startswith("hf://"):
        path, commit = hub_snapshot(source.location)
    else:
        path = Path(source.location)
    if path.is_dir():
        return _folder_files(path, source), commit
    if not path.exists():
        hint = " (a Hugging Face hub dataset? write hf://datasets/ORG/NAME)" * (not path.suffix)
        raise PromptsError(f"{source.location}: no such file or folder{hint}")
    refuse_special(path)
    if source.split:
        raise PromptsError(f"{path}: split {source.split!r} given, but one file has no splits")
    return [DataFile(path, _format_of(path, source.format))], commit


def _format_of(path: Path, declared: Format) -> Format:
    if declared != "auto":
        return declared
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        known = ", ".join(sorted(_EXTENSIONS))
        raise PromptsError(f"{path}: unknown format (extensions: {known}; or set prompts.format)")
    return found


def _folder_files(folder: Path, source: PromptSource) -> list[DataFile]:
    """A saved Hugging Face dataset (its Arrow files), or the data files of a folder (one split)."""
    if (folder / "dataset_dict.json").exists():
        splits = _json_file(folder / "dataset_dict.json").get("splits", [])
        split = _pick_split(folder, [str(s) for s in splits], source.split)
        return _folder_files(folder / split, PromptSource(str(folder / split), source.format))
    if (folder / "state.json").exists():
        if source.split:
            raise PromptsError(f"{folder}: split {source.split!r} given, but it is one split")
        state = _json_file(folder / "state.json")
        names = [entry.get("filename") for entry in state.get("_data_files", [])]
        if not names or not all(isinstance(n, str) for n in names):
            raise PromptsError(f"{folder / 'state.json'}: _data_files: expected a list of files")
        return [DataFile(folder / name, "arrow") for name in names]
    found = sorted(_data_paths(folder))
    if not found:
        raise PromptsError(f"{folder}: no data files ({', '.join(sorted(_EXTENSIONS))})")
    by_split: dict[str, list[Path]] = {}
    for path in found:
        by_split.setdefault(_split_of(path.relative_to(folder)), []).append(path)
    named = sorted(s for s in by_split if s)
    if named:
        chosen = by_split[_pick_split(folder, named, source.split)]
    elif source.split:
        raise PromptsError(f"{folder}: split {source.split!r} given, but no file names a split")
    else:
        chosen = found
    _one_configuration(folder, chosen)
    for path in chosen:
        refuse_special(path)  # a FIFO or a link to nothing named as a data file: never skipped
    return [DataFile(path, _format_of(path, source.format)) for path in chosen]


def _data_paths(folder: Path) -> Iterator[Path]:
    """Every path under `folder` named as a data file, whatever it is but a folder (a FIFO or a
    broken link included, for `_folder_files` to refuse rather than skip)."""
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if (
            path.suffix.lower() in _EXTENSIONS
            and path.stem not in _NOT_DATA
            and not any(part.startswith(".") for part in relative.parts)
            and not path.is_dir()
        ):
            yield path


def _one_configuration(folder: Path, files: list[Path]) -> None:
    """Refuse files spread over sub-folders that are not splits: configurations of a dataset."""
    tops = sorted(
        {
            path.relative_to(folder).parts[0]
            for path in files
            if len(path.relative_to(folder).parts) > 1
        }
        - {*_SPLIT_NAMES, "data"}
    )
    if len(tops) > 1:
        shown = ", ".join(tops[:8]) + (", ..." if len(tops) > 8 else "")
        raise PromptsError(
            f"{folder}: {len(tops)} configurations ({shown}): add one to the path "
            f"({folder.name}/{tops[0]})"
        )


def _split_of(relative: Path) -> str:
    """The split a data file belongs to by Hugging Face's naming (`test-00000-of-00001.parquet`,
    `data/train.jsonl`, `validation/part-0.csv`); "" when its path names none."""
    words = re.split(r"[/\\_.-]+", str(relative.with_suffix("")).lower())
    return next((word for word in words if word in _SPLIT_NAMES), "")


def _pick_split(folder: Path, splits: list[str], wanted: str) -> str:
    if wanted:
        if wanted not in splits:
            raise PromptsError(f"{folder}: no split {wanted!r} (splits: {', '.join(splits)})")
        return wanted
    if len(splits) == 1:
        return splits[0]
    raise PromptsError(
        f"{folder}: {len(splits)} splits ({', '.join(splits)}): choose one with prompts.split"
    )


def _json_file(path: Path) -> dict[str, Any]:
    refuse_special(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PromptsError(f"{path}: cannot read: {exc}") from None
    if not isinstance(document, dict):
        raise PromptsError(f"{path}: expected a JSON object")
    return document
