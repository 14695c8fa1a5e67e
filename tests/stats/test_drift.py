"""Drift statistics on binned counts against formulas written out here and scipy on raw data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from offline_eval.stats import grid
from offline_eval.stats.drift import chi2_p_value, coarse_counts, compare_numeric, js_distance, ks_on_grid, psi, verdict
from tests.stats.test_grid import profile_of


def bins_of(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(-inf, e0], (e0, e1], ..., (e_last, inf) by a comparison count, not searchsorted."""
    return (x[:, None] > edges[None, :]).sum(axis=1)


def test_psi_by_hand_including_an_empty_bin():
    r, c = np.array([50, 30, 20, 0]), np.array([25, 25, 25, 25])
    pr, pc = np.array([0.5, 0.3, 0.2, 1e-4]), np.array([0.25, 0.25, 0.25, 0.25])
    assert psi(r, c) == pytest.approx(float(np.sum((pc - pr) * np.log(pc / pr))), abs=1e-12)
    assert psi(r, r) == 0.0


def test_psi_equals_evidently_on_the_same_bins():
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(1)
    ref, cur = rng.normal(0, 1, 5000), rng.normal(0.3, 1.2, 4000)
    edges = np.quantile(ref, np.linspace(0.1, 0.9, 9))
    rb, cb = bins_of(ref, edges), bins_of(cur, edges)
    want, _ = _psi(pd.Series(rb.astype(str)), pd.Series(cb.astype(str)), ColumnType.Categorical, 0.1)
    got = psi(np.bincount(rb, minlength=10), np.bincount(cb, minlength=10))
    assert got == pytest.approx(want, abs=1e-9)


def test_js_distance_by_hand():
    r, c = np.array([10.0, 20, 70]), np.array([30.0, 30, 40])
    p, q = r / r.sum(), c / c.sum()
    m = (p + q) / 2
    kl = lambda a, b: np.sum(a * np.log2(a / b))  # noqa: E731
    assert js_distance(r, c) == pytest.approx(np.sqrt(kl(p, m) / 2 + kl(q, m) / 2), abs=1e-12)


