"""The tests of proportions `stats` gives, on numpy and scipy: statsmodels' own formulas, to the
last bit (a test compares them), without its import, which took 0.73 s of a 1.4 s `stats` of
1,000 answers (pandas and more come with it; scipy is loaded for the uncertainty measures
anyway). The normal quantile and the binomial CDF are scipy.special's functions that
`scipy.stats.norm.isf` and `scipy.stats.binom.cdf` call (scipy 1.15 to 1.17), without importing
`scipy.stats`, which took 0.45 s more.

- `wilson`: the 95% Wilson score interval of each count of its total
  (`statsmodels.stats.proportion.proportion_confint(method="wilson")`);
- `mcnemar_exact`: the exact McNemar p of a paired 2x2 table's discordant counts, the two-sided
  binomial test of the smaller against p = 1/2
  (`statsmodels.stats.contingency_tables.mcnemar(exact=True)`);
- `cohens_h`: Cohen's h of two rates (`statsmodels.stats.proportion.proportion_effectsize`);
- `benjamini_hochberg`: Benjamini-Hochberg adjusted p-values
  (`statsmodels.stats.multitest.multipletests(method="fdr_bh")`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import ndtri
from scipy.special._ufuncs import _binom_cdf  # what scipy.stats.binom.cdf computes

_ALPHA = 0.05


def wilson(counts: np.ndarray, totals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lower and upper bounds of the 95% Wilson interval of each count (every total > 0)."""
    rate = np.asarray(counts) / np.asarray(totals)
    n = np.asarray(totals)
    crit = -ndtri(_ALPHA / 2.0)  # scipy.stats.norm.isf
    crit2 = crit**2
    denom = 1 + crit2 / n
    center = (rate + crit2 / (2 * n)) / denom
    dist = crit * np.sqrt(rate * (1.0 - rate) / n + crit2 / (4.0 * n**2))
    dist /= denom
    return np.clip(center - dist, 0, 1), np.clip(center + dist, 0, 1)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """The exact McNemar p of the pairs where only one of two has the label."""
    smaller = min(a_only, b_only)
    return float(min(_binom_cdf(float(smaller), float(a_only + b_only), 0.5) * 2, 1))


def cohens_h(rate_a: float, rate_b: float) -> float:
    """Cohen's h of rate a against rate b."""
    return float(2 * (np.arcsin(np.sqrt(rate_a)) - np.arcsin(np.sqrt(rate_b))))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values, in the same order: reject at FDR q every hypothesis
    whose adjusted p is at most q."""
    if not p_values:
        return []
    given = np.asarray(p_values, dtype=float)
    order = np.argsort(given)
    ranked = given[order]
    raw = ranked / (np.arange(1, len(ranked) + 1) / float(len(ranked)))
    adjusted = np.minimum.accumulate(raw[::-1])[::-1]
    adjusted[adjusted > 1] = 1
    found = np.empty_like(adjusted)
    found[order] = adjusted
    return [float(p) for p in found]
