"""Several ledgers passed file by file (`harness.analysis.shard_passes`) note exactly what one pass
over them read as one notes, numbered the same: whatever their lines, repeats and times."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from harness.analysis.sealed_pass import SealedLines, sealed_lines
from harness.analysis.shard_passes import file_passes, merged_lines
from harness.analysis.view import _is_record, _parse_record
from harness.ledger.lines import sealed
from harness.ledger.sets import ledgers_of
from tests.harness.analysis.ledgers import answer


def _stamp(second: int) -> str:
    return f"2026-11-24T00:{second // 60:02d}:{second % 60:02d}.000Z"


def _line(draw: random.Random, second: int) -> bytes:
    """A line of one of the kinds a ledger may hold, at `second`."""
    record = answer(draw.choice("ab") + "@t0", f"p{draw.randrange(6)}", timestamp=_stamp(second))
    record["full_response"] = f"answer {draw.randrange(3)}"
    kind = draw.randrange(10)
    if kind == 0:  # damaged in the middle: its seal fails
        return sealed(record).replace(b"answer", b"answeR")
    if kind == 1:  # no seal: parsed whole
        return orjson.dumps({**record, "schema": 1}) + b"\n"
    if kind == 2:  # sealed, but not of the record's shape
        return sealed({**record, "sample": "0"})
    if kind == 3:
        return b"\n"
    if kind == 4:
        return sealed({"type": "run", "run_id": "r", "started": _stamp(second)})
    if kind == 5:  # sealed, fields in another order: parsed whole
        return sealed(dict(reversed(list(record.items()))))
    return sealed(record)


def _ledgers(folder: Path, draw: random.Random) -> list[Path]:
    """2-4 ledgers whose times never go back, some lines the same time across them, some
    repeated exactly in another ledger or the same one."""
    made: list[list[bytes]] = []
    for _ in range(draw.randint(2, 4)):
        second, lines = 0, []
        for _ in range(draw.randint(0, 40)):
            second += draw.choice([0, 0, 1, 2])
            if made and draw.random() < 0.2:  # a repeat of another ledger's line of that time
                same = [line for line in made[-1] if f'"{_stamp(second)}"'.encode() in line]
                if same:
                    lines.append(draw.choice(same))
                    continue
            if lines and draw.random() < 0.05:
                lines.append(lines[-1])
                continue
            lines.append(_line(draw, second))
        made.append(lines)
    paths = []
    for number, lines in enumerate(made):
        path = folder / f"l{number}.jsonl"
        cut = b"".join(lines)[: -1 if draw.random() < 0.3 else None]  # its last newline lost
        path.write_bytes(cut)
        paths.append(path)
    return paths


def _noted(found: SealedLines) -> tuple:
    table = found.table().sort_by("line")
    return (
        table.to_pylist(),
        sorted(found.parsed, key=lambda p: p[0]),
        found.damaged,
        found.skipped,
    )


@pytest.mark.parametrize("seed", range(60))
def test_file_by_file_notes_what_one_reading_notes(tmp_path, seed):
    draw = random.Random(seed)
    ledgers = ledgers_of(_ledgers(tmp_path, draw))
    as_one = sealed_lines(ledgers, _parse_record, _is_record)
    groups = [one.run(None) for one in file_passes(ledgers, _parse_record, _is_record, 2)]
    by_file = merged_lines(groups)
    assert by_file is not None
    assert _noted(by_file) == _noted(as_one)


def test_a_ledger_whose_times_go_back_is_read_as_one_instead(tmp_path):
    later = sealed(answer("a@t0", "p0", timestamp=_stamp(5)))
    earlier = sealed(answer("a@t0", "p1", timestamp=_stamp(1)))
    (tmp_path / "a.jsonl").write_bytes(later + earlier)
    (tmp_path / "b.jsonl").write_bytes(earlier)
    ledgers = ledgers_of([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    groups = [one.run(None) for one in file_passes(ledgers, _parse_record, _is_record, 2)]
    assert merged_lines(groups) is None


def test_a_time_not_in_the_harness_s_form_is_read_as_one_instead(tmp_path):
    odd = sealed(answer("a@t0", "p0", timestamp="2026-11-24 00:00:01"))
    (tmp_path / "a.jsonl").write_bytes(odd)
    (tmp_path / "b.jsonl").write_bytes(sealed(answer("a@t0", "p1")))
    ledgers = ledgers_of([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    groups = [one.run(None) for one in file_passes(ledgers, _parse_record, _is_record, 1)]
    assert merged_lines(groups) is None
