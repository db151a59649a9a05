"""Blinded annotation: sheets per rater without what could sway them, the key beside the ledger,
filled sheets read back with clear errors, stored as human scores, and agreement checked against
published worked examples."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import orjson
import pytest

from harness.analysis.agreement import cohen, fleiss
from harness.analysis.scores import read_scores
from tests.conftest import SIMPLE_MODEL, write_config
from tests.harness.analysis.score_project import (
    EXISTENCE,
    answers,
    deadline,
    project,
    score_lines,
)

# Wikipedia, "Cohen's kappa", worked example: 50 grant proposals read by A and B; both "yes"
# 20, A yes and B no 5, A no and B yes 10, both "no" 15: p_o = 0.7, p_e = 0.5, kappa = 0.4.
WORKED = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15


def read_sheet(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.reader(file))


def write_sheet(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file).writerows(rows)
    return path


def exported(tmp_path, run_cli, *args: str, prompts: int = 25) -> Path:
    """Answers of `prompts` prompts at two temperatures (50: those of the worked example), and
    sheets for two raters labelling them yes or no."""
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=prompts)
    assert run_cli("run", config)[0] == 0
    out = tmp_path / "out"
    code, _, err = run_cli("annotate", "export", out, "--labels", "yes,no", *args)
    assert code == 0, err
    return out


def item_of(row_id: str) -> str:
    """The item a sheet's row id names (`3fa2c10b-r1-0007`: 0007)."""
    return row_id.rsplit("-", 1)[1]


def fill(out: Path, rater: str, label_of, target: Path, name: str = "annotation") -> Path:
    """The rater's sheet with each row labelled `label_of(item)`."""
    rows = read_sheet(out / name / f"{rater}.csv")
    for row in rows[1:]:
        row[3] = label_of(item_of(row[0]))
    return write_sheet(target, rows)


def tag_of(out: Path, name: str = "annotation") -> str:
    """The tag that begins every row id of an export's sheets."""
    return orjson.loads((out / f"{name}.key.json").read_bytes())["tag"]


def test_sheets_are_blinded_shuffled_per_rater_and_the_key_is_kept_apart(tmp_path, run_cli):
    out = exported(tmp_path, run_cli, "--seed", "11")
    records = answers(out)
    first, second = (read_sheet(out / "annotation" / f"r{i}.csv") for i in (1, 2))
    assert first[0] == ["row", "prompt", "answer", "label", "notes"]
    assert len(first) == len(second) == 51
    items = [[item_of(row[0]) for row in sheet[1:]] for sheet in (first, second)]
    assert sorted(items[0]) == sorted(items[1]) and items[0] != items[1]
    assert all(row[0].startswith(f"{tag_of(out)}-r1-") for row in first[1:])
    assert all(row[3] == "" and row[4] == "" for row in first[1:])
    text = (out / "annotation" / "r1.csv").read_text(encoding="utf-8-sig")
    for record in records:
        assert record["variant"] not in text and record["key"] not in text
    assert "sim" not in text and "temperature" not in text and "0.5" not in text
    key = orjson.loads((out / "annotation.key.json").read_bytes())
    assert key["seed"] == 11 and key["labels"] == ["yes", "no"] and key["raters"] == ["r1", "r2"]
    assert {e["answer_key"] for e in key["items"].values()} == {r["key"] for r in records}
    assert key["orders"]["r1"] == items[0]
    assert sorted(p.name for p in (out / "annotation").iterdir()) == [
        "INSTRUCTIONS.txt",
        "r1.csv",
        "r2.csv",
    ]
    shown = {item_of(row[0]): row[2] for row in first[1:]}
    by_key = {r["key"]: r["full_response"] for r in records}
    assert all(shown[i] == by_key[e["answer_key"]] for i, e in key["items"].items())