def test_chi2_by_hand_and_empty_categories_dropped():
    r, c = np.array([30, 50, 20, 0]), np.array([40, 40, 20, 0])
    table = np.array([[30, 50, 20], [40, 40, 20]], dtype=float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = ((table - expected) ** 2 / expected).sum()
    assert chi2_p_value(r, c) == pytest.approx(stats.chi2.sf(chi2, 2), abs=1e-12)


@pytest.mark.parametrize("shift, scale", [(0.0, 1.0), (0.05, 1.0), (0.4, 1.3)])
def test_ks_on_the_grid_brackets_the_exact_statistic(shift, scale):
    rng = np.random.default_rng(7)
    ref = np.round(rng.normal(0, 1, 20_000), 2)  # ties, as real features have
    cur = np.round(rng.normal(shift, scale, 15_000), 2)
    edges = np.unique(np.quantile(ref, np.arange(1, 1000) / 1000))
    k = len(edges) + 1
    got = ks_on_grid(np.bincount(bins_of(ref, edges), minlength=k), np.bincount(bins_of(cur, edges), minlength=k))
    exact = stats.ks_2samp(ref, cur).statistic
    assert got.statistic <= exact + 1e-12 <= got.upper_bound + 2e-12
    assert got.error_bound <= 0.005


@pytest.mark.parametrize("ref_params, cur_params, rel", [
    ((3, 0.6), (3.2, 0.6), 2e-3),  # long-tailed, continuous
    ((3, 0.6), (3, 0.6), 2e-2),  # no shift: W is small, its relative error larger
])
def test_profile_comparison_against_scipy_on_the_rows(ref_params, cur_params, rel):
    rng = np.random.default_rng(3)
    ref, cur = rng.lognormal(*ref_params, 30_000), rng.lognormal(*cur_params, 25_000)
    got = compare_numeric("x", profile_of(ref), profile_of(cur))
    # Wasserstein: exact at every grid boundary, linear within a bucket of 0.2% relative width.
    assert got["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref, cur) / ref.std(ddof=1), rel=rel)
    exact = stats.ks_2samp(ref, cur).statistic
    assert got["ks"] - 1e-12 <= exact <= got["ks"] + got["ks_error_bound"] + 1e-12
    # The gap is at most one grid bucket's mass: 2 ALPHA x max(x f(x)) = 0.002 / (0.6 sqrt(2 pi)) here.
    assert got["ks_error_bound"] <= 0.002 / (0.6 * np.sqrt(2 * np.pi)) * 1.05
    # PSI on the decile bins, by comparison against the edges (not searchsorted)
    e = np.asarray(got["psi_edges"])
    rb, cb = np.bincount(bins_of(ref, e), minlength=10), np.bincount(bins_of(cur, e), minlength=10)
    assert got["psi"] == pytest.approx(psi(rb, cb), abs=1e-12)
    assert got["js"] == pytest.approx(js_distance(rb, cb), abs=1e-12)
    assert (got["n_reference"], got["n_current"]) == (30_000, 25_000)


def test_integer_feature_comparison_is_exact():
    """Integers sit one per bucket: KS on the grid equals scipy's exactly."""
    rng = np.random.default_rng(8)
    ref, cur = rng.poisson(20, 20_000).astype(float), rng.poisson(22, 15_000).astype(float)
    got = compare_numeric("n", profile_of(ref), profile_of(cur))
    assert got["ks"] == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-12)
    assert got["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref, cur) / ref.std(ddof=1), rel=2e-3)


def test_coarse_counts_sum_buckets_onto_edges():
    b = grid.bucket_index(np.array([0.5, 1.0, 1.5, 2.0, 3.0, 9.0]))
    e = grid.upper(grid.bucket_index(np.array([1.0, 2.0])))  # edges at the buckets of 1 and 2
    # bins (-inf, ~1], (~1, ~2], (~2, inf): 0.5, 1 | 1.5, 2 | 3, 9
    assert coarse_counts(b, np.ones(6), e.tolist()) == [2, 2, 2]


def test_verdict_needs_both_a_real_and_a_large_shift():
    assert verdict(0.25, 1e-9) == "severe"
    assert verdict(0.15, 1e-9) == "minor"
    assert verdict(0.002, 1e-30) == "none"  # huge sample, negligible shift
    assert verdict(0.3, 0.2) == "none"  # large PSI on a handful of rows is noise


def test_a_registered_statistic_reaches_every_comparison(monkeypatch):
    """The registry is the one place a statistic is added: a total-variation distance on the
    decile bins, registered for both column types, appears in every comparison and among the
    fields logged to MLflow, with the value worked out by hand."""
    from offline_eval.stats import drift

    monkeypatch.setattr(drift, "NUMERIC_STATISTICS", dict(drift.NUMERIC_STATISTICS))
    monkeypatch.setattr(drift, "CATEGORICAL_STATISTICS", dict(drift.CATEGORICAL_STATISTICS))
    monkeypatch.setattr(drift, "HEADLINE", dict(drift.HEADLINE))

    @drift.statistic("tv", "tv", numeric=True, categorical=True)
    def _tv(b):
        r, c = b.coarse_reference / b.coarse_reference.sum(), b.coarse_current / b.coarse_current.sum()
        return {"tv": float(abs(r - c).sum() / 2)}

    got = drift.compare_categorical("c", {"a": 6, "b": 4}, {"a": 3, "b": 7})
    assert got["tv"] == pytest.approx(0.3)  # |0.6 - 0.3| / 2 + |0.4 - 0.7| / 2
    assert got["chi2_p"] is not None and got["verdict"] in ("none", "minor", "severe")
    assert drift.headline_fields() == ["psi", "ks", "js", "wasserstein", "chi2_p", "tv"]
