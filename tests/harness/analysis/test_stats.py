"""`harness stats`: which answers and scores count, how variants are paired, and the verb."""

from __future__ import annotations

import json
import re

import pytest

from harness.analysis.stats import compute_stats
from tests.harness.analysis.ledgers import (
    answer,
    failure,
    logprobs,
    score,
    write_ledger,
    write_scores,
)


def test_rates_per_category_and_overall_count_only_current_scores(tmp_path):
    records = {
        name: answer("a@t0", name, category=category)
        for name, category in [("p0", "cve"), ("p1", "cve"), ("p2", "cve"), ("p3", "pkg")]
    }
    rerun = answer("a@t0", "p2", category="cve", response="answered again")
    ledger = write_ledger(tmp_path / "ledger.jsonl", [*records.values(), rerun])
    scores = write_scores(
        tmp_path / "scores.jsonl",
        [
            score(records["p0"], "claims", "exists", definition="old111111111"),
            score(records["p0"], "claims", "exists", definition="new222222222"),
            score(records["p1"], "claims", "exists", definition="old111111111"),  # stale rubric
            score(records["p2"], "claims", "exists", definition="new222222222"),  # old answer
            score(records["p3"], "claims", "none", definition="new222222222"),
        ],
    )
    report = compute_stats(ledger, scores, resamples=0)
    rows = {(r.category, r.label): (r.count, r.n) for r in report.rates if r.scorer == "claims"}
    assert rows == {
        ("cve", "exists"): (1, 1),
        ("cve", "none"): (0, 1),
        ("pkg", "exists"): (0, 1),
        ("pkg", "none"): (1, 1),
        (None, "exists"): (1, 2),
        (None, "none"): (1, 2),
    }
    notes = " | ".join(report.notes)
    assert "claims: 2 answer(s) have no current score" in notes
    assert "claims: 1 score(s) were given under an earlier definition" in notes


def test_a_raters_unlabelled_answers_are_said_as_such_not_as_to_score_again(tmp_path):
    records = [answer("a@t0", f"p{i}") for i in range(3)]
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    scores = write_scores(
        tmp_path / "scores.jsonl",
        [score(records[0], "human:r1", "yes"), score(records[0], "claims", "yes")],
    )
    notes = compute_stats(ledger, scores, resamples=0).notes
    assert "human:r1: 2 answer(s) this rater did not label" in notes
    assert any(n.startswith("claims: 2 answer(s) have no current score") for n in notes)
    assert not any(n.startswith("human:r1: 2 answer(s) have no current score") for n in notes)


def test_failed_scores_and_failed_answers_are_counted_apart(tmp_path):
    ok, judged_badly = answer("a@t0", "p0"), answer("a@t0", "p1")
    ledger = write_ledger(tmp_path / "ledger.jsonl", [ok, judged_badly, failure("a@t0", "p2")])
    scores = write_scores(
        tmp_path / "scores.jsonl",
        [score(ok, "judge", "yes"), score(judged_badly, "judge", None, status="error")],
    )
    report = compute_stats(ledger, scores, resamples=0)
    judge = [r for r in report.rates if r.scorer == "judge" and r.category is None]
    assert [(r.label, r.count, r.n) for r in judge] == [("yes", 1, 1)]
    assert "judge: 1 score(s) failed (no label)" in report.notes
    assert "judge: 1 answer(s) have no current score" in " ".join(report.notes)
    status = [r for r in report.rates if r.scorer == "(status)" and r.category is None]
    assert [(r.label, r.count, r.n) for r in status] == [("error", 1, 3)]


def test_variants_are_paired_on_prompt_and_sample_they_share(tmp_path):
    a = [answer("a@t0", f"p{i}", sample) for i in range(4) for sample in (0, 1)]
    b = [answer("b@t0", f"p{i}", 0) for i in range(6)]  # p4, p5 only b; no sample 1
    ledger = write_ledger(tmp_path / "ledger.jsonl", a + b)
    yes_for = {"a@t0|p0|0", "a@t0|p1|0", "a@t0|p0|1", "b@t0|p0|0", "b@t0|p4|0"}
    lines = [score(r, "s", "yes" if r["key"] in yes_for else "no") for r in a + b]
    scores = write_scores(tmp_path / "scores.jsonl", lines)
    (comparison,) = compute_stats(ledger, scores, resamples=0).comparisons
    assert comparison.pairs == 4  # p0..p3, sample 0
    assert comparison.label == "no"  # of two labels one test: the first, sorted
    assert (comparison.rate_a, comparison.rate_b) == (0.5, 0.75)
    assert (comparison.a_only, comparison.b_only) == (0, 1)  # p1: "no" from b alone


