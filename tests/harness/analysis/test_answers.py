"""The latest-wins view every analysis verb reads: offsets from line heads, records parsed whole."""

from __future__ import annotations

from harness.analysis import answers
from harness.analysis.answers import latest_positions, latest_records, records_at
from harness.ledger.lines import sealed
from tests.harness.analysis.ledgers import answer, failure


def write(path, lines: list[bytes]):
    path.write_bytes(b"".join(lines))
    return path


def test_the_latest_intact_record_of_each_key_wins_in_ledger_order(tmp_path):
    first, second = answer("a@t0", "p0", response="one"), answer("a@t0", "p0", response="two")
    damaged = sealed(answer("a@t0", "p1", response="three")).replace(b"three", b"thr3e")
    ledger = write(
        tmp_path / "ledger.jsonl",
        [
            sealed({"type": "run", "run_id": "r", "schema": 2}),
            sealed(first),
            sealed(answer("a@t0", "p1", response="kept")),
            sealed(answer("b@t0", "p0")),
            sealed(second),
            damaged,  # its checksum fails: never the latest
            b'{"key": "b@t0|p9|0", "status": "ok", "variant": "b@t0", "prompt_id": "p9", '
            b'"sample": 0}\n',  # written by hand, without a checksum: parsed whole
            b'{"key": "torn',
        ],
    )
    records = list(latest_records(ledger))
    assert [(r["key"], r.get("full_response")) for r in records] == [
        ("a@t0|p1|0", "kept"),
        ("b@t0|p0|0", "b@t0 on p0"),
        ("a@t0|p0|0", "two"),
        ("b@t0|p9|0", None),
    ]


def test_successes_only_leaves_out_keys_whose_latest_record_failed(tmp_path):
    ledger = write(
        tmp_path / "ledger.jsonl",
        [sealed(answer("a@t0", "p0")), sealed(answer("a@t0", "p1")), sealed(failure("a@t0", "p0"))],
    )
    assert [r["key"] for r in latest_records(ledger, successes_only=True)] == ["a@t0|p1|0"]


def test_positions_are_ascending_offsets_and_records_at_reads_exactly_those(tmp_path):
    lines = [sealed(answer("a@t0", f"p{i % 3}", response=f"r{i}")) for i in range(7)]
    ledger = write(tmp_path / "ledger.jsonl", lines)
    positions = latest_positions(ledger)
    starts = [sum(map(len, lines[:i])) for i in range(len(lines))]
    assert list(positions) == starts[4:]
    seen = []
    records = records_at(ledger, positions[1:], advance=seen.append)
    assert [r["full_response"] for r in records] == ["r5", "r6"]
    assert sum(seen) == ledger.stat().st_size  # progress: every byte read, reported


def test_run_lines_are_found_wherever_the_searched_blocks_cut_them(tmp_path, monkeypatch):
    runs = [{"type": "run", "run_id": f"r{i}", "note": '"run" ' * i} for i in range(4)]
    records = [answer("a@t0", f"p{i}", response='it said "run"') for i in range(4)]
    path = tmp_path / "ledger.jsonl"
    lines = [line for pair in zip(runs, records, strict=True) for line in pair]
    path.write_bytes(b"".join(map(sealed, lines)))
    for size in (1, 7, 64, 1 << 20):
        monkeypatch.setattr(answers, "_SEARCH_CHUNK", size)
        assert [run["run_id"] for run in answers.run_lines(path)] == ["r0", "r1", "r2", "r3"]
