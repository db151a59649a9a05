"""Filled annotation sheets read back: checked against their key, stored as scores.

The key (`harness.analysis.annotation_key`) and every sheet are checked before anything is
stored; each problem is one line naming the file and the key's field or the spreadsheet row (the
header is row 1): a key item whose answer is in no record of the output's ledger, a sheet of
another annotation (its row ids carry another export's tag: the line names that annotation), a
sheet empty or with its header alone, a row id the key does not have, rows of two raters in one
sheet, a row twice, a label outside the label set (labels match ignoring case and surrounding
spaces), and the rows a sheet lacks; the rows left without a label are listed in one line per
sheet. With any problem nothing is written.

A rater's labels become scores `human:<rater>` (with `rater` set and the `notes` cell as
`detail`), keyed by the answer the rater was shown: an answer rerun since is not labelled by them.
Importing a sheet again appends only the labels that changed.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from harness.analysis.annotation import key_path
from harness.analysis.annotation_key import (
    AnnotationKey,
    is_digest,
    load_key,
    parse_row_id,
    row_id,
)
from harness.analysis.scores import (
    SCORES_NAME,
    answer_digest,
    read_score_states,
    score_key,
    score_line,
)
from harness.errors import InputError
from harness.input_files import special_problem, utf8_problem_in
from harness.ledger.lines import LEDGER_NAME, iter_lines
from harness.ledger.sets import ledgers_of, tree
from harness.ledger.writer import LedgerWriter

_MOST_PROBLEMS = 20


@dataclass
class RaterSheet:
    """One rater's labels (and notes) by item."""

    rater: str
    path: Path
    labels: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def read_import(
    output: Path, name: str, paths: Sequence[Path]
) -> tuple[AnnotationKey, list[RaterSheet]]:
    """The key of annotation `name` in `output` and every sheet, checked against it; one
    InputError listing every problem of both (nothing is stored then)."""
    problems: list[str] = []
    key = load_key(key_path(output, name), problems)
    _answers_at_hand(output, key, problems)
    whole = key.labels and key.raters and key.items and key.tag != ""
    sheets = read_sheets(key, paths, problems) if whole else []
    if problems:
        shown = problems[:_MOST_PROBLEMS]
        if len(problems) > _MOST_PROBLEMS:
            shown.append(f"... and {len(problems) - _MOST_PROBLEMS} more problem(s)")
        raise InputError("\n".join(shown))
    return key, sheets


def read_sheets(key: AnnotationKey, paths: Sequence[Path], problems: list[str]) -> list[RaterSheet]:
    """Every sheet, checked against the key; each problem noted in `problems`."""
    sheets: list[RaterSheet] = []
    for path in sorted({path for path in paths if paths.count(path) > 1}):
        problems.append(f"{path}: given {paths.count(path)} times; give each sheet once")
    for path in dict.fromkeys(paths):
        sheet = _read_sheet(key, path, problems)
        if sheet is None:
            continue
        earlier = next((s for s in sheets if s.rater == sheet.rater), None)
        if earlier is not None:
            problems.append(f"{path}: holds {sheet.rater}'s rows, as {earlier.path} does")
        sheets.append(sheet)
    return sheets


def _read_sheet(key: AnnotationKey, path: Path, problems: list[str]) -> RaterSheet | None:
    rows = _rows(path, problems)
    if rows is None:
        return None
    if not any(cell.strip() for cells in rows[1:] for cell in cells):
        problems.append(f"{path}: no rows to import (the sheet is empty or holds its header alone)")
        return None
    header = rows[0]
    missing = [column for column in ("row", "label") if column not in header]
    if missing:
        problems.append(f'{path}: row 1: no "{missing[0]}" column (keep the header row)')
        return None
    at = {name: header.index(name) for name in ("row", "label", "notes") if name in header}
    first = next(cells for cells in rows[1:] if any(cell.strip() for cell in cells))
    foreign = _foreign(key, path, first[at["row"]].strip() if at["row"] < len(first) else "")
    if foreign is not None:
        problems.append(foreign)
        return None
    folded = {label.casefold(): label for label in key.labels}
    sheet: RaterSheet | None = None
    seen: dict[str, int] = {}
    unlabelled: list[int] = []
    for number, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        cell = {name: cells[i].strip() if i < len(cells) else "" for name, i in at.items()}
        where = f"{path}: row {number}"
        rater, item = _row_id(key, cell["row"])
        if rater is None:
            problems.append(f"{where}: unknown row id {cell['row']!r}")
            continue
        if sheet is None:
            sheet = RaterSheet(rater, path)
        elif rater != sheet.rater:
            problems.append(
                f"{where}: row {cell['row']} is {rater}'s; the rows above are {sheet.rater}'s"
            )
            continue
        if item in seen:
            problems.append(f"{where}: row {cell['row']} again (first at row {seen[item]})")
            continue
        seen[item] = number
        if not cell["label"]:
            unlabelled.append(number)
            continue
        label = folded.get(cell["label"].casefold())
        if label is None:
            expected = ", ".join(key.labels)
            problems.append(f"{where}: label {cell['label']!r} is not one of {expected}")
            continue
        sheet.labels[item] = label
        if cell.get("notes"):
            sheet.notes[item] = cell["notes"]
    if sheet is None:
        problems.append(f"{path}: no rows")
        return None
    if unlabelled:
        listed = ", ".join(map(str, unlabelled[:10])) + (", ..." if len(unlabelled) > 10 else "")
        problems.append(f"{path}: {len(unlabelled)} row(s) without a label: row {listed}")
    lacking = [row_id(key.tag, sheet.rater, item) for item in key.items if item not in seen]
    if lacking:
        listed = ", ".join(lacking[:5]) + (", ..." if len(lacking) > 5 else "")
        problems.append(f"{path}: {len(lacking)} row(s) missing: {listed}")
    return sheet


