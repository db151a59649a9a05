"""The ledger writer's edges in-process: a fresh start under the lock, a ledger deleted or replaced
while it is written, writes that fail mid-run, bad output paths, and directory fsyncs."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat

import pytest

from harness.errors import InputError, LedgerWriteError
from harness.ledger.lines import read_ledger, sealed
from harness.ledger.writer import LedgerWriter
from tests.conftest import SIMPLE_MODEL, write_config


def rec(key: str) -> dict:
    return {
        "key": key,
        "status": "ok",
        "variant": "v",
        "prompt_id": key,
        "sample": 0,
        "full_response": "x" * 40,
    }


def line(key: str) -> bytes:
    return sealed(rec(key))


def full_after(budget: int):
    """os.write on a disk with `budget` bytes left: a short write, then ENOSPC."""
    left = [budget]

    def write(fd: int, data: memoryview) -> int:
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = os.write(fd, data[: left[0]])
        left[0] -= written
        return written

    return write


def test_fresh_while_another_writer_holds_the_ledger_renames_nothing(tmp_path):
    path = tmp_path / "ledger.jsonl"
    live = LedgerWriter(path)
    live.append(rec("a"))
    live.flush()
    with pytest.raises(InputError, match="in use by another harness run"):
        LedgerWriter(path, fresh=True)
    live.append(rec("b"))
    live.close()
    assert os.listdir(tmp_path) == ["ledger.jsonl"]
    assert path.read_bytes() == line("a") + line("b")


def test_fresh_sets_the_old_ledger_aside_and_locks_the_new_one(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(line("a"))
    writer = LedgerWriter(path, fresh=True)
    try:
        assert writer.set_aside is not None and writer.set_aside.read_bytes() == line("a")
        assert path.read_bytes() == b""
        with pytest.raises(InputError, match="in use"):
            LedgerWriter(path)
    finally:
        writer.close()


def test_fresh_sets_aside_the_ledgers_along_with_one_stamp_or_none_when_one_is_in_use(tmp_path):
    path, shard = tmp_path / "ledger.jsonl", tmp_path / "shards" / "0-of-2" / "ledger.jsonl"
    empty = tmp_path / "shards" / "1-of-2" / "ledger.jsonl"
    path.write_bytes(line("a"))
    live = LedgerWriter(shard)
    live.append(rec("b"))
    live.flush()
    empty.parent.mkdir()
    empty.touch()
    with pytest.raises(InputError, match=r"0-of-2/ledger\.jsonl: in use by another harness run"):
        LedgerWriter(path, fresh=True, along=[shard, empty])
    assert sorted(p.name for p in tmp_path.rglob("*.jsonl")) == ["ledger.jsonl"] * 3
    live.close()
    writer = LedgerWriter(path, fresh=True, along=[shard, empty])
    writer.close()
    assert writer.set_aside is not None and writer.set_aside.read_bytes() == line("a")
    assert writer.set_aside_along == [(shard, shard.with_name(writer.set_aside.name))]
    assert shard.with_name(writer.set_aside.name).read_bytes() == line("b")
    assert not shard.exists() and empty.exists()  # an empty ledger holds nothing to set aside


def test_close_discarding_empty_removes_only_an_empty_ledger_the_writer_created(tmp_path):
    created, kept = tmp_path / "new" / "ledger.jsonl", tmp_path / "ledger.jsonl"
    kept.touch()
    for path in (created, kept):
        LedgerWriter(path).close(discard_empty=True)
    assert not created.exists() and kept.exists()
    written = LedgerWriter(created)
    written.append(rec("a"))
    written.close(discard_empty=True)
    assert created.read_bytes() == line("a")


def test_a_deleted_ledger_is_recreated_from_the_open_file_and_the_run_goes_on(tmp_path, caplog):
    path = tmp_path / "ledger.jsonl"
    writer = LedgerWriter(path, batch=2)
    for key in "abc":
        writer.append(rec(key))
    path.unlink()
    with caplog.at_level(logging.WARNING, logger="harness"):
        writer.append(rec("d"))
    assert path.read_bytes() == b"".join(line(k) for k in "abcd")
    assert "was deleted during the run; recreated it" in caplog.text
    writer.append(rec("e"))
    writer.close()
    assert path.read_bytes() == b"".join(line(k) for k in "abcde")


def test_a_deleted_output_directory_is_made_again(tmp_path):
    path = tmp_path / "out" / "ledger.jsonl"
    writer = LedgerWriter(path, batch=1)
    writer.append(rec("a"))
    shutil.rmtree(tmp_path / "out")
    writer.append(rec("b"))
    writer.close()
    assert path.read_bytes() == line("a") + line("b")


def test_a_replaced_ledger_is_left_alone_and_the_writer_moves_to_a_recovered_file(tmp_path):
    path = tmp_path / "ledger.jsonl"
    writer = LedgerWriter(path, batch=2)
    for key in "abc":
        writer.append(rec(key))
    (tmp_path / "other").write_bytes(b"someone else's\n")
    os.replace(tmp_path / "other", path)
    with pytest.raises(LedgerWriteError, match="replaced by another file") as raised:
        writer.append(rec("d"))
    (recovered,) = tmp_path.glob("ledger.recovered-*.jsonl")
    assert str(recovered) in str(raised.value)
    assert recovered.read_bytes() == b"".join(line(k) for k in "abcd")
    writer.append(rec("e"))  # a record finishing while the run stops still lands there
    writer.close()
    assert recovered.read_bytes() == b"".join(line(k) for k in "abcde")
    assert path.read_bytes() == b"someone else's\n"


def test_disk_full_mid_run_keeps_what_was_written_and_counts_what_was_not(tmp_path):
    path = tmp_path / "ledger.jsonl"
    size = len(line("k00"))
    writer = LedgerWriter(path, batch=4, write=full_after(5 * size + 10))
    for n in range(4):
        writer.append(rec(f"k{n:02d}"))
    with pytest.raises(LedgerWriteError, match="No space left on device"):
        for n in range(4, 8):
            writer.append(rec(f"k{n:02d}"))
    assert writer.unwritten == 3
    writer.append(rec("k08"))  # after the failure: kept, counted, never raised again
    writer.flush()
    writer.close()
    assert writer.unwritten == 4
    written = path.read_bytes()
    assert written == b"".join(line(f"k{n:02d}") for n in range(5)) + line("k05")[:10]
    LedgerWriter(path).close()  # the next run sets the torn tail aside
    assert [r["key"] for r in read_ledger(path).records] == [f"k{n:02d}" for n in range(5)]
    assert read_ledger(path).skipped == 0


def test_a_failed_fsync_stops_the_writer_once(tmp_path, monkeypatch):
    writer = LedgerWriter(tmp_path / "ledger.jsonl")
    writer.append(rec("a"))

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(LedgerWriteError, match="cannot write the ledger: Input/output error"):
        writer.sync()
    writer.close()
    assert (tmp_path / "ledger.jsonl").read_bytes() == line("a")


@pytest.fixture
def dir_syncs(monkeypatch):
    """The names each directory held whenever it was fsync'd."""
    seen: list[set[str]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            seen.append(set(os.listdir(fd)))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_the_directory_is_synced_after_a_ledger_is_created_or_renamed(tmp_path, dir_syncs):
    path = tmp_path / "ledger.jsonl"
    writer = LedgerWriter(path, batch=1)
    writer.append(rec("a"))
    writer.close()
    assert {"ledger.jsonl"} in dir_syncs
    dir_syncs.clear()
    writer = LedgerWriter(path, fresh=True)
    (aside,) = tmp_path.glob("ledger.2*.jsonl")
    assert {"ledger.jsonl", aside.name} in dir_syncs
    dir_syncs.clear()
    path.unlink()
    writer.append(rec("b"))
    writer.close()
    assert {"ledger.jsonl", aside.name} in dir_syncs


def test_the_directory_is_synced_after_a_recovery(tmp_path, dir_syncs):
    path = tmp_path / "ledger.jsonl"
    writer = LedgerWriter(path)
    writer.append(rec("a"))
    path.unlink()
    path.write_bytes(b"")
    dir_syncs.clear()
    with pytest.raises(LedgerWriteError):
        writer.flush()
    writer.close()
    (recovered,) = tmp_path.glob("ledger.recovered-*.jsonl")
    assert any(recovered.name in names for names in dir_syncs)


def test_an_output_path_that_is_a_file_exits_2_naming_it(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL)
    (tmp_path / "out").write_text("not a folder")
    code, _, err = run_cli("run", config)
    assert code == 2
    assert err == f"error: {tmp_path / 'out'}: the output path is a file, not a directory\n"
    code, _, err = run_cli("run", config, "--output", tmp_path / "out" / "sub")
    assert code == 2 and err.count("\n") == 1 and "Not a directory" in err


@pytest.mark.parametrize("verb", [["run"], ["run", "--fresh"], ["rerun"]])
def test_a_ledger_path_that_is_a_directory_exits_2_naming_it(tmp_path, run_cli, verb):
    config = write_config(tmp_path, SIMPLE_MODEL)
    ledger = tmp_path / "out" / "ledger.jsonl"
    ledger.mkdir(parents=True)
    code, _, err = run_cli(*verb, config)
    assert code == 2
    assert err == f"error: {ledger}: the ledger path is a directory, not a file\n"


def test_an_output_directory_that_refuses_writes_exits_2_naming_it(
    tmp_path, run_cli, unwritable_dir
):
    config = write_config(tmp_path, SIMPLE_MODEL)
    code, _, err = run_cli("run", config, "--output", unwritable_dir)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {unwritable_dir / 'ledger.jsonl'}: cannot open the ledger: ")


def test_run_over_a_last_answer_that_lacks_only_its_newline_does_not_answer_it_again(
    tmp_path, run_cli
):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=2)
    assert run_cli("run", config)[0] == 0
    ledger = tmp_path / "out" / "ledger.jsonl"
    whole = ledger.read_bytes()
    ledger.write_bytes(whole[:-1])  # a crash cut only the last newline
    code, out, err = run_cli("run", config)
    assert (code, err) == (0, "") and "unreadable" not in out
    assert ledger.read_bytes().startswith(whole)
    records = read_ledger(ledger).records
    assert len(records) == 4 and len({r["key"] for r in records}) == 4
    assert not ledger.with_name("ledger.jsonl.torn").exists()
