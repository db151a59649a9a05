"""The ledger: append-only lines, torn tails, checksums, one writer, an index where the latest
line wins."""

from __future__ import annotations

import zlib

import orjson
import pytest

from harness.errors import InputError
from harness.ledger.index import build_index
from harness.ledger.lines import read_ledger, sealed
from harness.ledger.writer import LedgerWriter

HASH = "0123456789abcdef"
OK = {
    "status": "ok",
    "prompt_hash": HASH,
    "schema": 2,
    "variant": "v",
    "prompt_id": "p",
    "sample": 0,
    "full_response": "fine",
}
ERR = {**OK, "status": "error", "full_response": None, "error": {"type": "ServerError"}}


def line(key: str, record: dict) -> bytes:
    return sealed({"key": key, **record})


def test_latest_record_per_key_wins(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(line("a", ERR) + line("b", OK) + line("a", OK) + line("b", ERR))
    index = build_index(path)
    assert index.is_done("a", HASH) and not index.is_done("b", HASH)
    assert set(index.failures) == {"b"}


def test_the_index_counts_every_failure_record_of_a_key_as_read_and_as_appended(tmp_path):
    path = tmp_path / "ledger.jsonl"
    schema_1 = orjson.dumps({"key": "a", **ERR, "schema": 1}) + b"\n"  # read whole: no checksum
    path.write_bytes(line("a", ERR) + schema_1 + line("a", OK) + line("b", ERR))
    index = build_index(path)
    assert index.failed_before == {"a": 2, "b": 1}
    index.take_appended(line("b", ERR))
    index.take_appended(line("c", OK))
    assert index.failed_before == {"a": 2, "b": 2}


def test_a_success_made_from_other_prompt_content_is_not_done(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(line("a", OK))
    index = build_index(path)
    assert not index.is_done("a", "fedcba9876543210")
    assert index.changed("a", "fedcba9876543210") and not index.changed("a", HASH)


def test_torn_last_line_is_skipped_and_counted(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(line("a", OK) + line("b", OK)[:25])
    index = build_index(path)
    assert index.answered == {"a": HASH} and index.skipped == 1
    contents = read_ledger(path)
    assert len(contents.records) == 1 and contents.skipped == 1


def test_a_torn_line_cut_after_its_status_is_not_taken_as_done(tmp_path):
    path = tmp_path / "ledger.jsonl"
    whole = line("b", OK)
    path.write_bytes(line("a", OK) + whole[: whole.index(b"full_response")])
    assert not build_index(path).is_done("b", HASH)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b.replace(b'"full_response":"fine"', b'"full_response":"fin\x00'),  # bad JSON
        lambda b: b.replace(b"fine", b"fire"),  # still JSON, but not what was written
        lambda b: b.replace(b'"sample":0', b'"sample":7'),
    ],
)
def test_a_success_corrupted_in_the_middle_is_never_done(tmp_path, damage):
    path = tmp_path / "ledger.jsonl"
    good = line("a", OK)
    path.write_bytes(damage(line("b", OK)) + good)
    index = build_index(path)
    assert not index.is_done("b", HASH) and index.is_done("a", HASH)
    assert index.skipped == 1
    contents = read_ledger(path)
    assert [r["key"] for r in contents.records] == ["a"] and contents.skipped == 1


@pytest.mark.parametrize(
    "bad",
    [
        b'{"key":null,"status":"ok","prompt_hash":"0123456789abcdef"}\n',
        b'{"key":["a"],"status":"ok"}\n',
        b'{"key":"x","status":"ok"}\n',  # no variant, prompt_id, sample
        b'{"key":"x","status":7,"variant":"v","prompt_id":"p","sample":0}\n',
        b'{"key":"x","status":"ok","variant":"v","prompt_id":"p","sample":"0"}\n',
        b'{"key":"bro\\ken","status":"ok","prompt_hash":"0123456789abcdef","x":1}\n',
        b'{"key":"x","status":"ok","prompt_hash":"0123"}\n',
        b'"just a string"\n',
        b"[1, 2]\n",
        b"{}\n",
    ],
)
def test_lines_of_the_wrong_shape_are_skipped_and_counted_never_a_crash(tmp_path, bad):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(line("a", OK) + bad + line("b", ERR))
    index = build_index(path)
    assert index.answered == {"a": HASH} and set(index.failures) == {"b"}
    assert index.skipped == 1
    contents = read_ledger(path)
    assert [r["key"] for r in contents.records] == ["a", "b"] and contents.skipped == 1


def test_a_schema_1_line_has_no_checksum_and_is_read_whole(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(orjson.dumps({"key": "a", **OK, "schema": 1}) + b"\n")
    assert build_index(path).is_done("a", HASH)


def test_a_schema_2_line_that_lost_its_checksum_is_damaged(tmp_path):
    path = tmp_path / "ledger.jsonl"
    renamed = line("b", OK).replace(b'"crc":', b'"crC":')
    path.write_bytes(orjson.dumps({"key": "a", **OK}) + b"\n" + renamed)
    index = build_index(path)
    assert index.answered == {} and index.skipped == 2
    assert read_ledger(path).skipped == 2


def test_a_checksummed_line_with_a_broken_key_is_skipped_not_a_crash(tmp_path):
    path = tmp_path / "ledger.jsonl"
    body = b'{"key":"v|p|0"x,"status":"ok","prompt_hash":"0123456789abcdef","schema":2'
    path.write_bytes(body + b',"crc":"%08x"}\n' % zlib.crc32(body) + line("a", OK))
    index = build_index(path)
    assert index.answered == {"a": HASH} and index.skipped == 1


def test_next_writer_sets_a_torn_tail_aside_before_appending(tmp_path):
    path = tmp_path / "ledger.jsonl"
    torn = line("b", OK)[:-9]
    path.write_bytes(line("a", OK) + torn)
    writer = LedgerWriter(path)
    writer.append({"key": "c", **OK})
    writer.close()
    assert path.read_bytes() == line("a", OK) + line("c", OK)
    assert torn in (tmp_path / "ledger.jsonl.torn").read_bytes()
    assert build_index(path).skipped == 0


def test_a_last_record_that_lacks_only_its_newline_is_whole_and_the_next_writer_ends_it(
    tmp_path,
):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(line("a", OK) + line("b", ERR) + line("b", OK)[:-1])
    index = build_index(path)
    assert index.is_done("b", HASH) and index.skipped == 0 and not index.failures
    contents = read_ledger(path)
    assert [r["key"] for r in contents.records] == ["a", "b", "b"] and contents.skipped == 0
    writer = LedgerWriter(path)
    writer.append({"key": "c", **OK})
    writer.close()
    assert path.read_bytes() == line("a", OK) + line("b", ERR) + line("b", OK) + line("c", OK)
    assert not (tmp_path / "ledger.jsonl.torn").exists()


def test_a_last_line_cut_anywhere_else_is_still_set_aside(tmp_path):
    path = tmp_path / "ledger.jsonl"
    for cut in (2, 3, 12):
        torn = line("b", OK)[:-cut]
        path.write_bytes(line("a", OK) + torn)
        assert not build_index(path).is_done("b", HASH)
        LedgerWriter(path).close()
        assert path.read_bytes() == line("a", OK)
        assert torn in (tmp_path / "ledger.jsonl.torn").read_bytes()


def test_keys_with_quotes_and_unicode_index_like_a_full_parse(tmp_path):
    path = tmp_path / "ledger.jsonl"
    keys = ['v|say "status":"ok"|0', 'v|naïve,\\"x|1', 'v|{"key":|2']
    path.write_bytes(b"".join(line(k, OK) for k in keys) + line(keys[1], ERR))
    index = build_index(path)
    assert index.answered == {keys[0]: HASH, keys[2]: HASH} and set(index.failures) == {keys[1]}


def test_run_lines_and_foreign_lines_are_told_apart(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(sealed({"type": "run", "run_id": "r1"}) + b"[1,2]\n" + line("a", OK))
    index = build_index(path)
    assert index.skipped == 1 and index.is_done("a", HASH)
    assert read_ledger(path).runs == [{"type": "run", "run_id": "r1", "crc": line_crc(path, 0)}]


def line_crc(path, number: int) -> str:
    return orjson.loads(path.read_bytes().splitlines()[number])["crc"]


def test_only_one_writer_at_a_time(tmp_path):
    path = tmp_path / "ledger.jsonl"
    first = LedgerWriter(path)
    try:
        with pytest.raises(InputError, match="in use by another harness run"):
            LedgerWriter(path)
    finally:
        first.close()
    LedgerWriter(path).close()


def test_appended_records_reach_the_file_in_batches_and_at_close(tmp_path):
    path = tmp_path / "ledger.jsonl"
    writer = LedgerWriter(path, batch=3)
    writer.append({"key": "a", **OK})
    writer.append({"key": "b", **OK})
    assert path.read_bytes() == b""
    writer.append({"key": "c", **OK})
    assert path.read_bytes().count(b"\n") == 3
    writer.append({"key": "d", **OK})
    writer.close()
    assert path.read_bytes().count(b"\n") == 4