@pytest.mark.parametrize(
    ("labels", "compared"),
    [(["x"], []), (["x", "y"], ["x"]), (["x", "y", "z"], ["x", "y", "z"])],
)
def test_which_labels_are_compared(tmp_path, labels, compared):
    records = [answer(v, f"p{i}") for v in ("a@t0", "b@t0") for i in range(6)]
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    lines = [score(r, "s", labels[i % len(labels)]) for i, r in enumerate(records)]
    scores = write_scores(tmp_path / "scores.jsonl", lines)
    report = compute_stats(ledger, scores, resamples=0)
    assert [c.label for c in report.comparisons] == compared
    narrowed = compute_stats(ledger, scores, label=labels[-1], resamples=0)
    assert [c.label for c in narrowed.comparisons] == ([labels[-1]] if compared else [])
    assert {r.label for r in narrowed.rates} == {labels[-1]}


def test_a_chosen_label_is_also_a_target_for_the_uncertainty(tmp_path):
    records = [
        answer("a@t0", f"p{i}", token_logprobs=logprobs([-float(i % 4), -5.0])) for i in range(12)
    ]
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    lines = [score(r, "s", "wrong" if i % 4 >= 2 else "right") for i, r in enumerate(records)]
    scores = write_scores(tmp_path / "scores.jsonl", lines)
    report = compute_stats(ledger, scores, label="wrong", resamples=0)
    found = {(s.measure, s.target): s for s in report.separations}
    # the less likely answers (logprob -2, -3) are exactly the wrong ones
    assert found[("sequence_logprob", "s=wrong")].auroc == 1.0
    assert found[("sequence_logprob", "s=wrong")].positives == 6
    assert ("sequence_logprob", "is_synthetic_probe") not in found  # no probe among them


def test_stats_verb_prints_tables_writes_json_whole_and_says_what_next(tmp_path, run_cli):
    records = [answer(v, f"p{i}") for v in ("a@t0", "b@t0") for i in range(10)]
    ledger = write_ledger(tmp_path / "out" / "ledger.jsonl", records)
    lines = [score(r, "s", "yes" if i % 3 else "no") for i, r in enumerate(records)]
    write_scores(tmp_path / "out" / "scores.jsonl", lines)
    target = tmp_path / "report" / "stats.json"
    code, out, err = run_cli("stats", tmp_path / "out", "--json", target)
    assert code == 0, err
    # one table per label, variants as columns; of two labels the first (the other is the rest)
    assert "s = no: rate, 95% Wilson interval" in out and "s = yes" not in out
    assert re.search(r"category\s+┃\s+a@t0\s+┃\s+b@t0", out)
    assert "(status) = error" not in out and "(status): no job failed (of 20)" in out
    assert "paired comparisons" in out
    assert f"Statistics: {target}" in out
    assert "-m harness export" in out and "--format parquet" in out
    report = json.loads(target.read_text())
    assert report["ledger"] == str(ledger)
    assert {c["variant_a"] for c in report["comparisons"]} == {"a@t0"}
    assert [p.name for p in target.parent.iterdir()] == ["stats.json"]  # no temporary left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scorer", "nope"], "no current scores from nope (scorers: s)"),
        (["--label", "maybe"], "no current score has the label 'maybe' (labels: no, yes)"),
    ],
)
def test_stats_with_a_scorer_or_label_not_there_exits_2(tmp_path, run_cli, args, message):
    records = [answer("a@t0", "p0"), answer("a@t0", "p1")]
    write_ledger(tmp_path / "ledger.jsonl", records)
    lines = [score(records[0], "s", "yes"), score(records[1], "s", "no")]
    write_scores(tmp_path / "scores.jsonl", lines)
    code, _, err = run_cli("stats", tmp_path, *args)
    assert code == 2
    assert err == f"error: {tmp_path / 'scores.jsonl'}: {message}\n"


def test_stats_on_no_ledger_or_an_empty_one_exits_2(tmp_path, run_cli):
    code, _, err = run_cli("stats", tmp_path)
    assert (code, err) == (2, f"error: {tmp_path / 'ledger.jsonl'}: no such ledger\n")
    (tmp_path / "ledger.jsonl").write_text('{"type": "run", "run_id": "r"}\n')
    code, _, err = run_cli("stats", tmp_path)
    assert (code, err) == (2, f"error: {tmp_path / 'ledger.jsonl'}: no result records in it\n")


@pytest.mark.parametrize(
    "logprobs",
    [
        [{"token": "x", "logprob": -1.0, "top": 5}],
        "garbage",
        [["x", -1.0]],
        [{"token": "x", "logprob": "-1.0", "top": [["x", -1.0]]}],
        [{"token": "x", "logprob": -1.0, "top": [["x", "-1.0"]]}],
        [{"token": "x", "logprob": -1.0, "top": [["x"]]}],
    ],
)
def test_malformed_token_logprobs_are_skipped_and_counted(tmp_path, run_cli, logprobs):
    bad = answer("a@t0", "p1", token_logprobs=logprobs)
    write_ledger(tmp_path / "ledger.jsonl", [answer("a@t0", "p0"), bad])
    for verb in (["stats"], ["export", "--format", "parquet"]):
        code, out, err = run_cli(verb[0], tmp_path, *verb[1:])
        assert (code, err) == (0, "")
        assert f"{tmp_path / 'ledger.jsonl'}: skipped 1 unreadable line(s)" in out