def _rows(path: Path, problems: list[str]) -> list[list[str]] | None:
    """The sheet's rows as cells; None (and a problem) when it cannot be read as CSV."""
    special = special_problem(path)  # a FIFO would block the import
    if special is not None:
        problems.append(special)
        return None
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            return list(csv.reader(file))
    except UnicodeDecodeError as exc:  # raised for a block read ahead: find the true line
        line, reason = utf8_problem_in(path) or (0, exc.reason)
        problems.append(f"{path}: line {line}: not UTF-8 text ({reason})")
    except (OSError, csv.Error) as exc:
        problems.append(f"{path}: cannot read as a UTF-8 CSV sheet: {exc}")
    return None


def _row_id(key: AnnotationKey, text: str) -> tuple[str | None, str]:
    """The rater and item of a row id of this key's export; (None, "") when it is not one."""
    parsed = parse_row_id(text)
    if parsed is None:
        return None, ""
    tag, rater, item = parsed
    if tag == key.tag and rater in key.raters and item in key.items:
        return rater, item
    return None, item


def _foreign(key: AnnotationKey, path: Path, first_id: str) -> str | None:
    """The line that refuses a sheet of another export (its first row id carries another tag,
    or none where the key's have one), naming the annotation it belongs to; None when it is
    not one (a damaged id is the row's own problem)."""
    parsed = parse_row_id(first_id)
    if parsed is None or parsed[0] == key.tag:
        return None
    output = key.path.parent
    owners = [name for name, tag in _exports(output) if tag == parsed[0]]
    if len(owners) == 1:
        named = "without --name" if owners[0] == "annotation" else f"with --name {owners[0]}"
        return (
            f"{path}: a sheet of annotation {owners[0]!r}, not of {key.name!r} "
            f"(its row ids say so): import it {named}"
        )
    if owners:  # keys of schema 1: their row ids are alike
        whose = f"of one of annotations {', '.join(map(repr, owners))}; import it with its --name"
    else:
        whose = f"of an export whose key is not in {output}"
    kind = "its row ids carry no tag" if parsed[0] is None else f"its row ids' tag is {parsed[0]}"
    return f"{path}: not a sheet of annotation {key.name!r} ({kind}): a sheet {whose}"


def _exports(output: Path) -> list[tuple[str, str | None]]:
    """The name and row-id tag (None: a key of schema 1) of every readable key in `output`."""
    found: list[tuple[str, str | None]] = []
    for path in sorted(output.glob("*.key.json")):
        if special_problem(path) is not None:
            continue
        try:
            body = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if isinstance(body, dict) and isinstance(body.get("name"), str):
            found.append((body["name"], body.get("tag")))
    return found


def _answers_at_hand(output: Path, key: AnnotationKey, problems: list[str]) -> None:
    """Note each key item whose answer (its key, and the digest of the text shown) is in no
    record of the output's ledger: a label stored for it would be about no answer."""
    wanted = {
        item: (entry["answer_key"], entry["answer"])
        for item, entry in key.items.items()
        if isinstance(entry.get("answer_key"), str)
        and entry["answer_key"]
        and is_digest(entry.get("answer"))
    }
    if not wanted:
        return
    if not tree(output):
        problems.append(f"{output / LEDGER_NAME}: no such ledger (the answers the key names)")
        return
    keys = {answer_key for answer_key, _ in wanted.values()}
    found: set[tuple[str, str]] = set()
    for record in iter_lines(ledgers_of([output])):
        if record is not None and record.get("key") in keys and record.get("status") == "ok":
            found.add((record["key"], answer_digest(record)))
    seen_keys = {answer_key for answer_key, _ in found}
    for item, (answer_key, digest) in wanted.items():
        if answer_key not in seen_keys:
            problems.append(f"{key.path}: item {item}: answer_key {answer_key!r} names no answer "
                            f"in the ledger of {output}")  # fmt: skip
        elif (answer_key, digest) not in found:
            problems.append(f"{key.path}: item {item}: answer {digest!r} is not an answer of "
                            f"{answer_key!r} in the ledger of {output}")  # fmt: skip


def store(output: Path, key: AnnotationKey, sheets: Sequence[RaterSheet]) -> int:
    """Append each rater's labels as `human:<rater>` scores, skipping those already stored as
    they are; how many lines were appended."""
    path = output / SCORES_NAME
    writer = LedgerWriter(path)
    try:
        names = [f"human:{sheet.rater}" for sheet in sheets]
        states, _ = read_score_states(path, names)
        appended = 0
        for sheet, scorer in zip(sheets, names, strict=True):
            for item, label in sheet.labels.items():
                entry = key.items[item]
                answer_key, answer = entry["answer_key"], entry["answer"]
                held = states.get(score_key(answer_key, scorer))
                if (
                    held is not None
                    and held.current(key.definition, answer)
                    and held.label == label
                ):
                    continue
                writer.append(
                    score_line(answer_key, scorer, definition=key.definition, answer=answer,
                               label=label, rater=sheet.rater, detail=sheet.notes.get(item))
                )  # fmt: skip
                appended += 1
    finally:
        writer.close()
    return appended


def scorer_labels(output: Path, key: AnnotationKey) -> dict[str, str]:
    """The label the scorer named at export gave each item's answer (as shown), where it gave
    one within the label set; by item."""
    if key.scorer is None:
        return {}
    states, _ = read_score_states(output / SCORES_NAME, [key.scorer])
    labels: dict[str, str] = {}
    for item, entry in key.items.items():
        state = states.get(score_key(entry["answer_key"], key.scorer))
        if state is not None and state.answer == entry["answer"] and state.label in key.labels:
            labels[item] = state.label
    return labels
