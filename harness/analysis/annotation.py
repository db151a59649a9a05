"""Blinded annotation sheets: answers for human raters, without what could sway them.

`export_sheets` writes, for an annotation named NAME (default `annotation`):

- `OUTPUT/NAME/<rater>.csv`, one per rater: columns `row`, `prompt`, `answer`, `label` (empty, to
  fill) and `notes`; UTF-8 with a byte-order mark so spreadsheets read it as UTF-8. No model,
  variant, temperature or answer key: rows are shuffled with the recorded seed, each rater's sheet
  in its own order, and a row id (`3fa2c10b-r1-0007`) names only the export (its tag), the rater
  and the item. A cell that a spreadsheet would take for a formula (it starts with `=`, `+`, `-`,
  `@`) gets a leading `'`.
- `OUTPUT/NAME/INSTRUCTIONS.txt`: the label set and how to fill a sheet.
- `OUTPUT/NAME.key.json`, beside the ledger and not among the sheets: the unblinding key (each
  item's answer key, the digest of the answer shown, variant, prompt id, category), the raters,
  the labels, the seed, each rater's row order, and the tag of the row ids. It is written last,
  so a key means a whole export; an existing key is never overwritten.

Every file is written whole to a temporary file and renamed into place.
"""

from __future__ import annotations

import csv
import dataclasses
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harness.analysis.annotation_key import KEY_SCHEMA, RATER_NAME, export_tag, one_label, row_id
from harness.analysis.answers import run_lines
from harness.analysis.scores import (
    SCORES_NAME,
    answer_digest,
    known_scorers,
    read_score_states,
)
from harness.config.scorers import UNPARSEABLE
from harness.errors import InputError, listed
from harness.ledger.lines import LEDGER_NAME, iter_lines
from harness.ledger.record import utc_timestamp
from harness.ledger.sets import Ledgers, ledgers_of, tree
from harness.ledger.targets import OwnFile, check_target, head
from harness.prompts.load import Prompt, as_source, load_prompts
from harness.prompts.sources import FieldMap, PromptSource
from harness.whole import written_whole

SHEET_COLUMNS = ("row", "prompt", "answer", "label", "notes")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_INSTRUCTIONS = "INSTRUCTIONS.txt"
_GUIDE_START = "Read each row's prompt and answer and put one label in its `label` column:"
_SHEET = OwnFile(
    "a sheet an earlier export wrote",
    lambda at: head(at).startswith(",".join(SHEET_COLUMNS).encode("utf-8-sig")),
)
_GUIDE = OwnFile(
    "the instructions an earlier export wrote",
    lambda at: head(at).startswith(_GUIDE_START.encode()),
)
_ANOTHER = "export under another --name"


@dataclass(frozen=True)
class ExportRequest:
    """What `annotate export` was asked for."""

    output: Path
    raters: tuple[str, ...]
    labels: tuple[str, ...] = ()
    scorer: str | None = None
    sample: int | None = None
    seed: int = 0
    name: str = "annotation"
    prompts: Path | None = None


@dataclass(frozen=True)
class Exported:
    """Where an export went, and what it holds."""

    sheets: tuple[Path, ...]
    key: Path
    items: int
    labels: tuple[str, ...]
    available: int  # answers that could be shown (their prompt text at hand)
    skipped_lines: int = 0  # the ledger's lines left out (torn, damaged, of no known shape)


def key_path(output: Path, name: str) -> Path:
    """The unblinding key of an annotation."""
    return output / f"{name}.key.json"


def rater_names(text: str) -> tuple[str, ...]:
    """`--raters`: a count (`2`: r1, r2) or names (`ana,ben`)."""
    if text.strip().isdigit():
        count = int(text)
        if not 1 <= count <= 100:
            raise InputError(f"--raters: expected 1 to 100 raters, got {count}")
        return tuple(f"r{i}" for i in range(1, count + 1))
    names = tuple(name.strip() for name in text.split(","))
    for name in names:
        if not RATER_NAME.fullmatch(name):
            raise InputError(f"--raters: {name!r}: use letters, digits, '_' or '.'")
    if len(set(names)) < len(names):
        raise InputError("--raters: a rater is named twice")
    same = one_label(names)
    if same is not None:
        raise InputError(
            f"--raters: {same[0]!r} and {same[1]!r} differ only in case: their sheets would be "
            "one file where case is ignored (macOS, Windows); give distinct names"
        )
    return names


