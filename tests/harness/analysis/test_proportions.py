"""The tests of proportions give statsmodels' numbers to the last bit, on many random inputs
and the edges (0 of n, n of n, one pair, no discordant pair, ties in the p-values)."""

from __future__ import annotations

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportion_effectsize

from harness.analysis.proportions import benjamini_hochberg, cohens_h, mcnemar_exact, wilson


def test_wilson_intervals_are_statsmodels_to_the_bit():
    rng = np.random.default_rng(7)
    totals = np.concatenate([[1, 1, 2, 5, 10**6], rng.integers(1, 5000, 2000)])
    counts = np.concatenate([[0, 1, 1, 5, 1], rng.integers(0, totals[5:] + 1)])
    low, high = wilson(counts, totals)
    expected = proportion_confint(counts, totals, method="wilson")
    assert low.tolist() == expected[0].tolist() and high.tolist() == expected[1].tolist()


def test_exact_mcnemar_and_cohens_h_are_statsmodels_to_the_bit():
    rng = np.random.default_rng(11)
    cases = [(0, 0), (0, 1), (1, 0), (3, 3), (0, 40), (500, 480), *rng.integers(0, 300, (500, 2))]
    for a_only, b_only in cases:
        table = [[7, int(a_only)], [int(b_only), 9]]
        assert mcnemar_exact(int(a_only), int(b_only)) == float(mcnemar(table, exact=True).pvalue)
    for rate_a, rate_b in [(0.0, 1.0), (0.5, 0.4), *rng.random((500, 2))]:
        assert cohens_h(rate_a, rate_b) == float(proportion_effectsize(rate_a, rate_b))


def test_benjamini_hochberg_is_statsmodels_to_the_bit():
    rng = np.random.default_rng(13)
    for size in (1, 2, 7, 60, 400):
        p_values = rng.random(size).round(2).tolist()  # rounded: ties
        expected = multipletests(p_values, method="fdr_bh")[1].tolist()
        assert benjamini_hochberg(p_values) == expected
    assert benjamini_hochberg([]) == []