def test_the_same_seed_draws_the_same_sample_and_orders(tmp_path, run_cli):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = exported(tmp_path / "a", run_cli, "--seed", "5", "--sample", "7", prompts=10)
    two = exported(tmp_path / "b", run_cli, "--seed", "5", "--sample", "7", prompts=10)
    keys = [orjson.loads((out / "annotation.key.json").read_bytes()) for out in (one, two)]
    assert len(keys[0]["items"]) == 7
    assert keys[0]["items"] == keys[1]["items"] and keys[0]["orders"] == keys[1]["orders"]


def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_quoted(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=1)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(prompts.read_text().replace("Does thing", "=HYPERLINK(1) Does thing"))
    assert run_cli("run", config)[0] == 0
    code, _, _ = run_cli("annotate", "export", tmp_path / "out", "--labels", "a,b")
    rows = read_sheet(tmp_path / "out" / "annotation" / "r1.csv")
    assert code == 0 and rows[1][1].startswith("'=HYPERLINK(1)")


def test_round_trip_two_raters_give_the_worked_examples_kappa(tmp_path, run_cli):
    out = exported(tmp_path, run_cli)
    items = sorted(orjson.loads((out / "annotation.key.json").read_bytes())["items"])
    pairs = dict(zip(items, WORKED, strict=True))
    a = fill(out, "r1", lambda item: pairs[item][0], tmp_path / "a.csv")
    b = fill(out, "r2", lambda item: pairs[item][1].upper(), tmp_path / "b.csv")  # case ignored
    code, stdout, err = run_cli("annotate", "import", out, a, b)
    assert code == 0, err
    assert "r1 / r2" in stdout and "0.400" in stdout and "35 (70%)" in stdout
    humans = [line for line in score_lines(out) if line["scorer"].startswith("human:")]
    assert len(humans) == 100
    assert {(h["scorer"], h["rater"]) for h in humans} == {("human:r1", "r1"), ("human:r2", "r2")}
    key = orjson.loads((out / "annotation.key.json").read_bytes())
    latest = read_scores(out / "scores.jsonl").latest
    for item, (first, second) in pairs.items():
        answer_key = key["items"][item]["answer_key"]
        assert latest[f"{answer_key}|human:r1"]["label"] == first
        assert latest[f"{answer_key}|human:r2"]["label"] == second
    disputed = read_sheet(out / "annotation.disagreements.csv")
    assert disputed[0] == ["item", "prompt", "answer", "r1", "r2", "adjudicated"]
    assert len(disputed) == 16 and all(row[3] != row[4] for row in disputed[1:])
    assert all(row[1].startswith("Does thing number") for row in disputed[1:])
    code, stdout, _ = run_cli("annotate", "import", out, a, b)
    assert code == 0 and "(0 new, as human:<rater>)" in stdout


def test_a_label_changed_and_imported_again_is_appended_and_wins(tmp_path, run_cli):
    out = exported(tmp_path, run_cli, prompts=3)
    sheet = fill(out, "r1", lambda item: "yes", tmp_path / "a.csv")
    assert run_cli("annotate", "import", out, sheet)[0] == 0
    rows = read_sheet(sheet)
    rows[1][3] = "no"
    write_sheet(sheet, rows)
    code, stdout, _ = run_cli("annotate", "import", out, sheet)
    assert code == 0 and "(1 new" in stdout and "agreement needs a second sheet" in stdout
    assert "Still to import: the sheets of r2" in stdout
    labels = [line["label"] for line in read_scores(out / "scores.jsonl").latest.values()]
    assert sorted(labels) == ["no", "yes", "yes", "yes", "yes", "yes"]


def test_raters_are_compared_with_the_scorer_named_at_export(tmp_path, run_cli):
    config = project(tmp_path, run_cli, EXISTENCE, prompts=12)
    out = tmp_path / "out"
    assert run_cli("score", config)[0] == 0
    code, stdout, _ = run_cli("annotate", "export", out, "--scorer", "existence")
    assert code == 0 and "labels: claims, denies, other" in stdout
    key = orjson.loads((out / "annotation.key.json").read_bytes())
    latest = read_scores(out / "scores.jsonl").latest
    machine = {i: latest[f"{e['answer_key']}|existence"]["label"] for i, e in key["items"].items()}
    a = fill(out, "r1", machine.__getitem__, tmp_path / "a.csv")
    b = fill(out, "r2", lambda item: "other", tmp_path / "b.csv")
    code, stdout, _ = run_cli("annotate", "import", out, a, b)
    assert code == 0 and "r1 / existence" in stdout and "r2 / existence" in stdout
    assert "1.000" in stdout  # r1 agrees with the scorer on every item


