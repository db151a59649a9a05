"""Where a prompt set is and how to read it: rows streamed from any of the formats researchers keep.

A source is a file (`.json`, `.jsonl`/`.ndjson`, `.csv`, `.tsv`, `.parquet`, `.arrow`), a folder
(a Hugging Face dataset saved with `save_to_disk`, or a folder of data files such as a hub
dataset's snapshot), or `hf://datasets/ORG/NAME[@REVISION][/SUBFOLDER]`: a hub dataset read from
the local Hugging Face cache only, never downloaded. The format comes from the extension unless
`format` says otherwise; a folder with several splits needs `split`.

Every reader yields `(position, row)`: rows are plain mappings, and `DataFile.where(position)`
names the row for errors: `prompts[2]` (JSON), `line 7` (JSONL), `row 4` (CSV/TSV, counted as a
spreadsheet counts them: the header is row 1), `row 3` (Parquet, Arrow). JSONL, CSV/TSV, Parquet
and Arrow stream (memory holds one batch, not the file); a JSON document is read whole.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from harness.errors import PromptsError

Format = Literal["auto", "json", "jsonl", "csv", "tsv", "parquet", "arrow"]
Row = Mapping[str, Any]

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
_HUB = re.compile(r"hf://datasets/([\w.-]+/[\w.-]+)(?:@([\w./-]+?))?(/.*)?$")
_SPLIT_NAMES = ("train", "validation", "valid", "dev", "test", "eval")
_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class FieldMap:
    """`[prompts]` fields naming which column holds what, for sets the built-in names miss.
    Each value is a field name, or a dotted path into a nested object (`metadata.subject`)."""

    id: str = ""
    text: str = ""
    template: str = ""  # the prompt built from fields: "Question: {question}\nAnswer:"
    system: str = ""
    category: str = ""
    probe: str = ""  # the synthetic-probe flag
    target: str = ""


@dataclass(frozen=True, kw_only=True)
class PromptTable(FieldMap):
    """`prompts` in the config as a table; a plain string is its `path` alone."""

    path: str
    format: Format = "auto"
    split: str = ""


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
        """A row's place in the file, as its readers count."""
        if self.format == "json":
            return f"prompts[{position}]"
        return f"{'line' if self.format == 'jsonl' else 'row'} {position}"

    @property
    def text_cells(self) -> bool:
        """Whether every value arrives as text (CSV, TSV), so flags are written as words."""
        return self.format in ("csv", "tsv")


def data_files(source: PromptSource) -> tuple[list[DataFile], str | None]:
    """The files a source reads, in order, and the hub commit they come from (None off the hub)."""
    commit = None
    if source.location.startswith("hf://"):
        path, commit = _hub_snapshot(source.location)
    else:
        path = Path(source.location)
    if path.is_dir():
        return _folder_files(path, source), commit
    if not path.exists():
        hint = " (a Hugging Face hub dataset? write hf://datasets/ORG/NAME)" * (not path.suffix)
        raise PromptsError(f"{source.location}: no such file or folder{hint}")
    return [DataFile(path, _format_of(path, source.format))], commit


def iter_rows(file: DataFile) -> Iterator[tuple[int, Any]]:
    """Every row of one data file and its position (see `DataFile.where`); PromptsError for a
    file that cannot be read."""
    try:
        yield from _READERS[file.format](file.path)
    except OSError as exc:
        raise PromptsError(f"{file.path}: cannot read: {exc.strerror or exc}") from None


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
        state = _json_file(folder / "state.json")
        names = [entry.get("filename") for entry in state.get("_data_files", [])]
        if not names or not all(isinstance(n, str) for n in names):
            raise PromptsError(f"{folder / 'state.json'}: _data_files: expected a list of files")
        return [DataFile(folder / name, "arrow") for name in names]
    found = sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in _EXTENSIONS
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    if not found:
        raise PromptsError(f"{folder}: no data files ({', '.join(sorted(_EXTENSIONS))})")
    by_split: dict[str, list[Path]] = {}
    for path in found:
        by_split.setdefault(_split_of(path.relative_to(folder)), []).append(path)
    named = sorted(s for s in by_split if s)
    if source.split or len(named) > 1:
        chosen = by_split.get(_pick_split(folder, named, source.split), [])
    else:
        chosen = found
    return [DataFile(path, _format_of(path, source.format)) for path in chosen]


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