def export_sheets(request: ExportRequest) -> Exported:
    """Sample the answers, write one blinded sheet per rater and the key; InputError (nothing
    written) when the ledger, prompts or labels are missing or the annotation already exists."""
    output = request.output
    if output.is_file():
        raise InputError(
            f"{output}: is a file; annotate takes the run's output directory ({output.parent})"
        )
    if not tree(output):
        missing = output / LEDGER_NAME
        raise InputError(f"{missing}: no such ledger (is {output} a run's output directory?)")
    ledger = ledgers_of([output])
    key = key_path(output, request.name)
    if key.exists():
        raise InputError(
            f"{key}: annotation {request.name!r} was exported already; import its sheets, "
            "or export another with --name"
        )
    if request.scorer is not None:
        known = known_scorers(output / SCORES_NAME, run_lines(ledger))
        if request.scorer not in known:
            known_names = listed(sorted(known))
            raise InputError(
                f"{output}: --scorer: no scorer named {request.scorer} (known: {known_names})"
            )
    _check_targets(output / request.name, request.raters)
    labels = request.labels or _labels_given(output, request.scorer)
    _check_label_set(labels, "--labels" if request.labels else f"scorer {request.scorer!r}")
    source = prompt_source(ledger, request.prompts)
    prompts = _load(source, request.prompts)
    answers, skipped = _answers(ledger)
    shown = [a["key"] for a in answers if _shown(prompts, a["prompt_id"], a["prompt_hash"] or "")]
    if not shown:
        raise InputError(f"{ledger}: no answer whose prompt text is in {source}")
    rng = random.Random(request.seed)
    items, texts = _items(answers, _draw(rng, shown, request.sample), prompts)
    orders = {rater: rng.sample(list(items), len(items)) for rater in request.raters}
    body: dict[str, Any] = {
        "schema": KEY_SCHEMA,
        "type": "annotation",
        "name": request.name,
        "created": utc_timestamp(),
        "seed": request.seed,
        "labels": list(labels),
        "scorer": request.scorer,
        "raters": list(request.raters),
        "ledger": str((output / LEDGER_NAME).resolve()),
        "prompts": dataclasses.asdict(source),
        "items": items,
        "orders": orders,
    }
    body["tag"] = export_tag(body)
    folder = output / request.name
    for rater, order in orders.items():
        _write_sheet(folder / f"{rater}.csv", (body["tag"], rater), order, texts)
    _write_instructions(folder / _INSTRUCTIONS, labels, request.raters)
    with written_whole(key) as temporary:  # last: a key means a whole export
        temporary.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
    sheets = tuple(folder / f"{rater}.csv" for rater in orders)
    return Exported(sheets, key, len(items), labels, len(shown), skipped)


def _check_targets(folder: Path, raters: Sequence[str]) -> None:
    """InputError when a file the export would write replaces one that is not an earlier
    export's (a sheet, the instructions), or cannot be written."""
    for rater in raters:
        check_target(folder / f"{rater}.csv", "annotate export", _SHEET, hint=_ANOTHER)
    check_target(folder / _INSTRUCTIONS, "annotate export", _GUIDE, hint=_ANOTHER)


def _draw(rng: random.Random, answer_keys: list[str], sample: int | None) -> dict[str, str]:
    """The answers to rate (`sample` of them, or all), shuffled, each with its item number."""
    chosen = (
        answer_keys if sample is None else rng.sample(answer_keys, min(sample, len(answer_keys)))
    )
    rng.shuffle(chosen)
    width = max(4, len(str(len(chosen))))
    return {answer_key: f"{n:0{width}d}" for n, answer_key in enumerate(chosen, start=1)}


def _labels_given(output: Path, scorer: str | None) -> tuple[str, ...]:
    """The labels a scorer has given in this output (UNPARSEABLE left out), for `--scorer`."""
    if scorer is None:
        raise InputError("annotate export: give the label set with --labels a,b,c (or --scorer)")
    states, _ = read_score_states(output / SCORES_NAME, [scorer])
    labels = sorted({s.label for s in states.values() if s.label and s.label != UNPARSEABLE})
    if not labels:
        raise InputError(
            f"{output / SCORES_NAME}: scorer {scorer!r} has given no label here; "
            "run `harness score` first, or give --labels"
        )
    return tuple(labels)


def _check_label_set(labels: Sequence[str], given_by: str) -> None:
    """InputError when two labels would be one to the import (which ignores case and surrounding
    spaces): a rater's `Yes` would be stored as `yes`."""
    same = one_label(labels)
    if same is not None:
        first, second = same
        raise InputError(
            f"{given_by}: labels {first!r} and {second!r} differ only in case or spaces, and "
            "a rater's label is matched ignoring both: give distinct labels with --labels"
        )


def prompt_source(ledger: Ledgers, given: Path | None) -> PromptSource:
    """The prompt set to show: `given` (`--prompts`), else the one the ledger's latest run read,
    as its run line describes it (location, format, split, field mapping)."""
    return run_prompt_source(run_lines(ledger) if given is None else [], given, ledger)


def run_prompt_source(
    runs: list[dict[str, Any]], given: Path | None, ledger: object
) -> PromptSource:
    """`prompt_source` from the ledger's run lines, already read (`ledger` names it in the
    error)."""
    if given is not None:
        return as_source(given)
    for line in reversed(runs):
        described = line.get("prompts") or {}
        if isinstance(described.get("path"), str):
            return PromptSource(
                described["path"],
                described.get("format", "auto"),
                described.get("split", ""),
                FieldMap(**described.get("fields", {})),
            )
    raise InputError(f"{ledger}: no run line says where the prompts are; pass --prompts")