def test_fleiss_kappa_of_the_worked_example_is_0_210():
    # Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories.
    counts = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    labels = ["1", "2", "3", "4", "5"]
    by_rater: dict[str, dict[str, str]] = {f"r{n}": {} for n in range(14)}
    for subject, row in enumerate(counts):
        given = [label for label, count in zip(labels, row, strict=True) for _ in range(count)]
        for rater, label in zip(by_rater.values(), given, strict=True):
            rater[str(subject)] = label
    assert fleiss(by_rater, labels) == pytest.approx(0.2099, abs=1e-4)


def test_cohens_kappa_is_undefined_when_chance_agreement_is_certain():
    same = {str(i): "yes" for i in range(5)}
    pair = cohen("a", "b", same, same, ["yes", "no"])
    assert pair.kappa is None and pair.agreed == 5
    worked = dict(enumerate(WORKED))
    a = {str(i): first for i, (first, _) in worked.items()}
    b = {str(i): second for i, (_, second) in worked.items()}
    pair = cohen("a", "b", a, b, ["yes", "no"])
    assert pair.kappa == pytest.approx(0.4) and pair.low < 0.4 < pair.high <= 1


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda rows: rows[1].__setitem__(0, rows[1][0][:-4] + "9999"),
            "row 2: unknown row id '{tag}-r1-9999'",
        ),
        (
            lambda rows: rows[1].__setitem__(0, rows[1][0][:9] + "r3-0001"),
            "row 2: unknown row id '{tag}-r3-0001'",
        ),
        (lambda rows: rows[2].__setitem__(0, "r1-0001"), "row 3: unknown row id 'r1-0001'"),
        (
            lambda rows: rows[2].__setitem__(3, "maybe"),
            "row 3: label 'maybe' is not one of yes, no",
        ),
        (lambda rows: rows[2].__setitem__(3, ""), "1 row(s) without a label: row 3"),
        (lambda rows: rows.pop(4), "1 row(s) missing: {tag}-r1-"),
        (lambda rows: rows.append(list(rows[1])), "row 8: row {tag}-r1-"),
        (lambda rows: rows[0].__setitem__(3, "verdict"), 'row 1: no "label" column'),
    ],
)
def test_a_bad_sheet_is_refused_naming_the_file_and_row_and_nothing_is_stored(
    tmp_path, run_cli, edit, expected
):
    out = exported(tmp_path, run_cli, prompts=3)
    sheet = fill(out, "r1", lambda item: "yes", tmp_path / "a.csv")
    rows = read_sheet(sheet)
    edit(rows)
    write_sheet(sheet, rows)
    code, _, err = run_cli("annotate", "import", out, sheet)
    assert code == 2
    assert f"error: {sheet}: {expected.format(tag=tag_of(out))}" in err, err
    assert not (out / "scores.jsonl").exists()


def test_one_bad_sheet_among_good_ones_stores_nothing(tmp_path, run_cli):
    out = exported(tmp_path, run_cli, prompts=3)
    good = fill(out, "r1", lambda item: "yes", tmp_path / "a.csv")
    bad = fill(out, "r2", lambda item: "perhaps", tmp_path / "b.csv")
    code, _, err = run_cli("annotate", "import", out, good, bad)
    assert code == 2 and len(err.splitlines()) == 6 and str(good) not in err
    assert not (out / "scores.jsonl").exists()
    code, _, err = run_cli("annotate", "import", out, good, good)
    assert code == 2 and err == f"error: {good}: given 2 times; give each sheet once\n"
    again = fill(out, "r1", lambda item: "no", tmp_path / "c.csv")
    code, _, err = run_cli("annotate", "import", out, good, again)
    assert code == 2 and f"{again}: holds r1's rows, as {good} does" in err
    assert not (out / "scores.jsonl").exists()


