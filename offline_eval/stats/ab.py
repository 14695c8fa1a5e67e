"""A/B statistics on sufficient statistics (counts, sums, sums of squares and cross products).

Pure numpy/scipy: the heavy part (one row per user) stays in Spark, which hands over one
``Moments`` per (variant, metric). Formulas are in docs/ab_readout.md; every function is
checked against scipy/statsmodels on raw data in tests/stats.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from offline_eval.thresholds import DEFAULT

SRM_ALPHA = DEFAULT.srm_alpha  # docs/thresholds.md


@dataclass(frozen=True)
class Moments:
    """Per-unit sums for one arm: y is the metric (or a ratio's numerator), x a second per-unit
    quantity (a ratio's denominator, or a pre-period covariate for CUPED)."""

    n: int
    sum_y: float
    sum_y2: float
    sum_x: float = 0.0
    sum_x2: float = 0.0
    sum_xy: float = 0.0

    @property
    def mean_y(self) -> float:
        return self.sum_y / self.n

    @property
    def mean_x(self) -> float:
        return self.sum_x / self.n

    def var_y(self, ddof: int = 1) -> float:
        return max(0.0, (self.sum_y2 - self.sum_y**2 / self.n) / (self.n - ddof))

    def var_x(self, ddof: int = 1) -> float:
        return max(0.0, (self.sum_x2 - self.sum_x**2 / self.n) / (self.n - ddof))

    def cov_xy(self, ddof: int = 1) -> float:
        return (self.sum_xy - self.sum_x * self.sum_y / self.n) / (self.n - ddof)


@dataclass(frozen=True)
class SrmResult:
    chi2: float
    p_value: float
    counts: dict[str, int]
    expected: dict[str, float]
    flag: bool


def srm(counts: dict[str, int], weights: dict[str, float] | None = None, alpha: float = SRM_ALPHA) -> SrmResult:
    """Chi-square goodness of fit of the observed arm sizes to the planned split (equal by default)."""
    names = list(counts)
    observed = np.array([counts[k] for k in names], dtype=float)
    w = np.array([(weights or {}).get(k, 1.0) for k in names], dtype=float)
    expected = observed.sum() * w / w.sum()
    chi2, p = stats.chisquare(observed, expected)
    expected_counts = dict(zip(names, expected.tolist(), strict=True))
    return SrmResult(float(chi2), float(p), dict(counts), expected_counts, bool(p < alpha))


@dataclass(frozen=True)
class Comparison:
    """variant vs control for one metric; abs_diff = variant - control, CI bounds abs_diff."""

    mean_control: float
    mean_variant: float
    abs_diff: float
    ci_low: float
    ci_high: float
    rel_lift: float
    rel_ci_low: float
    rel_ci_high: float
    p_value: float
    se: float
    method: str
    variance_reduction: float | None = None
    mde: float | None = None


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2))


def _relative(m_c: float, m_v: float, var_mc: float, var_mv: float, alpha: float) -> tuple[float, float, float]:
    """Relative lift m_v/m_c - 1 with a delta-method interval (independent arms)."""
    if m_c == 0:
        return math.nan, math.nan, math.nan
    lift = m_v / m_c - 1
    se = math.sqrt(var_mv / m_c**2 + m_v**2 * var_mc / m_c**4)
    return lift, lift - _z(alpha) * se, lift + _z(alpha) * se


def _mde(se: float, alpha: float, power: float) -> float:
    """Minimum detectable absolute difference at this standard error (two-sided)."""
    return (_z(alpha) + float(stats.norm.ppf(power))) * se


def two_proportions(c: Moments, v: Moments, alpha: float = 0.05, power: float = 0.8) -> Comparison:
    """Two-sided z-test with pooled variance for the p-value (= Pearson chi-square without
    continuity correction); unpooled Wald interval for the difference."""
    p_c, p_v = c.sum_y / c.n, v.sum_y / v.n
    diff = p_v - p_c
    pooled = (c.sum_y + v.sum_y) / (c.n + v.n)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / c.n + 1 / v.n))
    p_value = float(2 * stats.norm.sf(abs(diff) / se_pooled)) if se_pooled > 0 else (1.0 if diff == 0 else 0.0)
    var_c, var_v = p_c * (1 - p_c) / c.n, p_v * (1 - p_v) / v.n
    se = math.sqrt(var_c + var_v)
    rel, rlo, rhi = _relative(p_c, p_v, var_c, var_v, alpha)
    z = _z(alpha)
    return Comparison(p_c, p_v, diff, diff - z * se, diff + z * se, rel, rlo, rhi, p_value, se,
                      "two-proportion z-test (pooled p, unpooled Wald CI)", mde=_mde(se_pooled, alpha, power))