def _load(source: PromptSource, given: Path | None) -> dict[str, Prompt]:
    """The prompts by id; an error that says how to point at them when they cannot be read."""
    try:
        return {p.id: p for p in load_prompts(source)}
    except InputError as exc:
        hint = "" if given is not None else " (the run's prompt set; pass --prompts)"
        raise InputError(f"{exc}{hint}") from None


def _answers(ledger: Ledgers) -> tuple[list[dict[str, Any]], int]:
    """Each latest answer (a key whose latest record is a success) in ledger order: its key,
    prompt id and hash, variant, category, probe flag and text; and the ledger's lines left out
    (torn, damaged, of no known shape)."""
    from harness.analysis.view import open_view  # DuckDB loads when sheets are made

    fields = (
        "status",
        "prompt_id",
        "prompt_hash",
        "variant",
        "prompt_category",
        "is_synthetic_probe",
        "full_response",
    )
    with (
        tempfile.TemporaryDirectory(prefix="harness-annotate-") as folder,
        open_view(ledger, Path(folder) / "no-scores.jsonl", fields=fields, snapshots=False) as view,
    ):
        table = view.arrow(
            "SELECT key, prompt_id, prompt_hash, variant, prompt_category, is_synthetic_probe, "
            "full_response FROM latest WHERE status = 'ok' ORDER BY line"
        )
        return table.to_pylist(), view.skipped


def _shown(prompts: dict[str, Prompt], prompt_id: str, prompt_hash: str) -> bool:
    """Whether the answer's prompt text is at hand, as it was when the answer was made."""
    prompt = prompts.get(prompt_id)
    return prompt is not None and prompt.hash == prompt_hash


def _items(
    answers: list[dict[str, Any]], item_of: dict[str, str], prompts: dict[str, Prompt]
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, str]]]:
    """The key's entry of every chosen answer and the texts its sheet rows show, by item."""
    items: dict[str, dict[str, Any]] = {}
    texts: dict[str, tuple[str, str]] = {}
    for record in answers:
        item = item_of.get(record["key"])
        if item is None:
            continue
        items[item] = {
            "answer_key": record["key"],
            "answer": answer_digest(record),
            "variant": record["variant"],
            "prompt_id": record["prompt_id"],
            "category": record["prompt_category"],
            "is_synthetic_probe": record["is_synthetic_probe"],
        }
        texts[item] = (prompts[record["prompt_id"]].text, record["full_response"] or "")
    return dict(sorted(items.items())), texts


def _write_sheet(
    path: Path, whose: tuple[str, str], order: Sequence[str], texts: dict[str, tuple[str, str]]
) -> None:
    """The sheet of `whose` (the export's tag, the rater): its items in `order`."""
    with (
        written_whole(path) as temporary,
        temporary.open("w", encoding="utf-8-sig", newline="") as file,
    ):
        writer = csv.writer(file)
        writer.writerow(SHEET_COLUMNS)
        for item in order:
            prompt, answer = texts[item]
            writer.writerow([row_id(*whose, item), sheet_cell(prompt), sheet_cell(answer), "", ""])


def sheet_cell(text: str) -> str:
    """Text a spreadsheet shows as it is, not as a formula."""
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _write_instructions(path: Path, labels: Sequence[str], raters: Sequence[str]) -> None:
    text = (
        f"{_GUIDE_START}\n\n"
        + "".join(f"  {label}\n" for label in labels)
        + "\nLabels are matched ignoring case. `notes` is free text. Keep every row and its `row`"
        " id;\ndo not add rows. Save as CSV (comma-separated) under any name.\n\n"
        f"One sheet per rater: {', '.join(f'{r}.csv' for r in raters)}. Rate on your own;\n"
        "the rows are in a different order on every sheet.\n"
    )
    with written_whole(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def shown_texts(
    output: Path, source: PromptSource, items: dict[str, dict[str, Any]]
) -> dict[str, tuple[str, str]]:
    """The prompt and answer each item showed (found by answer key and digest anywhere in the
    ledger, so an answer rerun since is still found); items no longer found are left out."""
    wanted = {(entry["answer_key"], entry["answer"]): item for item, entry in items.items()}
    keys = {answer_key for answer_key, _ in wanted}
    try:
        prompts = {p.id: p.text for p in load_prompts(source)}
    except InputError:
        prompts = {}
    texts: dict[str, tuple[str, str]] = {}
    for record in iter_lines(ledgers_of([output])) if tree(output) else ():
        if record is None or record.get("key") not in keys or record.get("status") != "ok":
            continue
        item = wanted.get((record["key"], answer_digest(record)))
        if item is not None:
            prompt = prompts.get(record["prompt_id"], "")
            texts[item] = (prompt, record["full_response"] or "")
    return texts
