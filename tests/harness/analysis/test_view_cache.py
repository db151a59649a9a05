"""Snapshots of the view (`OUTPUT/.harness-cache`): taken again only while every file is as it
was, byte for byte; a line changed in place, records or scores appended, a damaged snapshot:
the view is made afresh, and gives what a view made afresh gives."""

from __future__ import annotations

import pytest
import xxhash

from harness.analysis import view, view_cache
from harness.analysis.stats import compute_stats
from harness.analysis.view_cache import FOLDER
from tests.harness.analysis.ledgers import answer, score, write_ledger, write_scores


def _run(tmp_path, records=6):
    made = [answer(v, f"p{i}", probe=i % 3 == 0) for v in ("a@t0", "b@t0") for i in range(records)]
    ledger = write_ledger(tmp_path / "ledger.jsonl", made)
    lines = [score(r, "s", "yes" if i % 2 else "no") for i, r in enumerate(made)]
    return ledger, write_scores(tmp_path / "scores.jsonl", lines), made


def _stats(ledger, scores):
    return compute_stats(ledger, scores, resamples=0).as_json()


def _afresh(ledger, scores, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setenv("HARNESS_VIEW_CACHE", "0")
        return _stats(ledger, scores)


def _no_reading(monkeypatch):
    """Make reading the files fail: what follows must come from a snapshot."""

    def refused(*args, **kwargs):
        raise AssertionError("read the files")

    monkeypatch.setattr(view, "_make", refused)


def test_an_unchanged_run_is_read_from_its_snapshot_with_the_same_report(tmp_path, monkeypatch):
    ledger, scores, _ = _run(tmp_path)
    first = _stats(ledger, scores)
    assert len(list((tmp_path / FOLDER).glob("*.duckdb"))) == 1
    with monkeypatch.context() as patch:
        _no_reading(patch)
        assert _stats(ledger, scores) == first
    assert first == _afresh(ledger, scores, monkeypatch)


def test_a_byte_changed_in_place_is_read_afresh_and_its_line_never_counted(tmp_path, monkeypatch):
    ledger, scores, _ = _run(tmp_path)
    before = compute_stats(ledger, scores, resamples=0)
    body = bytearray(ledger.read_bytes())
    at = body.index(b"a@t0 on p2")  # a record in the middle: its seal no longer holds
    body[at] = ord("A")
    ledger.write_bytes(bytes(body))  # the same size
    after = compute_stats(ledger, scores, resamples=0)
    assert after.answers == before.answers - 1
    assert any("skipped 1 unreadable line" in note for note in after.notes)
    assert after.as_json() == _afresh(ledger, scores, monkeypatch)


def test_records_and_scores_appended_are_read_afresh(tmp_path, monkeypatch):
    ledger, scores, made = _run(tmp_path)
    _stats(ledger, scores)
    extra = answer("a@t0", "p9")
    write_ledger(tmp_path / "more.jsonl", [extra])
    with ledger.open("ab") as file:
        file.write((tmp_path / "more.jsonl").read_bytes())
    assert compute_stats(ledger, scores, resamples=0).answers == len(made) + 1
    write_scores(tmp_path / "more-scores.jsonl", [score(extra, "s", "yes")])
    with scores.open("ab") as file:
        file.write((tmp_path / "more-scores.jsonl").read_bytes())
    found = _stats(ledger, scores)
    assert found == _afresh(ledger, scores, monkeypatch)
    with monkeypatch.context() as patch:
        _no_reading(patch)
        assert _stats(ledger, scores) == found  # the new snapshot


@pytest.mark.parametrize("damage", [b"not a database", b""])
def test_a_damaged_snapshot_is_passed_over_and_made_again(tmp_path, monkeypatch, damage):
    ledger, scores, _ = _run(tmp_path)
    first = _stats(ledger, scores)
    (snapshot,) = (tmp_path / FOLDER).glob("*.duckdb")
    snapshot.write_bytes(damage)
    assert _stats(ledger, scores) == first
    with monkeypatch.context() as patch:
        _no_reading(patch)
        assert _stats(ledger, scores) == first


def test_a_verb_that_fails_or_snapshots_turned_off_leave_none(tmp_path, run_cli, monkeypatch):
    _run(tmp_path)
    code, _, err = run_cli("stats", tmp_path, "--scorer", "nobody")
    assert code == 2 and err.startswith("error: ")
    assert not (tmp_path / FOLDER).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    monkeypatch.setenv("HARNESS_VIEW_CACHE", "0")
    assert run_cli("stats", tmp_path, "--resamples", "0")[0] == 0
    assert not (tmp_path / FOLDER).exists()


def test_a_report_of_some_variants_from_a_snapshot_is_the_report_made_afresh(
    tmp_path, run_cli, monkeypatch
):
    _run(tmp_path)
    args = ("report", tmp_path, "--variant", "b@t0", "--resamples", "0")
    assert run_cli(*args, "--out", tmp_path / "first.html")[0] == 0
    with monkeypatch.context() as patch:
        _no_reading(patch)
        code, out, err = run_cli(*args, "--out", tmp_path / "again.html")
    assert (code, err) == (0, "") and ", 6 jobs)" in out
    assert (tmp_path / "again.html").read_bytes() == (tmp_path / "first.html").read_bytes()


def test_a_file_changed_while_the_view_is_made_leaves_no_snapshot(tmp_path, monkeypatch):
    ledger, scores, _ = _run(tmp_path)
    made = view._make

    def changed_meanwhile(*args, **kwargs):
        made(*args, **kwargs)
        body = bytearray(ledger.read_bytes())
        body[body.index(b"a@t0 on p2")] = ord("A")  # in place, the same size
        ledger.write_bytes(bytes(body))

    with monkeypatch.context() as patch:
        patch.setattr(view, "_make", changed_meanwhile)
        compute_stats(ledger, scores, resamples=0)
    assert not list(tmp_path.glob(f"{FOLDER}/*.duckdb"))
    assert _stats(ledger, scores) == _afresh(ledger, scores, monkeypatch)  # the line left out


def test_another_views_snapshot_under_this_name_is_passed_over(tmp_path, monkeypatch):
    ledger, scores, _ = _run(tmp_path)
    whole = _stats(ledger, scores)
    (mine,) = (tmp_path / FOLDER).glob("*.duckdb")
    compute_stats(ledger, scores, scorers=["s"], label="yes", resamples=0)
    (other,) = [p for p in (tmp_path / FOLDER).glob("*.duckdb") if p != mine]
    other.replace(mine)
    assert _stats(ledger, scores) == whole


def test_a_verb_stopped_while_keeping_a_snapshot_leaves_no_temporary(tmp_path, monkeypatch):
    ledger, scores, _ = _run(tmp_path)
    saved = view.save

    def stopped(connection, snapshot, *args):
        saved(connection, snapshot, *args)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(view, "save", stopped)
        with pytest.raises(KeyboardInterrupt):
            compute_stats(ledger, scores, resamples=0)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_only_snapshots_are_pruned_and_a_linked_folder_keeps_none(tmp_path):
    ledger, scores, _ = _run(tmp_path)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    for n in range(10):
        (theirs / f"mine{n}.duckdb").write_bytes(b"a database of the user's")
    (tmp_path / FOLDER).symlink_to(theirs)
    for label in (None, "yes", "no"):
        compute_stats(ledger, scores, label=label, resamples=0)
    assert sorted(p.name for p in theirs.iterdir()) == sorted(f"mine{n}.duckdb" for n in range(10))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_files_checksums_are_those_of_each_stretch_in_order_on_any_number_of_threads(
    tmp_path, monkeypatch, threads
):
    monkeypatch.setattr(view_cache, "_CHUNK", 7)
    path = tmp_path / "file"
    data = bytes(range(256)) * 3
    path.write_bytes(data)
    for size in (0, 5, 7, 100, len(data)):
        stretches = [data[at : min(at + 7, size)] for at in range(0, size, 7)]
        expected = [xxhash.xxh3_64_intdigest(stretch) for stretch in stretches]
        assert view_cache._digests(path, size, threads, None) == expected