def _hub_snapshot(location: str) -> tuple[Path, str]:
    """A hub dataset's snapshot folder in the local cache, and its commit; never the network."""
    match = _HUB.match(location)
    if match is None:
        raise PromptsError(f"{location}: expected hf://datasets/ORG/NAME[@REVISION][/FOLDER]")
    name, revision, inner = match.group(1), match.group(2) or "main", match.group(3) or ""
    cache = _hub_cache() / f"datasets--{name.replace('/', '--')}"
    commit = revision
    ref = cache / "refs" / revision
    if ref.is_file():
        commit = ref.read_text().strip()
    snapshot = cache / "snapshots" / commit
    if not snapshot.is_dir():
        raise PromptsError(
            f"{location}: not in the local Hugging Face cache ({cache}); the harness never "
            f"downloads prompts: run `hf download --repo-type dataset {name}` first, or point "
            "prompts at a folder saved with datasets' save_to_disk"
        )
    return snapshot / inner.strip("/"), commit


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or str(Path("~/.cache/huggingface").expanduser())
    return Path(home) / "hub"


def _json_file(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PromptsError(f"{path}: cannot read: {exc}") from None
    if not isinstance(document, dict):
        raise PromptsError(f"{path}: expected a JSON object")
    return document


def _json_rows(path: Path) -> Iterator[tuple[int, Any]]:
    document = _decode(path, path.read_bytes(), "")
    if isinstance(document, Mapping):
        if "prompts" not in document:
            raise PromptsError(
                f'{path}: expected a list of prompts or an object with a "prompts" list'
            )
        document = document["prompts"]
    if not isinstance(document, list):
        raise PromptsError(f"{path}: prompts: expected a list")
    yield from enumerate(document)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            if line.strip():
                yield number, _decode(path, line, f"line {number}, ")


def _decode(path: Path, data: bytes, where: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        position = f"column {exc.colno}" if where else f"line {exc.lineno}, column {exc.colno}"
        raise PromptsError(f"{path}: {where}{position}: invalid JSON: {exc.msg}") from None


def _delimited_rows(path: Path, delimiter: str) -> Iterator[tuple[int, Any]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return
            names = [name.strip() for name in header]
            repeated = next((n for i, n in enumerate(names) if n in names[:i]), None)
            if repeated is not None or "" in names:
                what = f"column {repeated!r} twice" if repeated else "an empty column name"
                raise PromptsError(f"{path}: line 1: header has {what}")
            for number, cells in enumerate(reader, start=2):
                if not any(cell.strip() for cell in cells):
                    continue
                if len(cells) != len(names):
                    raise PromptsError(
                        f"{path}: row {number}: {len(cells)} cells for {len(names)} columns"
                    )
                yield number, dict(zip(names, cells, strict=True))
        except csv.Error as exc:
            raise PromptsError(f"{path}: line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise PromptsError(f"{path}: not UTF-8 text ({exc.reason})") from None


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    return _delimited_rows(path, ",")


def _tsv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    return _delimited_rows(path, "\t")


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq
    from pyarrow import ArrowException

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=_BATCH_ROWS)
        yield from _numbered(batch.to_pylist() for batch in batches)
    except ArrowException as exc:
        raise PromptsError(f"{path}: not a readable Parquet file: {exc}") from None


def _arrow_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """An Arrow IPC stream (what `save_to_disk` writes) or an Arrow IPC file, memory-mapped."""
    import pyarrow as pa

    try:
        source = pa.memory_map(str(path))
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            source.seek(0)
            opened = pa.ipc.open_file(source)
            reader = (opened.get_batch(i) for i in range(opened.num_record_batches))
        yield from _numbered(batch.to_pylist() for batch in reader)
    except pa.ArrowException as exc:
        raise PromptsError(f"{path}: not a readable Arrow file: {exc}") from None


def _numbered(batches: Iterator[list[dict[str, Any]]]) -> Iterator[tuple[int, Any]]:
    number = 0
    for rows in batches:
        for row in rows:
            number += 1
            yield number, row


_READERS = {
    "json": _json_rows,
    "jsonl": _jsonl_rows,
    "csv": _csv_rows,
    "tsv": _tsv_rows,
    "parquet": _parquet_rows,
    "arrow": _arrow_rows,
}