def means(c: Moments, v: Moments, alpha: float = 0.05, equal_var: bool = False, power: float = 0.8) -> Comparison:
    """Welch's t-test and interval (Student's with ``equal_var``)."""
    m_c, m_v = c.mean_y, v.mean_y
    s2_c, s2_v = c.var_y(), v.var_y()
    diff = m_v - m_c
    if equal_var:
        sp2 = ((c.n - 1) * s2_c + (v.n - 1) * s2_v) / (c.n + v.n - 2)
        se = math.sqrt(sp2 * (1 / c.n + 1 / v.n))
        df: float = c.n + v.n - 2
        method = "Student t-test"
    else:
        a, b = s2_c / c.n, s2_v / v.n
        se = math.sqrt(a + b)
        df = (a + b) ** 2 / (a**2 / (c.n - 1) + b**2 / (v.n - 1)) if a + b > 0 else c.n + v.n - 2
        method = "Welch t-test"
    return _t_comparison(m_c, m_v, diff, se, df, s2_c / c.n, s2_v / v.n, alpha, power, method)


def _t_comparison(m_c, m_v, diff, se, df, var_mc, var_mv, alpha, power, method, variance_reduction=None) -> Comparison:
    if se > 0:
        t = diff / se
        p_value = float(2 * stats.t.sf(abs(t), df))
        q = float(stats.t.ppf(1 - alpha / 2, df))
    else:
        p_value, q = (1.0 if diff == 0 else 0.0), 0.0
    rel, rlo, rhi = _relative(m_c, m_v, var_mc, var_mv, alpha)
    return Comparison(m_c, m_v, diff, diff - q * se, diff + q * se, rel, rlo, rhi, p_value, se, method,
                      variance_reduction=variance_reduction, mde=_mde(se, alpha, power))


def ratio_variance(m: Moments) -> tuple[float, float]:
    """Ratio of means R = mean(y)/mean(x) over units and the delta-method variance of R."""
    mx, my = m.mean_x, m.mean_y
    r = my / mx
    var = (m.var_y() - 2 * r * m.cov_xy() + r**2 * m.var_x()) / (m.n * mx**2)
    return r, max(var, 0.0)


def ratios(c: Moments, v: Moments, alpha: float = 0.05, power: float = 0.8) -> Comparison:
    """Ratio metric (e.g. clicks/impressions with the user as unit): delta method, z interval."""
    r_c, var_c = ratio_variance(c)
    r_v, var_v = ratio_variance(v)
    diff = r_v - r_c
    se = math.sqrt(var_c + var_v)
    p_value = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else (1.0 if diff == 0 else 0.0)
    rel, rlo, rhi = _relative(r_c, r_v, var_c, var_v, alpha)
    z = _z(alpha)
    return Comparison(r_c, r_v, diff, diff - z * se, diff + z * se, rel, rlo, rhi, p_value, se,
                      "ratio of means, delta method", mde=_mde(se, alpha, power))


def cuped(c: Moments, v: Moments, alpha: float = 0.05, power: float = 0.8) -> Comparison:
    """CUPED: y - theta (x - mean x), theta = cov(y, x) / var(x) pooled over both arms; Welch
    test on the adjusted means. ``variance_reduction`` = 1 - var(adjusted) / var(y)."""
    n = c.n + v.n
    pooled = Moments(n, c.sum_y + v.sum_y, c.sum_y2 + v.sum_y2, c.sum_x + v.sum_x, c.sum_x2 + v.sum_x2,
                     c.sum_xy + v.sum_xy)
    var_x = pooled.var_x()
    theta = pooled.cov_xy() / var_x if var_x > 0 else 0.0
    mu_x = pooled.mean_x

    def adjusted(m: Moments) -> tuple[float, float]:
        mean = m.mean_y - theta * (m.mean_x - mu_x)
        var = m.var_y() - 2 * theta * m.cov_xy() + theta**2 * m.var_x()
        return mean, max(var, 0.0)

    (m_c, s2_c), (m_v, s2_v) = adjusted(c), adjusted(v)
    a, b = s2_c / c.n, s2_v / v.n
    se = math.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / (c.n - 1) + b**2 / (v.n - 1)) if a + b > 0 else n - 2
    raw = c.var_y() / c.n + v.var_y() / v.n
    reduction = 1 - (a + b) / raw if raw > 0 else 0.0
    return _t_comparison(m_c, m_v, m_v - m_c, se, df, a, b, alpha, power, "CUPED + Welch t-test", reduction)


def adjust_pvalues(p_values: Sequence[float], method: str) -> list[float]:
    """Holm (family-wise error) or Benjamini-Hochberg (false discovery rate) adjusted p-values."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if method == "none" or m == 0:
        return p.tolist()
    order = np.argsort(p)
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method == "bh":
        adj = np.minimum.accumulate(m / np.arange(m, 0, -1) * ranked[::-1])[::-1]
    else:
        raise ValueError(f"unknown correction {method!r}: none, holm or bh")
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out.tolist()