def test_export_refuses_to_overwrite_a_key_and_needs_labels(tmp_path, run_cli):
    out = exported(tmp_path, run_cli, prompts=2)
    key = (out / "annotation.key.json").read_bytes()
    code, _, err = run_cli("annotate", "export", out, "--labels", "a,b")
    assert code == 2 and "was exported already" in err and "--name" in err
    assert (out / "annotation.key.json").read_bytes() == key
    code, _, err = run_cli("annotate", "export", out, "--name", "second")
    assert code == 2 and "--labels" in err and not (out / "second").exists()
    code, _, err = run_cli("annotate", "export", out, "--name", "second", "--labels", "a,a")
    assert code == 2 and "distinct" in err
    code, _, err = run_cli("annotate", "export", tmp_path / "nothing", "--labels", "a")
    assert code == 2 and "no such ledger" in err
    code, _, err = run_cli("annotate", "export", out / "ledger.jsonl", "--labels", "a")
    assert code == 2 and f"is a file; annotate takes the run's output directory ({out})" in err
    code, _, err = run_cli("annotate", "import", out, tmp_path / "absent.csv", "--name", "x")
    assert code == 2 and "no such annotation key" in err
    code, stdout, _ = run_cli("annotate", "export", out, "--name", "second", "--labels", "a,b",
                              "--raters", "ana,ben")  # fmt: skip
    assert code == 0 and (out / "second" / "ana.csv").exists()
    assert "annotate import" in stdout and "--name second" in stdout


def edit_key(out: Path, edit) -> Path:
    """The annotation key, changed in place by `edit(body)`."""
    path = out / "annotation.key.json"
    body = orjson.loads(path.read_bytes())
    edit(body)
    path.write_bytes(orjson.dumps(body))
    return path


def test_a_key_item_without_its_answer_key_stores_nothing_and_says_which(tmp_path, run_cli):
    out = exported(tmp_path, run_cli, prompts=10)
    sheet = fill(out, "r1", lambda item: "yes", tmp_path / "a.csv")
    items = sorted(orjson.loads((out / "annotation.key.json").read_bytes())["items"])
    last = items[-1]  # the one a sheet in any order reaches after others were stored
    key = edit_key(out, lambda body: body["items"][last].pop("answer_key"))
    code, _, err = run_cli("annotate", "import", out, sheet)
    assert (code, err) == (2, f"error: {key}: item {last}: answer_key is missing\n")
    assert not (out / "scores.jsonl").exists()


def test_every_problem_of_the_key_and_the_sheets_is_told_at_once(tmp_path, run_cli):
    out = exported(tmp_path, run_cli, prompts=3)
    sheet = fill(out, "r1", lambda item: "yes", tmp_path / "a.csv")
    rows = read_sheet(sheet)
    rows[1][3] = "maybe"
    write_sheet(sheet, rows)

    def damage(body: dict) -> None:
        body["items"]["0001"]["answer"] = "not-a-digest"
        body["items"]["0003"]["answer_key"] = 7
        body["items"]["0007"] = "an item"
        body["raters"].append("r 3")
        body["prompts"]["format"] = "xml"

    key = edit_key(out, damage)
    body = orjson.loads(key.read_bytes())
    code, _, err = run_cli("annotate", "import", out, sheet)
    assert code == 2
    assert err.splitlines() == [
        f"error: {key}: prompts.format: expected one of 'auto', 'json', 'jsonl', 'csv', 'tsv', "
        "'parquet', 'arrow', got \"xml\"",
        f"error: {key}: raters[2]: 'r 3': use letters, digits, '_' or '.'",
        f"error: {key}: item 0001: answer 'not-a-digest' is not 16 hex digits",
        f"error: {key}: item 0003: answer_key is not a non-empty string",
        f"error: {key}: item 0007: expected an object",
        f"error: {sheet}: row 2: label 'maybe' is not one of yes, no",
        f"error: {sheet}: 1 row(s) missing: {body['tag']}-r1-0007",
    ]
    assert not (out / "scores.jsonl").exists()


