"""`harness.analysis.stats` against published worked examples and figures computed by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from harness.analysis.proportions import benjamini_hochberg
from harness.analysis.stats import STATUS, compute_stats
from harness.analysis.uncertainty import ResampledAurocs, auroc, aurocs, measure
from tests.harness.analysis.ledgers import (
    answer,
    failure,
    logprobs,
    score,
    write_ledger,
    write_scores,
)


def labelled(tmp_path, groups):
    """A ledger and scores file: per variant, a list of (item, label) on category "cve"."""
    records, lines = [], []
    for variant, items in groups.items():
        for item, label in items:
            record = answer(variant, item)
            records.append(record)
            lines.append(score(record, "claims", label))
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    scores = write_scores(tmp_path / "scores.jsonl", lines)
    return ledger, scores


# Newcombe RG (1998), Two-sided confidence intervals for the single proportion: comparison of
# seven methods. Statistics in Medicine 17:857-872, Table II, method 3 (Wilson score interval).
NEWCOMBE = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


def test_rates_carry_the_wilson_intervals_newcombe_1998_publishes(tmp_path):
    groups = {
        f"v{n}@t0": [(f"p{i}", "yes" if i < hits else "no") for i in range(total)]
        for n, (hits, total, _, _) in enumerate(NEWCOMBE)
    }
    ledger, scores = labelled(tmp_path, groups)
    report = compute_stats(ledger, scores, label="yes", resamples=0)
    rates = {r.variant: r for r in report.rates if r.category is None}
    for n, (hits, total, low, high) in enumerate(NEWCOMBE):
        rate = rates[f"v{n}@t0"]
        assert (rate.count, rate.n) == (hits, total)
        assert rate.rate == pytest.approx(hits / total)
        assert round(rate.low, 4) == low
        assert round(rate.high, 4) == high


def test_paired_comparison_gives_the_exact_mcnemar_p_of_fagerland_2013(tmp_path):
    # Fagerland MW, Lydersen S, Laake P (2013), The McNemar test for binary matched-pairs data,
    # BMC Med Res Methodol 13:91, Table 1 (Bentur et al. 2009): airway hyper-responsiveness in
    # 21 children before and after stem cell transplantation: 1 yes/yes, 1 yes/no, 7 no/yes,
    # 12 no/no. Exact conditional McNemar p = 0.070 (0.0703 = 18/256).
    cells = [("yes", "yes")] * 1 + [("yes", "no")] * 1 + [("no", "yes")] * 7 + [("no", "no")] * 12
    groups = {
        "before@t0": [(f"child{i}", a) for i, (a, _) in enumerate(cells)],
        "after@t0": [(f"child{i}", b) for i, (_, b) in enumerate(cells)],
    }
    ledger, scores = labelled(tmp_path, groups)
    (comparison,) = compute_stats(ledger, scores, label="yes", resamples=0).comparisons
    assert (comparison.variant_a, comparison.variant_b) == ("after@t0", "before@t0")
    assert comparison.pairs == 21
    assert (comparison.a_only, comparison.b_only) == (7, 1)
    assert comparison.p_value == pytest.approx(18 / 256)
    assert round(comparison.p_value, 3) == 0.070
    # Cohen's h: the difference of arcsine-transformed proportions, 8/21 against 2/21.
    h = 2 * math.asin(math.sqrt(8 / 21)) - 2 * math.asin(math.sqrt(2 / 21))
    assert comparison.cohens_h == pytest.approx(h)
    assert comparison.p_adjusted == pytest.approx(comparison.p_value)  # a family of one


# Benjamini Y, Hochberg Y (1995), Controlling the false discovery rate. JRSS B 57:289-300,
# section 4.1: the 15 p-values of Neuhaus et al.; at q = 0.05 the procedure rejects the four
# smallest (Bonferroni only three).
NEUHAUS = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240,
           0.4262, 0.5719, 0.6528, 0.7590, 1.0000]  # fmt: skip


def test_benjamini_hochberg_rejects_what_the_1995_paper_rejects():
    adjusted = benjamini_hochberg(NEUHAUS)
    assert sum(p <= 0.05 for p in adjusted) == 4
    # By hand: the i-th adjusted p is min over j >= i of p_j * 15 / j.
    by_hand = [0.0015, 0.003, 0.0095, 0.035625, 0.0603, 0.0638571, 0.0638571, 0.0645, 0.0765,
               0.486, 0.5811818, 0.714875, 0.7532308, 0.8132143, 1.0]  # fmt: skip
    assert adjusted == pytest.approx(by_hand, abs=1e-7)
    # A family of five, given out of order: sorted 0.0001, 0.0095, 0.0344, 0.324, 1 get
    # p * 5 / rank = 0.0005, 0.02375, 0.0573, 0.405, 1, returned in the order given.
    shuffled = [NEUHAUS[i] for i in (14, 3, 0, 9, 7)]
    expected = [1.0, 0.02375, 0.0005, 0.405, 0.0344 * 5 / 3]
    assert benjamini_hochberg(shuffled) == pytest.approx(expected)


def test_every_comparison_of_a_report_is_one_bh_family(tmp_path):
    cells = [("yes", "yes", "no")] * 3 + [("yes", "no", "no")] * 6 + [("no", "no", "yes")] * 5
    groups = {
        f"{name}@t0": [(f"p{i}", row[n]) for i, row in enumerate(cells)]
        for n, name in enumerate("abc")
    }
    ledger, scores = labelled(tmp_path, groups)
    comparisons = compute_stats(ledger, scores, label="yes", resamples=0).comparisons
    assert [(c.variant_a, c.variant_b) for c in comparisons] == [
        ("a@t0", "b@t0"),
        ("a@t0", "c@t0"),
        ("b@t0", "c@t0"),
    ]
    raw = [c.p_value for c in comparisons]
    assert [c.p_adjusted for c in comparisons] == pytest.approx(benjamini_hochberg(raw))
    assert comparisons[0].p_value == pytest.approx(2 * 0.5**6)  # 6 discordant, all one way


# Hanley JA, McNeil BJ (1982), The meaning and use of the area under a ROC curve. Radiology
# 143:29-36, Table 1: 109 CT images rated 1 (definitely normal) to 5 (definitely abnormal).
# The area is 0.893.
NORMAL = [33, 6, 6, 11, 2]
ABNORMAL = [3, 2, 2, 11, 33]


def test_auroc_of_the_hanley_mcneil_ratings_is_0_893():
    ratings = np.repeat([1.0, 2, 3, 4, 5], ABNORMAL).tolist()
    ratings += np.repeat([1.0, 2, 3, 4, 5], NORMAL).tolist()
    positive = np.array([True] * 51 + [False] * 58)
    found = auroc(np.array(ratings), positive, resamples=2000, seed=1)
    assert (found.positives, found.negatives) == (51, 58)
    assert round(found.auroc, 3) == 0.893
    assert found.low < found.auroc < found.high
    # Hanley and McNeil's standard error is 0.032: a 95% interval about 0.13 wide.
    assert 0.09 < found.high - found.low < 0.16


def test_auroc_on_a_small_table_computed_by_hand():
    # Positives 3, 2, 2 against negatives 1, 2: of the 6 pairs the positive is higher in 4 and
    # tied in 2, so AUROC = (4 + 2 / 2) / 6.
    found = auroc(np.array([3.0, 2, 2, 1, 2]), np.array([1, 1, 1, 0, 0], bool), resamples=0, seed=0)
    assert found.auroc == pytest.approx(5 / 6)
    assert found.low is None and found.high is None


def test_auroc_needs_a_positive_and_a_negative():
    assert auroc(np.array([1.0, 2.0]), np.array([True, True]), resamples=0, seed=0) is None
    nan = np.array([np.nan, 1.0])
    assert auroc(nan, np.array([True, False]), resamples=0, seed=0) is None  # unknown is left out


def test_the_bootstrap_statistic_equals_mann_whitney_u_of_each_resample_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n_yes, n_no = rng.integers(1, 40, 2)
        yes = rng.integers(0, 6, (2, n_yes)).astype(float)  # two measures of the same answers
        no = rng.integers(0, 6, (2, n_no)).astype(float)
        draws_yes = rng.integers(0, n_yes, (3, n_yes))  # three resamples, as indices
        draws_no = rng.integers(0, n_no, (3, n_no))
        fast = ResampledAurocs(yes, no)(draws_yes, draws_no)
        assert fast.shape == (2, 3)
        for kind, row in itertools.product(range(2), range(3)):
            a, b = yes[kind, draws_yes[row]], no[kind, draws_no[row]]
            u = scipy_stats.mannwhitneyu(a, b).statistic
            assert fast[kind, row] == pytest.approx(u / (len(a) * len(b)))


def test_the_auroc_is_mann_whitney_u_over_n1_n2_to_the_bit():
    rng = np.random.default_rng(5)
    for _ in range(200):
        n_yes, n_no = rng.integers(1, 300, 2)
        values = rng.integers(0, 8, n_yes + n_no).astype(float)  # many ties
        values[: n_yes + n_no : 3] += rng.random(len(values[: n_yes + n_no : 3]))
        positive = np.zeros(n_yes + n_no, dtype=bool)
        positive[rng.choice(n_yes + n_no, n_yes, replace=False)] = True
        found = auroc(values, positive, resamples=0, seed=0)
        u = scipy_stats.mannwhitneyu(values[positive], values[~positive]).statistic
        assert found is not None and found.auroc == u / (n_yes * n_no)


def test_measures_known_for_different_answers_each_get_their_own_auroc():
    rng = np.random.default_rng(4)
    positive = rng.random(300) < 0.3
    first, second = rng.normal(size=300) + positive, rng.normal(size=300) - positive
    second[:100] = np.nan  # known for fewer answers
    found = aurocs({"a": first, "b": second}, positive, resamples=200, seed=0)
    for name, values in (("a", first), ("b", second)):
        alone = auroc(values, positive, resamples=0, seed=0)
        assert (found[name].positives, found[name].negatives) == (alone.positives, alone.negatives)
        assert found[name].auroc == pytest.approx(alone.auroc)
        assert found[name].low < found[name].auroc < found[name].high
    assert found["a"].auroc > 0.7 and found["b"].auroc < 0.3


def test_the_interval_is_the_same_for_the_same_seed():
    rng = np.random.default_rng(0)
    values, positive = rng.normal(size=200), rng.random(200) < 0.4
    first = auroc(values, positive, resamples=300, seed=5)
    assert auroc(values, positive, resamples=300, seed=5) == first
    assert auroc(values, positive, resamples=300, seed=6) != first


def test_uncertainty_measures_by_hand():
    half, third = math.log(0.5), math.log(0.3)
    fifth = math.log(0.2)
    measured = measure(
        [
            logprobs([half, third, fifth], [math.log(0.4), math.log(0.4)]),
            logprobs([half, third], chosen=[None]),  # the chosen token's logprob not given
            None,
            logprobs([half]),  # one alternative: no margin, entropy 0
        ]
    )
    margin, entropy, sequence = (measured[name] for name in measured)
    assert margin[0] == pytest.approx(0.5 - 0.3)
    h_first = -(0.5 * half + 0.3 * third + 0.2 * fifth)
    # The second position's two alternatives (0.4 each) are renormalised: entropy ln 2.
    assert entropy[0] == pytest.approx((h_first + math.log(2)) / 2)
    assert sequence[0] == pytest.approx(half + math.log(0.4))
    assert margin[1] == pytest.approx(0.2)
    assert math.isnan(sequence[1])
    assert all(math.isnan(m[2]) for m in (margin, entropy, sequence))
    assert math.isnan(margin[3]) and entropy[3] == 0.0 and sequence[3] == pytest.approx(half)


def test_logprob_auroc_through_the_report_matches_hanley_mcneil(tmp_path):
    # Each answer's one token has logprob -rating: a less likely answer is a higher rating.
    ratings = [(r, True) for r, k in zip(range(1, 6), ABNORMAL, strict=True) for _ in range(k)]
    ratings += [(r, False) for r, k in zip(range(1, 6), NORMAL, strict=True) for _ in range(k)]
    records = [
        answer("local@t0", f"p{i}", probe=probe, token_logprobs=logprobs([-float(rating), -9.0]))
        for i, (rating, probe) in enumerate(ratings)
    ]
    records.append(answer("api@t0", "p0"))  # no logprobs: no uncertainty for this variant
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    report = compute_stats(ledger, tmp_path / "scores.jsonl", resamples=200)
    found = {s.measure: s for s in report.separations}
    assert {s.variant for s in report.separations} == {"local@t0"}
    assert round(found["sequence_logprob"].auroc, 3) == 0.893
    assert found["sequence_logprob"].target == "is_synthetic_probe"
    assert any("no token logprobs" in note and "api@t0" in note for note in report.notes)


def test_without_scores_the_ledger_gives_its_error_rates(tmp_path):
    records = [answer("a@t0", f"p{i}", category="cve") for i in range(8)]
    records += [failure("a@t0", "p8", category="cve"), failure("a@t0", "p9", category="pkg")]
    records += [answer("a@t0", "p10", category="pkg")]
    ledger = write_ledger(tmp_path / "ledger.jsonl", records)
    report = compute_stats(ledger, tmp_path / "scores.jsonl", resamples=0)
    rows = {(r.category, r.label): (r.count, r.n) for r in report.rates}
    assert {r.scorer for r in report.rates} == {STATUS}
    assert rows == {("cve", "error"): (1, 9), ("pkg", "error"): (1, 2), (None, "error"): (2, 11)}
    assert report.comparisons == []
    assert report.scores is None
