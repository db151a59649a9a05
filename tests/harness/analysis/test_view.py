"""The analysis's view of a ledger (`harness.analysis.view`): the latest whole record of every key,
by the resume index's rules, whoever wrote the lines and however they were damaged."""

from __future__ import annotations

import zlib
from pathlib import Path

import orjson
import pytest

from harness.analysis import pass_processes
from harness.analysis.view import open_view
from harness.ledger.lines import sealed
from harness.ledger.sets import ledgers_of
from tests.harness.analysis.ledgers import answer, score, write_ledger, write_scores


@pytest.fixture(autouse=True, params=["passes here", "passes apart"])
def _passes(request, monkeypatch):
    """Every case with the sealed passes in this process, and in forked ones."""
    if request.param == "passes apart":
        monkeypatch.setattr(pass_processes, "APART_FROM", 0)


def _answers(ledger: Path | object, scores: Path) -> tuple[dict[str, str], int]:
    with open_view(ledger, scores) as view:  # type: ignore[arg-type]
        rows = view.connection.execute("SELECT key, full_response FROM answers").fetchall()
        return dict(rows), view.skipped


def _corrupted(line: bytes, old: bytes, new: bytes) -> bytes:
    """The line with a byte changed in its middle: its key and checksum text as they were."""
    assert len(old) == len(new) and line.count(old) == 1
    return line.replace(old, new)