@pytest.mark.parametrize("field", ["labels", "raters", "items"])
def test_a_key_with_no_labels_raters_or_items_imports_nothing_and_says_so(tmp_path, run_cli, field):
    out = exported(tmp_path, run_cli, prompts=2)
    sheet = fill(out, "r1", lambda item: "yes", tmp_path / "a.csv")
    key = edit_key(out, lambda body: body.update({field: type(body[field])()}))
    code, _, err = run_cli("annotate", "import", out, sheet)
    assert (code, err) == (2, f"error: {key}: {field}: empty\n")
    assert not (out / "scores.jsonl").exists()


def test_a_key_whose_labels_differ_only_in_case_is_refused(tmp_path, run_cli):
    out = exported(tmp_path, run_cli, prompts=2)
    sheet = fill(out, "r1", lambda item: "Yes", tmp_path / "a.csv")
    key = edit_key(out, lambda body: body.__setitem__("labels", ["yes", "Yes"]))
    code, _, err = run_cli("annotate", "import", out, sheet)
    assert code == 2
    assert (
        err
        == f"error: {key}: labels: 'yes' and 'Yes' are one label to the import (it ignores case)\n"
    )
    assert not (out / "scores.jsonl").exists()


def test_labels_that_differ_only_in_case_are_refused_at_export(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=2)
    assert run_cli("run", config)[0] == 0
    out = tmp_path / "out"
    for labels in ("Yes,yes", "no,yes,NO "):
        code, _, err = run_cli("annotate", "export", out, "--labels", labels)
        assert code == 2 and len(err.splitlines()) == 1
        assert err.startswith("error: --labels: labels ") and "differ only in case" in err
    assert not (out / "annotation").exists() and not (out / "annotation.key.json").exists()


SHOUTING = """
[[scorers]]
name = "loud"
type = "rules"
case_sensitive = true
default = "yes"
[[scorers.rules]]
label = "YES"
keywords = ["it exists"]
"""


def test_a_scorers_labels_that_differ_only_in_case_are_refused_at_export(tmp_path, run_cli):
    config = project(tmp_path, run_cli, SHOUTING, prompts=12)
    out = tmp_path / "out"
    assert run_cli("score", config)[0] == 0
    code, _, err = run_cli("annotate", "export", out, "--scorer", "loud")
    assert code == 2
    assert err == (
        "error: scorer 'loud': labels 'YES' and 'yes' differ only in case or spaces, and a "
        "rater's label is matched ignoring both: give distinct labels with --labels\n"
    )
    assert not (out / "annotation.key.json").exists()


@pytest.mark.parametrize("content", ["", "\ufeff", "row,prompt,answer,label,notes\r\n", "\n\n"])
def test_an_empty_or_header_only_sheet_is_refused_alike(tmp_path, run_cli, content):
    out = exported(tmp_path, run_cli, prompts=2)
    good = fill(out, "r1", lambda item: "yes", tmp_path / "a.csv")
    empty = tmp_path / "b.csv"
    empty.write_text(content, encoding="utf-8")
    code, _, err = run_cli("annotate", "import", out, good, empty)
    assert code == 2
    assert (
        err == f"error: {empty}: no rows to import (the sheet is empty or holds its header alone)\n"
    )
    assert not (out / "scores.jsonl").exists()


def test_a_sheet_that_is_not_a_regular_file_is_refused_not_waited_on(tmp_path, run_cli):
    out = exported(tmp_path, run_cli, prompts=2)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with deadline(5):
        code, _, err = run_cli("annotate", "import", out, fifo)
    assert code == 2
    assert err.startswith(f"error: {fifo}: is a FIFO (named pipe), not a regular file")
    assert err.count("\n") == 1


