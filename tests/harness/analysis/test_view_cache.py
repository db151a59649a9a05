"""Snapshots of the view (`OUTPUT/.harness-cache`): taken again only while every file is as it
was, byte for byte; a line changed in place, records or scores appended, a damaged snapshot:
the view is made afresh, and gives what a view made afresh gives."""

from __future__ import annotations

import pytest

from harness.analysis import view
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