@pytest.mark.parametrize("damaged_first", [False, True])
def test_a_line_corrupted_in_the_middle_is_never_an_answer_though_its_key_and_seal_text_stay(
    tmp_path, damaged_first
):
    good = sealed(answer("a@t0", "p0", response="it exists"))
    bad = _corrupted(good, b"it exists", b"it exiss ")
    other = sealed(answer("a@t0", "p1"))
    lines = [bad, good, other] if damaged_first else [good, bad, other]
    (tmp_path / "ledger.jsonl").write_bytes(b"".join(lines))
    answers, skipped = _answers(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl")
    assert answers == {"a@t0|p0|0": "it exists", "a@t0|p1|0": "a@t0 on p1"}
    assert skipped == 1


def test_the_latest_damaged_line_leaves_the_key_its_earlier_whole_record(tmp_path):
    first = sealed(answer("a@t0", "p0", response="first"))
    second = _corrupted(sealed(answer("a@t0", "p0", response="later")), b"later", b"lat3r")
    (tmp_path / "ledger.jsonl").write_bytes(first + second)
    assert _answers(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl") == (
        {"a@t0|p0|0": "first"},
        1,
    )


def test_a_line_repeated_exactly_counts_once_in_one_ledger_or_across_ledgers(tmp_path):
    line = sealed(answer("a@t0", "p0"))
    (tmp_path / "ledger.jsonl").write_bytes(line + line)
    assert _answers(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl") == (
        {"a@t0|p0|0": "a@t0 on p0"},
        0,
    )
    other = tmp_path / "other" / "ledger.jsonl"
    other.parent.mkdir()
    other.write_bytes(line + sealed(answer("b@t0", "p0")))
    both = ledgers_of([str(tmp_path / "ledger.jsonl"), str(other)])
    answers, skipped = _answers(both, tmp_path / "scores.jsonl")
    assert answers == {"a@t0|p0|0": "a@t0 on p0", "b@t0|p0|0": "b@t0 on p0"}
    assert skipped == 0


def test_lines_without_a_seal_or_written_by_hand_are_read_by_the_harness_rules(tmp_path):
    unsealed = orjson.dumps(answer("a@t0", "p0", response="no seal")) + b"\n"  # no schema 2
    unsealed = unsealed.replace(b'"schema":2', b'"schema":1')
    spaced = orjson.dumps(answer("a@t0", "p1", schema=1), option=orjson.OPT_INDENT_2)
    spaced = spaced.replace(b"\n", b" ")
    lost = orjson.dumps(answer("a@t0", "p2")) + b"\n"  # schema 2 without its seal: damaged
    (tmp_path / "ledger.jsonl").write_bytes(unsealed + spaced + b"\n" + lost)
    answers, skipped = _answers(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl")
    assert answers == {"a@t0|p0|0": "no seal", "a@t0|p1|0": "a@t0 on p1"}
    assert skipped == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"sample": "3"},
        {"sample": -1},
        {"sample": 2.5},
        {"status": "maybe"},
        {"variant": 5},
        {"is_synthetic_probe": 1},
        {"elapsed_seconds": "slow"},
        {"cost_usd": -1.0},
        {"retry_count": True},
        {"mode": "later"},
        {"tokens": [1, 2]},
        {"metadata": "subject"},
        {"token_logprobs": [{"token": 7, "logprob": -1.0, "top": None}]},
        {"token_logprobs": [{"token": "x", "logprob": -1.0, "top": [["x", -1.0]]}, ["y", -2.0]]},
    ],
)
def test_a_sealed_line_not_of_the_records_shape_is_skipped_and_counted(tmp_path, fields):
    write_ledger(
        tmp_path / "ledger.jsonl", [answer("a@t0", "p0"), {**answer("a@t0", "p1"), **fields}]
    )
    answers, skipped = _answers(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl")
    assert (list(answers), skipped) == (["a@t0|p0|0"], 1)


def test_a_score_counts_only_for_the_answer_it_was_given_to_even_with_characters_json_escapes(
    tmp_path,
):
    odd = 'quote " slash / tab \t é \u2028 emoji \U0001f600 nul \x00'
    records = [answer("a@t0", "p0", response=odd), answer("a@t0", "p1", response="plain")]
    write_ledger(tmp_path / "ledger.jsonl", records)
    stale = dict(records[1], full_response="answered before")
    lines = [score(records[0], "claims", "yes"), score(stale, "claims", "no")]
    write_scores(tmp_path / "scores.jsonl", lines)
    with open_view(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl") as view:
        labels = dict(view.connection.execute('SELECT key, "score.claims" FROM answers').fetchall())
    assert labels == {"a@t0|p0|0": "yes", "a@t0|p1|0": None}


def test_records_holds_every_whole_record_line_superseded_or_repeated_not_a_damaged_one(tmp_path):
    first = sealed(answer("a@t0", "p0", response="first"))
    later = sealed(answer("a@t0", "p0", response="later"))
    damaged = _corrupted(first, b"first", b"fir5t")
    repeated = sealed(answer("a@t0", "p1"))
    run = sealed({"type": "run", "run_id": "r1", "started": "2026-11-24T00:00:00.000Z"})
    (tmp_path / "ledger.jsonl").write_bytes(run + first + damaged + later + repeated + repeated)
    with open_view(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl", every_record=True) as view:
        rows = view.connection.execute(
            "SELECT line, key, full_response FROM records ORDER BY line"
        ).fetchall()
        latest = view.connection.execute("SELECT key, full_response FROM answers").fetchall()
    assert rows == [
        (1, "a@t0|p0|0", "first"),
        (3, "a@t0|p0|0", "later"),
        (4, "a@t0|p1|0", "a@t0 on p1"),
        (5, "a@t0|p1|0", "a@t0 on p1"),
    ]
    assert sorted(latest) == [("a@t0|p0|0", "later"), ("a@t0|p1|0", "a@t0 on p1")]


@pytest.mark.parametrize("damaged_first", [False, True])
@pytest.mark.parametrize("after", [b" ", b"\r", b"x"])
def test_a_damaged_copy_with_text_after_its_seal_is_never_the_answer(
    tmp_path, after, damaged_first
):
    good = sealed(answer("a@t0", "p0", response="it exists"))
    bad = _corrupted(good, b"it exists", b"it exiss ")[:-1] + after + b"\n"
    (tmp_path / "ledger.jsonl").write_bytes(bad + good if damaged_first else good + bad)
    assert _answers(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl") == (
        {"a@t0|p0|0": "it exists"},
        1,
    )


def test_a_newer_line_whose_closing_brace_is_damaged_leaves_the_earlier_record(tmp_path):
    first = sealed(answer("a@t0", "p0", response="first"))
    later = sealed(answer("a@t0", "p0", response="later"))
    (tmp_path / "ledger.jsonl").write_bytes(first + later[:-2] + b"]\n")
    assert _answers(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl") == (
        {"a@t0|p0|0": "first"},
        1,
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"label": 5},
        {"label": ["a"]},
        {"scorer": 7},
        {"type": "other"},
        {"value": "0.5"},
        {"definition": None},
        {"status": "maybe"},
    ],
)
def test_a_sealed_score_line_not_of_a_scores_shape_is_skipped_and_the_earlier_label_kept(
    tmp_path, fields
):
    record = answer("a@t0", "p0")
    write_ledger(tmp_path / "ledger.jsonl", [record])
    lines = [score(record, "claims", "yes"), {**score(record, "claims", "no"), **fields}]
    write_scores(tmp_path / "scores.jsonl", lines)
    with open_view(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl") as view:
        labels = view.connection.execute('SELECT "score.claims" FROM answers').fetchall()
        assert (labels, view.labels.skipped) == ([("yes",)], 1)


@pytest.mark.parametrize(
    "extra", [b',"x":1e999', b',"x":"\xff"', b',"error":' + b"[" * 2000 + b"]" * 2000]
)
def test_a_sealed_score_line_no_json_reader_takes_is_skipped_and_counted(tmp_path, extra):
    # JSON that orjson, the reader of scores everywhere else, refuses in a field the score's
    # shape does not name (or nested past its depth): sealed by hand.
    record = answer("a@t0", "p0")
    write_ledger(tmp_path / "ledger.jsonl", [record])
    write_scores(tmp_path / "scores.jsonl", [score(record, "claims", "yes")])
    head = orjson.dumps(score(record, "claims", "no"))[:-1] + extra
    with (tmp_path / "scores.jsonl").open("ab") as file:
        file.write(b'%b,"crc":"%08x"}\n' % (head, zlib.crc32(head)))
    with open_view(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl") as view:
        labels = view.connection.execute('SELECT "score.claims" FROM answers').fetchall()
        assert (labels, view.labels.skipped) == ([("yes",)], 1)


def test_every_score_line_whose_digest_is_not_one_is_counted_and_the_latest_leaves_no_label(
    tmp_path,
):
    records = [answer("a@t0", "p0"), answer("a@t0", "p1")]
    write_ledger(tmp_path / "ledger.jsonl", records)
    broken = [dict(score(r, "claims", "no"), answer="zz") for r in records]
    lines = [broken[0], score(records[0], "claims", "yes"), score(records[1], "claims", "yes")]
    write_scores(tmp_path / "scores.jsonl", [*lines, broken[1]])
    with open_view(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl") as view:
        labels = view.connection.execute('SELECT key, "score.claims" FROM answers').fetchall()
        assert (sorted(labels), view.labels.skipped) == (
            [("a@t0|p0|0", "yes"), ("a@t0|p1|0", None)],
            2,
        )


def test_a_sealed_record_whose_key_is_not_first_is_still_the_latest(tmp_path):
    first = answer("a@t0", "p0", response="first")
    later = answer("a@t0", "p0", response="later")
    moved = {"key": later["key"], "extra": "z", **{k: v for k, v in later.items() if k != "key"}}
    (tmp_path / "ledger.jsonl").write_bytes(sealed(first) + sealed(moved))
    assert _answers(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl") == (
        {"a@t0|p0|0": "later"},
        0,
    )


def test_two_score_lines_for_one_answer_and_scorer_under_other_keys_give_one_label(tmp_path):
    record = answer("a@t0", "p0")
    write_ledger(tmp_path / "ledger.jsonl", [record])
    legacy = dict(score(record, "claims", "no"), key="legacy-key-0")
    write_scores(tmp_path / "scores.jsonl", [score(record, "claims", "yes"), legacy])
    with open_view(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl") as view:
        labels = view.connection.execute('SELECT key, "score.claims" FROM answers').fetchall()
    assert labels == [("a@t0|p0|0", "no")]


def test_records_of_a_shard_tree_hold_a_line_in_two_ledgers_once_and_no_glob_match(tmp_path):
    line = sealed(answer("a@t0", "p0"))
    (tmp_path / "y*").mkdir()
    (tmp_path / "y*" / "ledger.jsonl").write_bytes(line)
    (tmp_path / "y*" / "shards" / "1-of-2").mkdir(parents=True)
    (tmp_path / "y*" / "shards" / "1-of-2" / "ledger.jsonl").write_bytes(line)
    (tmp_path / "yb").mkdir()  # `y*` as a pattern would match it too
    write_ledger(tmp_path / "yb" / "ledger.jsonl", [answer("b@t0", f"p{i}") for i in range(5)])
    ledgers = ledgers_of([str(tmp_path / "y*")])
    with open_view(ledgers, tmp_path / "scores.jsonl", every_record=True) as view:
        records = view.connection.execute("SELECT key FROM records").fetchall()
        latest = view.connection.execute("SELECT key FROM answers").fetchall()
    assert records == latest == [("a@t0|p0|0",)]


def test_long_answers_are_read_within_the_smallest_memory_limit(tmp_path):
    # 27 MB of answers with characters JSON escapes: their digests once took DuckDB's to_json,
    # which ran out of 256 MB on them.
    text = 'An answer with "quotes", a \\ and\nlines.\t' * 600
    records = [answer("a@t0", f"p{i}", response=f"{text}{i}") for i in range(1000)]
    write_ledger(tmp_path / "ledger.jsonl", records)
    write_scores(tmp_path / "scores.jsonl", [score(records[0], "claims", "yes")])
    fields = ("variant", "full_response", "positions")
    with open_view(
        tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl", fields=fields, memory_limit="256MB"
    ) as view:
        labels = view.connection.execute('SELECT count(*), count("score.claims") FROM answers')
        assert labels.fetchall() == [(1000, 1)]


def test_the_bytes_reported_read_come_to_the_size_the_reading_bar_is_given(tmp_path):
    """Whether the files are read (by one pass, or several ledgers as one or file by file) or
    their snapshot is checked."""
    from harness.cli.results import result_inputs

    records = [answer("a@t0", f"p{i}") for i in range(20)]
    write_ledger(tmp_path / "one" / "ledger.jsonl", records)
    write_scores(tmp_path / "one" / "scores.jsonl", [score(r, "claims", "yes") for r in records])
    for shard, part in (("0-of-2", records[:10]), ("1-of-2", records[10:])):
        write_ledger(tmp_path / "tree" / "shards" / shard / "ledger.jsonl", part)
    for output in (tmp_path / "one", tmp_path / "tree"):
        ledger, scores, size = result_inputs(str(output))
        for reading in ("the files", "their snapshot"):
            read: list[int] = []
            with open_view(ledger, scores, advance=read.append) as view:
                restored = view.connection.execute(
                    "SELECT count(*) FROM duckdb_databases() WHERE database_name = 'snapshot'"
                ).fetchone()
            assert restored == (int(reading == "their snapshot"),)
            assert sum(read) == size, (output.name, reading)
