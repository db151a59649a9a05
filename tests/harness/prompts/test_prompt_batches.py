"""Prompt sets read batch by batch: plain rows column by column, any other row by row, with the
same prompts, the same hashes (every record's key material) and the same errors."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.errors import PromptsError
from harness.prompts import readers
from harness.prompts.load import Prompt, load_prompts
from harness.prompts.sources import FieldMap, PromptSource
from tests.conftest import REPO

# What the loader gave before prompts were read in batches: a ledger's records hold these.
HASHES = {
    "plain": "3a82916092a36c48",
    "escapes": "f479934a0bb25b30",
    "system": "50ba3bf41c5142e1",
    "chat": "fe662ad540010377",
    "alpaca": "b0eec7e23d226509",
    "parts": "c6b369436cae9903",
}
ESCAPES = 'Quote " backslash \\ slash / tab \t line\nbreak \u2028 é 漢 🙂 \x01'
PLAIN_ROWS = [
    {"id": "plain", "prompt": "Is 7 prime?", "system": ""},
    {"id": "escapes", "prompt": ESCAPES, "system": ""},
    {"id": "system", "prompt": "Does CVE-2021-44228 exist?", "system": "Be terse."},
]
# Over one batch of JSONL (4 MiB of lines): the second batch is read after the first is built.
BIG = 90_000


def jsonl(path: Path, rows: list[dict], *, extra: str = "") -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + extra)
    return path


def digest(prompts: list[Prompt]) -> str:
    return hashlib.sha256("\n".join(f"{p.id}\t{p.hash}" for p in prompts).encode()).hexdigest()


def test_the_bundled_set_keeps_the_hashes_its_ledgers_hold():
    prompts = load_prompts(REPO / "configs" / "prompts" / "security_sample.json")
    assert digest(prompts)[:16] == "64230bf74b97e3db"


def test_every_shape_of_prompt_keeps_its_hash(tmp_path):
    rows = [
        *PLAIN_ROWS,
        {
            "id": "chat",
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Real?"},
            ],
        },
        {"id": "alpaca", "instruction": "Answer.", "input": "Is foo on PyPI?"},
        {
            "id": "parts",
            "input": [{"role": "user", "content": [{"type": "text", "text": t} for t in "ab"]}],
        },
    ]
    prompts = load_prompts(jsonl(tmp_path / "p.jsonl", rows))
    assert {p.id: p.hash for p in prompts} == HASHES


def test_plain_rows_in_csv_and_parquet_keep_their_hashes(tmp_path):
    with (tmp_path / "p.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, ["id", "prompt", "system"])
        writer.writeheader()
        writer.writerows(PLAIN_ROWS)
    pq.write_table(pa.Table.from_pylist(PLAIN_ROWS), tmp_path / "p.parquet")
    for name in ("p.csv", "p.parquet"):
        prompts = load_prompts(tmp_path / name)
        assert {p.id: p.hash for p in prompts} == {r["id"]: HASHES[r["id"]] for r in PLAIN_ROWS}


def test_rows_read_column_by_column_equal_rows_read_one_by_one(tmp_path):
    rows = [
        {
            "id": f"p{i}",
            "prompt": f"Is {i} prime?",
            "system": ["", "Be terse.", None][i % 3],
            "category": ["cve", "pkg"][i % 2],
            "is_synthetic_probe": i % 4 == 0,
            "target": "yes",
            "source": {"page": i},
            "image": "...",
        }
        for i in range(50)
    ]
    plain = jsonl(tmp_path / "plain.jsonl", rows)
    # Every other row with its fields in another order: no two batches' rows share theirs.
    mixed = jsonl(
        tmp_path / "mixed.jsonl",
        [r if i % 2 else dict(reversed(r.items())) for i, r in enumerate(rows)],
    )
    read = [
        load_prompts(PromptSource(str(p), fields=FieldMap(drop=("image",)))) for p in (plain, mixed)
    ]
    assert read[0] == read[1]
    first = read[0][0]
    assert (first.category, first.is_synthetic_probe, first.text) == ("cve", True, "Is 0 prime?")
    assert list(first.metadata.items()) == [("target", "yes"), ("source", {"page": 0})]
    assert [m.role for m in read[0][1].messages] == ["system", "user"]


def test_a_field_read_as_the_id_and_as_the_prompt_loads(tmp_path):
    path = jsonl(tmp_path / "p.jsonl", [{"question": "Is 7 prime?"}, {"question": "Is 8 prime?"}])
    prompts = load_prompts(PromptSource(str(path), fields=FieldMap(id="question")))
    assert [(p.id, p.text) for p in prompts] == [("Is 7 prime?",) * 2, ("Is 8 prime?",) * 2]


def big_set(path: Path, count: int, *, ids: bool = True, extra: str = "") -> Path:
    """`count` rows; line n + 1 holds row n."""
    pad = "x" * 40
    rows = [{"prompt": f"{pad} {i}"} | ({"id": f"p{i}"} if ids else {}) for i in range(count)]
    return jsonl(path, rows, extra=extra)


def test_rows_without_ids_are_numbered_across_batches_and_blank_lines_skipped(tmp_path):
    path = big_set(tmp_path / "p.jsonl", BIG, ids=False, extra='\n  \n{"prompt": "last"}\n')
    assert path.stat().st_size > 4 * 2**20  # more than one batch of lines
    prompts = load_prompts(path)
    assert len(prompts) == BIG + 1 and prompts[-1].id == str(BIG + 1)
    assert prompts[BIG - 1].id == str(BIG) and prompts[-1].text == "last"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('{"id": "p2", "prompt": "again"}\n', "line 501: duplicate id 'p2' (first at line 3)"),
        (
            '{"id": "q", "prompt": "x"}\n{"id": "q", "prompt": "y"}\n',
            "line 502: duplicate id 'q' (first at line 501)",
        ),
        ('{"id": "q", "prompt": " "}\n{"id": \n', "line 501: prompt: empty text"),
        ('{"id": "q", "prompt": "x"}\n{"id": \n', "line 502, column 1: invalid JSON"),
        (
            '{"id": "q", "prompt": "x"}\n{"id": "a|b", "prompt": "x"}\n',
            "line 502: id 'a|b' must not contain '|'",
        ),
        ('{"id": "q", "prompt": "x"}\n\n{"prompt": "x"}\n', "line 503: missing id"),
    ],
)
def test_a_mistake_in_a_later_batch_names_its_line_and_the_first_wins(
    tmp_path, monkeypatch, extra, message
):
    monkeypatch.setattr(readers, "_BATCH_LINES", 1024)  # a batch of about 20 lines
    path = big_set(tmp_path / "p.jsonl", 500, extra=extra)
    with pytest.raises(PromptsError) as caught:
        load_prompts(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_a_duplicate_in_a_later_batch_of_a_csv_names_both_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "_BATCH_ROWS", 7)
    rows = "".join(f"p{i},Is {i} prime?\n" for i in range(30))
    (tmp_path / "p.csv").write_text(f"id,prompt\n{rows}p3,again\n")
    with pytest.raises(PromptsError) as caught:
        load_prompts(tmp_path / "p.csv")
    assert str(caught.value) == f"{tmp_path / 'p.csv'}: row 32: duplicate id 'p3' (first at row 5)"