def test_a_sheet_of_another_annotation_is_refused_naming_it(tmp_path, run_cli):
    out = exported(tmp_path, run_cli, "--raters", "1", "--sample", "5", "--seed", "1", prompts=5)
    code, _, err = run_cli("annotate", "export", out, "--raters", "1", "--labels", "yes,no",
                           "--sample", "5", "--seed", "2", "--name", "other")  # fmt: skip
    assert code == 0, err
    theirs = fill(out, "r1", lambda item: "yes", tmp_path / "other.csv", name="other")
    ours = fill(out, "r1", lambda item: "no", tmp_path / "ours.csv")
    code, _, err = run_cli("annotate", "import", out, theirs)
    assert (code, err) == (
        2,
        f"error: {theirs}: a sheet of annotation 'other', not of 'annotation' (its row ids say "
        "so): import it with --name other\n",
    )
    code, _, err = run_cli("annotate", "import", out, ours, "--name", "other")
    assert code == 2 and err.endswith("(its row ids say so): import it without --name\n")
    assert not (out / "scores.jsonl").exists()
    assert run_cli("annotate", "import", out, theirs, "--name", "other")[0] == 0
    key = orjson.loads((out / "other.key.json").read_bytes())
    stored = {line["answer_key"] for line in score_lines(out)}
    assert stored == {entry["answer_key"] for entry in key["items"].values()}


def test_a_sheet_exported_before_row_ids_had_a_tag_imports_against_its_own_key(tmp_path, run_cli):
    out = exported(tmp_path, run_cli, prompts=3)
    sheet = fill(out, "r1", lambda item: "yes", tmp_path / "a.csv")
    old = fill(out, "r1", lambda item: "yes", tmp_path / "old.csv")
    write_sheet(old, [[row[0].split("-", 1)[-1], *row[1:]] for row in read_sheet(old)])
    code, _, err = run_cli("annotate", "import", out, old)
    assert code == 2 and err == (
        f"error: {old}: not a sheet of annotation 'annotation' (its row ids carry no tag): a "
        f"sheet of an export whose key is not in {out}\n"
    )
    tag = tag_of(out)
    edit_key(out, lambda body: body.update(schema=1) or body.pop("tag"))  # a key of before
    code, _, err = run_cli("annotate", "import", out, old)
    assert code == 0, err
    code, _, err = run_cli("annotate", "import", out, sheet)
    assert code == 2 and err == (
        f"error: {sheet}: not a sheet of annotation 'annotation' (its row ids' tag is {tag}): a "
        f"sheet of an export whose key is not in {out}\n"
    )
    assert {line["label"] for line in score_lines(out)} == {"yes"}


