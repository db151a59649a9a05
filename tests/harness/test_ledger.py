"""The ledger: append-only lines, torn tails, one writer, an index where the latest line wins."""

from __future__ import annotations

import orjson
import pytest

from harness.errors import InputError
from harness.ledger import LedgerWriter, build_index, read_ledger

OK = {"status": "ok", "schema": 1, "variant": "v", "full_response": "fine"}
ERR = {"status": "error", "schema": 1, "variant": "v", "error": {"type": "ServerError"}}


def line(key: str, record: dict) -> bytes:
    return orjson.dumps({"key": key, **record}, option=orjson.OPT_APPEND_NEWLINE)


def test_latest_record_per_key_wins(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(line("a", ERR) + line("b", OK) + line("a", OK) + line("b", ERR))
    index = build_index(path)
    assert index.is_done("a") and not index.is_done("b")
    assert set(index.failures) == {"b"}


def test_torn_last_line_is_skipped_and_counted(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(line("a", OK) + line("b", OK)[:25])
    index = build_index(path)
    assert index.status == {"a": "ok"} and index.skipped == 1
    contents = read_ledger(path)
    assert len(contents.records) == 1 and contents.skipped == 1


def test_a_torn_line_cut_after_its_status_is_not_taken_as_done(tmp_path):
    path = tmp_path / "ledger.jsonl"
    whole = line("b", OK)
    path.write_bytes(line("a", OK) + whole[: whole.index(b"full_response")])
    assert not build_index(path).is_done("b")


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


def test_keys_with_quotes_and_unicode_index_like_a_full_parse(tmp_path):
    path = tmp_path / "ledger.jsonl"
    keys = ['v|say "status":"ok"|0', 'v|naïve,\\"x|1', 'v|{"key":|2']
    path.write_bytes(b"".join(line(k, OK) for k in keys) + line(keys[1], ERR))
    index = build_index(path)
    assert index.status == {keys[0]: "ok", keys[1]: "error", keys[2]: "ok"}


def test_run_lines_and_foreign_lines_are_told_apart(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b'{"type":"run","run_id":"r1"}\n[1,2]\n' + line("a", OK))
    index = build_index(path)
    assert index.last_run == {"type": "run", "run_id": "r1"}
    assert index.skipped == 1 and index.is_done("a")


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
