"""The hallucination view: the label a scorer names in `claims` over the answers to synthetic
probes, and `denies` over those to real items, per variant, recorded by `score` in
`scorers.jsonl` and read by `stats` for the scorer's current definition only."""

from __future__ import annotations

import json

import pytest

from harness.analysis.probe_labels import SCORERS_NAME
from harness.analysis.stats import compute_stats
from tests.conftest import ledger_lines
from tests.harness.analysis.ledgers import answer, score, write_ledger, write_scores
from tests.harness.analysis.score_project import EXISTENCE, project, rewrite_scorers, score_lines

ROLES = EXISTENCE.replace('default = "other"\n', 'default = "other"\nclaims = "claims"\n', 1)


def _scorer_lines(output):
    path = output / SCORERS_NAME
    return ledger_lines(path) if path.exists() else []


def test_score_records_the_probe_labels_once_and_an_edit_of_them_needs_no_rescoring(
    tmp_path, run_cli
):
    config = project(tmp_path, run_cli, ROLES)
    output = tmp_path / "out"
    assert run_cli("score", config)[0] == 0
    (line,) = _scorer_lines(output)
    assert (line["scorer"], line["claims"], line["denies"]) == ("existence", "claims", None)
    assert line["definition"] == score_lines(output)[0]["definition"]
    assert run_cli("score", config)[0] == 0
    assert len(_scorer_lines(output)) == 1  # nothing changed: nothing appended

    answers = len(score_lines(output))
    rewrite_scorers(config, 'claims = "claims"\n', 'claims = "claims"\ndenies = "denies"\n')
    assert run_cli("score", config)[0] == 0
    assert len(score_lines(output)) == answers  # the labels' meaning is not their definition
    assert _scorer_lines(output)[-1]["denies"] == "denies"
    stats = compute_stats(output / "ledger.jsonl", output / "scores.jsonl", resamples=0)
    assert {(r.measure, r.label) for r in stats.hallucination} == {
        ("hallucination", "claims"),
        ("false denial", "denies"),
    }

    rewrite_scorers(config, 'claims = "claims"\ndenies = "denies"\n', "")
    assert run_cli("score", config)[0] == 0
    assert (_scorer_lines(output)[-1]["claims"], _scorer_lines(output)[-1]["denies"]) == (
        None,
        None,
    )
    stats = compute_stats(output / "ledger.jsonl", output / "scores.jsonl", resamples=0)
    assert stats.hallucination == [] and stats.hallucination_comparisons == []


def _files(tmp_path, probes: bool = True, definition: str = "d0d0d0d0d0d0"):
    """Two variants over six prompts (p0, p3 probes when `probes`): a claims p0-p2, b claims
    p0 and p3; the rest deny. The scorer's claims and denies recorded for `definition`."""
    records = [
        answer(v, f"p{i}", probe=probes and i % 3 == 0) for v in ("a@t0", "b@t0") for i in range(6)
    ]
    write_ledger(tmp_path / "ledger.jsonl", records)
    claimed = {"a@t0": {0, 1, 2}, "b@t0": {0, 3}}
    lines = [
        score(r, "s", "yes" if int(r["prompt_id"][1:]) in claimed[r["variant"]] else "no")
        for r in records
    ]
    write_scores(tmp_path / "scores.jsonl", lines)
    line = {
        "key": "s",
        "type": "scorer",
        "scorer": "s",
        "definition": definition,
        "claims": "yes",
        "denies": "no",
        "schema": 1,
        "timestamp": "2026-11-24T00:00:03.000Z",
    }
    write_ledger(tmp_path / SCORERS_NAME, [line])
    return tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl"


def test_rates_are_over_the_probes_and_the_real_items_each_variant_answered(tmp_path):
    stats = compute_stats(*_files(tmp_path), resamples=0)
    found = {(r.measure, r.variant): (r.count, r.n) for r in stats.hallucination}
    assert found == {
        ("hallucination", "a@t0"): (1, 2),  # p0 of p0, p3
        ("hallucination", "b@t0"): (2, 2),
        ("false denial", "a@t0"): (2, 4),  # p4, p5 of p1, p2, p4, p5
        ("false denial", "b@t0"): (4, 4),
    }
    (probes, real) = stats.hallucination_comparisons
    assert (probes.split, probes.label, probes.pairs, probes.a_only, probes.b_only) == (
        "synthetic probes",
        "yes",
        2,
        0,
        1,
    )
    assert (real.split, real.label, real.pairs, real.a_only, real.b_only) == (
        "real items",
        "no",
        4,
        0,
        2,
    )


def test_labels_recorded_for_an_earlier_definition_give_no_view_and_say_so(tmp_path):
    stats = compute_stats(*_files(tmp_path, definition="e1e1e1e1e1e1"), resamples=0)
    assert stats.hallucination == []
    assert any("earlier definition of the scorer: score again" in note for note in stats.notes)


def test_without_synthetic_probes_there_is_no_view(tmp_path):
    stats = compute_stats(*_files(tmp_path, probes=False), resamples=0)
    assert stats.hallucination == [] and not any("probe" in note for note in stats.notes)