@pytest.mark.parametrize("n", [7, 9, 12, 14, 18, 19, 28, 36])
def test_a_rate_of_none_or_all_lies_inside_its_interval_exactly(tmp_path, n):
    # statsmodels gives 2.8e-17 as the lower bound of 0 of 7, and 1 - 1.1e-16 as the upper of 7
    # of 7: a bound must not leave the rate outside its own interval.
    ledger = write_ledger(tmp_path / "ledger.jsonl", [answer("a@t0", f"p{i}") for i in range(n)])
    rates = compute_stats(ledger, tmp_path / "scores.jsonl", resamples=0).rates
    for rate in rates:
        assert rate.low <= rate.rate <= rate.high
        assert (rate.low == 0.0) if rate.count == 0 else (rate.high == 1.0)


def test_a_latest_score_line_with_an_unreadable_digest_leaves_its_answer_unscored(tmp_path):
    records = [answer("a@t0", f"p{i}") for i in range(3)]
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    damaged = score(records[0], "claims", "no")
    damaged["answer"] = "not a digest"
    lines = [score(records[0], "claims", "yes"), damaged]
    lines += [score(records[1], "claims", "yes"), score(records[2], "claims", "no")]
    report = compute_stats(ledger, write_scores(tmp_path / "scores.jsonl", lines), resamples=0)
    overall = {
        r.label: (r.count, r.n) for r in report.rates if r.category is None and r.scorer == "claims"
    }
    assert overall == {"yes": (1, 2), "no": (1, 2)}  # p0 unscored, p1 and p2 as given
    notes = " | ".join(report.notes)
    assert "skipped 1 unreadable line(s)" in notes and "1 answer(s) have no current score" in notes


def _apart(tmp_path):
    """Two variants that answered no prompt in common, each answer labelled."""
    records = [answer("a@t0", p) for p in ("p0", "p1")] + [answer("b@t0", p) for p in ("p2", "p3")]
    write_ledger(tmp_path / "ledger.jsonl", records)
    given = [
        score(r, "claims", label) for r, label in zip(records, "yes no yes no".split(), strict=True)
    ]
    write_scores(tmp_path / "scores.jsonl", given)
    return tmp_path


APART = (
    "claims: no paired comparisons: no two variants have its labels for the same prompt and sample"
)


def test_variants_with_no_prompt_in_common_are_said_to_be_why_nothing_is_compared(
    tmp_path, run_cli
):
    code, out, _ = run_cli("stats", _apart(tmp_path))
    assert code == 0
    assert APART in " ".join(out.split())


def test_the_report_says_why_it_compares_nothing_one_variant_or_no_prompt_in_common(
    tmp_path, run_cli
):
    output = _apart(tmp_path)
    code, out, _ = run_cli("report", output)
    assert code == 0
    assert f"note: {APART}" in out
    assert "comparisons: no paired comparisons of claims: no two variants have its labels" in out
    assert "two labels or more" not in out
    code, out, _ = run_cli("report", output, "--variant", "a@t0")
    assert code == 0
    assert "note: claims: no paired comparisons: one variant (a@t0); a comparison needs two" in out


def test_human_labels_leave_every_model_comparisons_adjusted_p_unchanged(tmp_path):
    # Three variants, twenty prompts: the machine scorer's comparisons, then a rater's labels of
    # the same answers; each scorer and label is its own Benjamini-Hochberg family unless the
    # report asks for one family.
    records = [answer(v, f"p{i}") for v in ("a@t0", "b@t0", "c@t0") for i in range(20)]
    write_ledger(tmp_path / "ledger.jsonl", records)
    every = {"a@t0": 1, "b@t0": 2, "c@t0": 7}  # "yes" but every n-th: rates 0%, 50%, 85%
    machine = [
        score(r, "claims", "no" if int(r["prompt_id"][1:]) % every[r["variant"]] == 0 else "yes")
        for r in records
    ]
    write_scores(tmp_path / "scores.jsonl", machine)
    before = compute_stats(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl", resamples=0)
    human = [score(r, "human:ann", "yes" if int(r["prompt_id"][1:]) % 4 else "no") for r in records]
    write_scores(tmp_path / "scores.jsonl", machine + human)
    after = compute_stats(tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl", resamples=0)
    one = compute_stats(
        tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl", resamples=0, one_family=True
    )

    def adjusted(stats, scorer):
        return [
            (c.variant_a, c.variant_b, c.p_adjusted)
            for c in stats.comparisons
            if c.scorer == scorer
        ]

    assert adjusted(after, "claims") == adjusted(before, "claims") and adjusted(before, "claims")
    assert adjusted(after, "human:ann")
    assert adjusted(one, "claims") != adjusted(before, "claims")
    assert (before.family, one.family) == (
        "within each scorer and label (those within splits, and the hallucination view's, apart)",
        "over every comparison as one family",
    )