def test_adjudications_typed_in_the_disagreements_sheet_survive_an_import_again(tmp_path, run_cli):
    out = exported(tmp_path, run_cli, prompts=3)
    a = fill(out, "r1", lambda item: "yes", tmp_path / "a.csv")
    b = fill(out, "r2", lambda item: "yes" if item == "0001" else "no", tmp_path / "b.csv")
    assert run_cli("annotate", "import", out, a, b)[0] == 0
    first = out / "annotation.disagreements.csv"
    rows = read_sheet(first)
    assert len(rows) == 6 and rows[0][-1] == "adjudicated"
    rows[1][-1] = "no"
    write_sheet(first, rows)
    typed = first.read_bytes()
    code, stdout, _ = run_cli("annotate", "import", out, a, b)
    second = out / "annotation.disagreements.2.csv"
    assert code == 0 and first.read_bytes() == typed
    assert f"to adjudicate: {second} ({first}: written by hand, kept as it is)" in stdout
    assert read_sheet(second)[1:] == [[*row[:-1], ""] for row in rows[1:]]
    code, stdout, _ = run_cli("annotate", "import", out, a, b)  # the list alone is replaced
    assert code == 0 and f"to adjudicate: {second} (" in stdout
    assert not (out / "annotation.disagreements.3.csv").exists()
    second.write_text("my own notes\n", encoding="utf-8")  # not a sheet this verb wrote
    assert run_cli("annotate", "import", out, a, b)[0] == 0
    assert second.read_text() == "my own notes\n" and first.read_bytes() == typed
    assert len(read_sheet(out / "annotation.disagreements.3.csv")) == 6


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"answer_key": "ghost"}, "answer_key 'ghost' names no answer in {ledger}"),
        (
            {"answer": "0123456789abcdef"},
            "answer '0123456789abcdef' is not an answer of '{answer_key}' in {ledger}",
        ),
    ],
)
def test_a_key_item_whose_answer_is_not_in_the_ledger_stores_nothing_and_says_which(
    tmp_path, run_cli, edit, expected
):
    out = exported(tmp_path, run_cli, prompts=3)
    sheet = fill(out, "r1", lambda item: "yes", tmp_path / "a.csv")
    answer_key = orjson.loads((out / "annotation.key.json").read_bytes())["items"]["0004"]
    key = edit_key(out, lambda body: body["items"]["0004"].update(edit))
    code, _, err = run_cli("annotate", "import", out, sheet)
    shown = expected.format(ledger=f"the ledger of {out}", answer_key=answer_key["answer_key"])
    assert (code, err) == (2, f"error: {key}: item 0004: {shown}\n")
    assert not (out / "scores.jsonl").exists()


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (9, "schema: 9 is not a key layout this version of harness reads (1 or 2)"),
        ("2", 'schema: "2" is not a key layout this version of harness reads (1 or 2)'),
        (None, "schema: missing (every key `annotate export` wrote has one)"),
    ],
)
def test_a_key_of_a_layout_this_version_does_not_read_is_refused(
    tmp_path, run_cli, schema, expected
):
    out = exported(tmp_path, run_cli, prompts=2)
    sheet = fill(out, "r1", lambda item: "yes", tmp_path / "a.csv")

    def change(body: dict) -> None:
        if schema is None:
            del body["schema"]
        else:
            body["schema"] = schema

    key = edit_key(out, change)
    code, _, err = run_cli("annotate", "import", out, sheet)
    assert (code, err) == (2, f"error: {key}: {expected}\n")
    assert not (out / "scores.jsonl").exists()


def test_a_key_with_a_byte_that_is_not_utf8_is_refused_naming_its_line(tmp_path, run_cli):
    out = exported(tmp_path, run_cli, prompts=2)
    sheet = fill(out, "r1", lambda item: "yes", tmp_path / "a.csv")
    key = out / "annotation.key.json"
    lines = key.read_bytes().split(b"\n")
    at = next(n for n, line in enumerate(lines) if line.startswith(b'  "name"'))
    lines[at] = lines[at].replace(b"annotation", b"annot\xffation")
    key.write_bytes(b"\n".join(lines))
    code, _, err = run_cli("annotate", "import", out, sheet)
    assert (code, err) == (2, f"error: {key}: line {at + 1}: not UTF-8 text (invalid start byte)\n")
    assert at > 0


def test_rater_names_equal_but_for_case_are_refused_at_export_and_in_a_key(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=2)
    assert run_cli("run", config)[0] == 0
    out = tmp_path / "out"
    code, _, err = run_cli("annotate", "export", out, "--labels", "a,b", "--raters", "ana,ANA")
    assert (code, err) == (
        2,
        "error: --raters: 'ana' and 'ANA' differ only in case: their sheets would be one file "
        "where case is ignored (macOS, Windows); give distinct names\n",
    )
    assert not (out / "annotation").exists() and not (out / "annotation.key.json").exists()
    assert run_cli("annotate", "export", out, "--labels", "yes,no", "--raters", "ana,ben")[0] == 0
    sheet = fill(out, "ana", lambda item: "yes", tmp_path / "a.csv")
    key = edit_key(out, lambda body: body.update(raters=["ana", "ANA"]))
    code, _, err = run_cli("annotate", "import", out, sheet)
    assert (code, err) == (
        2,
        f"error: {key}: raters: 'ana' and 'ANA' differ only in case (their sheets would be one "
        "file where case is ignored)\n",
    )
    assert not (out / "scores.jsonl").exists()