def test_probes_without_probe_labels_get_a_note_saying_how(tmp_path):
    ledger, scores = _files(tmp_path)
    (tmp_path / SCORERS_NAME).unlink()
    stats = compute_stats(ledger, scores, resamples=0)
    assert stats.hallucination == []
    assert any("4 answer(s) are to synthetic probes" in note for note in stats.notes)


def test_a_scorer_kept_without_probe_labels_names_the_one_left_out_that_has_them(tmp_path):
    ledger, scores = _files(tmp_path)
    other = [score(record, "t", "long") for record in ledger_lines(ledger)]
    write_scores(scores, [*ledger_lines(scores), *other])
    stats = compute_stats(ledger, scores, scorers=["t"], resamples=0)
    assert stats.hallucination == []
    assert "the hallucination view is in the labels of s, which --scorer left out" in stats.notes
    assert not any("answer(s) are to synthetic probes" in note for note in stats.notes)


def test_a_label_asked_for_keeps_only_its_measure(tmp_path):
    stats = compute_stats(*_files(tmp_path), label="yes", resamples=0)
    assert {r.measure for r in stats.hallucination} == {"hallucination"}


def test_stats_leads_with_the_view_and_json_has_it(tmp_path, run_cli):
    _files(tmp_path)
    code, out, err = run_cli("stats", tmp_path, "--json", tmp_path / "s.json")
    assert (code, err) == (0, "")
    assert out.index("s: hallucination view") < out.index("s = no: rate")
    assert "hallucination: yes on synthetic probes" in out and "false denial: no on real" in out
    found = json.loads((tmp_path / "s.json").read_text())
    assert len(found["hallucination"]) == 4 and len(found["hallucination_comparisons"]) == 2


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('claims = "exists"', "scorers[0].claims: 'exists' is not one of its labels"),
        ('claims = "denies"\ndenies = "denies"', "scorers[0].denies: must differ from claims"),
    ],
)
def test_probe_labels_a_scorer_cannot_give_are_one_line_and_exit_2(
    tmp_path, run_cli, table, message
):
    text = EXISTENCE.replace('default = "other"\n', f'default = "other"\n{table}\n', 1)
    config = project(tmp_path, run_cli, "")
    config.write_text(config.read_text() + text)
    code, _, err = run_cli("score", config)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert message in err


def test_a_scorers_file_that_is_no_file_is_one_line_before_any_score_is_written(tmp_path, run_cli):
    config = project(tmp_path, run_cli, ROLES)
    output = tmp_path / "out"
    (output / SCORERS_NAME).mkdir()
    code, _, err = run_cli("score", config)
    assert (code, err) == (
        2,
        f"error: {output / SCORERS_NAME}: is not a file (the scorers file must be one)\n",
    )
    assert score_lines(output) == []
    code, _, err = run_cli("stats", output)
    assert code == 2 and err.count("\n") == 1 and "is not a file" in err


def test_damaged_lines_a_label_never_given_and_no_verdicts_are_said(tmp_path):
    ledger, scores = _files(tmp_path)
    with (tmp_path / SCORERS_NAME).open("ab") as file:
        file.write(b'{"key": "s", "type": "scorer", "torn\n')
    records = [answer("c@t0", f"p{i}", probe=i % 3 == 0) for i in range(6)]
    with ledger.open("ab") as file:
        write_ledger(tmp_path / "more.jsonl", records)
        file.write((tmp_path / "more.jsonl").read_bytes())
    lines = [score(r, "s", "UNPARSEABLE" if i < 2 else "no") for i, r in enumerate(records)]
    write_scores(tmp_path / "more-scores.jsonl", lines)
    with scores.open("ab") as file:
        file.write((tmp_path / "more-scores.jsonl").read_bytes())
    stats = compute_stats(ledger, scores, resamples=0)
    assert any(f"{SCORERS_NAME}: skipped 1 unreadable line(s)" in n for n in stats.notes)
    assert "s: 2 answer(s) without a verdict (UNPARSEABLE) left out of the hallucination view" in (
        stats.notes
    )
    found = {(r.measure, r.variant): (r.count, r.n) for r in stats.hallucination}
    assert found[("hallucination", "c@t0")] == (0, 1)  # p3; p0 has no verdict
    assert found[("false denial", "c@t0")] == (3, 3)  # p2, p4, p5; p1 has no verdict


def test_a_claims_label_no_answer_has_is_said_with_those_given(tmp_path):
    ledger, scores = _files(tmp_path)
    line = ledger_lines(tmp_path / SCORERS_NAME)[0]
    write_ledger(tmp_path / SCORERS_NAME, [{**line, "claims": "Yes"}])
    stats = compute_stats(ledger, scores, resamples=0)
    assert (
        "s: no answer has its claims label 'Yes' (the labels it gave: no, yes): its "
        in " ".join(stats.notes)
    )
    assert {r.count for r in stats.hallucination if r.measure == "hallucination"} == {0}
