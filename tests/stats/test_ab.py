"""A/B statistics from sufficient statistics equal scipy/statsmodels on the raw data."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from offline_eval.stats.ab import Moments, adjust_pvalues, cuped, means, ratios, srm, two_proportions

TOL = 1e-9


def moments(y, x=None) -> Moments:
    y = np.asarray(y, dtype=float)
    x = np.zeros_like(y) if x is None else np.asarray(x, dtype=float)
    return Moments(len(y), y.sum(), (y * y).sum(), x.sum(), (x * x).sum(), (x * y).sum())


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(20260618)


def test_srm_equals_scipy_chisquare():
    counts = {"a": 5000, "b": 5210, "c": 4900}
    got = srm(counts)
    chi2, p = stats.chisquare([5000, 5210, 4900])
    assert got.chi2 == pytest.approx(chi2, abs=TOL) and got.p_value == pytest.approx(p, abs=TOL)
    assert got.flag is False
    assert srm({"a": 10_000, "b": 10_600}).flag is True  # p about 3e-5


def test_srm_with_a_planned_unequal_split():
    got = srm({"control": 9000, "treatment": 1000}, weights={"control": 0.9, "treatment": 0.1})
    assert got.chi2 == pytest.approx(0.0, abs=TOL) and not got.flag


def test_two_proportions_equal_statsmodels_and_chi_square(rng):
    c = rng.binomial(1, 0.080, 40_000)
    v = rng.binomial(1, 0.085, 41_000)
    got = two_proportions(moments(c), moments(v))
    z, p = proportions_ztest([v.sum(), c.sum()], [len(v), len(c)])
    assert got.p_value == pytest.approx(p, abs=TOL)
    chi2, p_chi, _, _ = stats.chi2_contingency(
        [[v.sum(), len(v) - v.sum()], [c.sum(), len(c) - c.sum()]], correction=False)
    assert got.p_value == pytest.approx(p_chi, abs=TOL)
    pc, pv = c.mean(), v.mean()
    se = np.sqrt(pc * (1 - pc) / len(c) + pv * (1 - pv) / len(v))
    assert got.ci_low == pytest.approx(pv - pc - stats.norm.ppf(0.975) * se, abs=TOL)
    assert got.ci_high == pytest.approx(pv - pc + stats.norm.ppf(0.975) * se, abs=TOL)


@pytest.mark.parametrize("equal_var", [False, True])
def test_means_equal_scipy_ttest(rng, equal_var):
    c = rng.lognormal(0, 1.2, 3_000)
    v = rng.lognormal(0.05, 1.3, 2_500)
    got = means(moments(c), moments(v), equal_var=equal_var)
    ref = stats.ttest_ind(v, c, equal_var=equal_var)
    assert got.p_value == pytest.approx(ref.pvalue, abs=TOL)
    ci = ref.confidence_interval(0.95)
    assert (got.ci_low, got.ci_high) == (pytest.approx(ci.low, abs=TOL), pytest.approx(ci.high, abs=TOL))
    assert got.abs_diff == pytest.approx(v.mean() - c.mean(), abs=TOL)


def test_ratio_delta_method_matches_a_direct_computation(rng):
    """Delta-method variance of sum(y)/sum(x) written out on the raw arrays (Deng et al. 2018)."""
    def ref(y, x):
        n, mx, my = len(y), x.mean(), y.mean()
        cov = np.cov(y, x, ddof=1)
        var = (cov[0, 0] / mx**2 - 2 * my * cov[0, 1] / mx**3 + my**2 * cov[1, 1] / mx**4) / n
        return my / mx, var

    xc = rng.poisson(20, 5_000) + 1
    yc = rng.binomial(xc, 0.08)
    xv = rng.poisson(20, 5_000) + 1
    yv = rng.binomial(xv, 0.09)
    got = ratios(moments(yc, xc), moments(yv, xv))
    (rc, vc), (rv, vv) = ref(yc, xc), ref(yv, xv)
    assert got.mean_control == pytest.approx(rc, abs=TOL) and got.mean_variant == pytest.approx(rv, abs=TOL)
    assert got.se == pytest.approx(np.sqrt(vc + vv), rel=1e-9)
    assert got.p_value == pytest.approx(2 * stats.norm.sf(abs(rv - rc) / np.sqrt(vc + vv)), abs=TOL)


def test_ratio_interval_covers_the_truth_at_the_nominal_rate():
    """1,000 simulated experiments with a known true CTR difference of 0.01."""
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(1_000):
        xc, xv = rng.poisson(10, 800) + 1, rng.poisson(10, 800) + 1
        got = ratios(moments(rng.binomial(xc, 0.08), xc), moments(rng.binomial(xv, 0.09), xv))
        covered += got.ci_low <= 0.01 <= got.ci_high
    assert 930 <= covered <= 970  # 95% nominal, binomial sd about 7


def test_cuped_equals_ols_with_the_covariate(rng):
    """CUPED with a pooled theta is the treatment coefficient of y ~ treated + (x - mean x)
    up to the variance estimate; the point estimate must match exactly."""
    import statsmodels.api as sm

    n = 4_000
    xc, xv = rng.normal(10, 3, n), rng.normal(10, 3, n)
    yc = 2 + 0.8 * xc + rng.normal(0, 1, n)
    yv = 2.3 + 0.8 * xv + rng.normal(0, 1, n)
    got = cuped(moments(yc, xc), moments(yv, xv))
    x = np.concatenate([xc, xv])
    design = sm.add_constant(np.column_stack([np.r_[np.zeros(n), np.ones(n)], x - x.mean()]))
    fit = sm.OLS(np.concatenate([yc, yv]), design).fit()
    theta = np.cov(np.r_[yc, yv], x, ddof=1)[0, 1] / np.var(x, ddof=1)
    assert got.abs_diff == pytest.approx((yv.mean() - yc.mean()) - theta * (xv.mean() - xc.mean()), abs=TOL)
    assert got.abs_diff == pytest.approx(fit.params[1], abs=1e-2)
    rho2 = np.corrcoef(np.r_[yc, yv], x)[0, 1] ** 2
    assert got.variance_reduction == pytest.approx(rho2, abs=0.02)
    assert got.se < means(moments(yc), moments(yv)).se


@pytest.mark.parametrize("method, ref", [("holm", "holm"), ("bh", "fdr_bh")])
def test_pvalue_adjustments_equal_statsmodels(rng, method, ref):
    p = rng.uniform(0, 0.2, 12)
    assert adjust_pvalues(p, method) == pytest.approx(multipletests(p, method=ref)[1].tolist(), abs=TOL)


def test_relative_lift_interval_contains_the_point(rng):
    got = means(moments(rng.normal(10, 2, 1000)), moments(rng.normal(10.5, 2, 1000)))
    assert got.rel_ci_low < got.rel_lift < got.rel_ci_high
    assert got.rel_lift == pytest.approx(got.mean_variant / got.mean_control - 1, abs=TOL)
