"""The fixed fine grid of numeric profiles, and profiles merged into references, against values
worked out by hand and numpy on the raw samples."""
from __future__ import annotations

import math

import numpy as np
import pytest

from offline_eval.stats import grid
from offline_eval.stats.profile import NumericProfile, Profile, fold_rare, merge, merge_numeric


def profile_of(x: np.ndarray) -> NumericProfile:
    """A profile computed the plain way: bucket by comparison, moments by numpy."""
    x = np.asarray(x, dtype=float)
    valid = x[~np.isnan(x)]
    b = np.digitize(valid, grid.BOUNDARIES, right=True)  # BOUNDARIES[b-1] < x <= BOUNDARIES[b]
    ids, n = np.unique(b, return_counts=True)
    std = float(valid.std(ddof=1)) if valid.size > 1 else None  # as Spark's stddev_samp: null for one row
    return NumericProfile(ids, n, int(np.isnan(x).sum()), float(valid.mean()), std, float(valid.min()),
                          float(valid.max()))


def test_boundaries_are_relative_steps_of_at_most_two_per_mille():
    b = grid.BOUNDARIES
    assert np.all(np.diff(b) > 0)
    pos = b[b > 0]
    assert np.allclose(pos[1:] / pos[:-1], (1 + grid.ALPHA) / (1 - grid.ALPHA))
    assert pos[0] <= grid.X_MIN and pos[-1] >= grid.X_MAX
    assert np.array_equal(b[b < 0], -pos[::-1])  # the negative side mirrors the positive one


def test_bucket_of_values_on_and_around_boundaries():
    b = grid.BOUNDARIES
    k = len(b) // 2 + 2000  # some boundary above 1
    x = np.array([b[k], np.nextafter(b[k], np.inf), np.nextafter(b[k], -np.inf), 0.0, -0.0, np.inf, -np.inf, np.nan])
    got = grid.bucket_index(x)
    # (B[k-1], B[k]] holds B[k] itself: bucket k; just above it: k + 1; just below: still k.
    assert got[:3].tolist() == [k, k + 1, k]
    zero = len(b) // 2  # (-B_min, +B_min]
    assert got[3] == got[4] == zero and grid.lower(zero) < 0 < grid.upper(zero)
    assert got[5:].tolist() == [len(b), 0, -1]
    assert grid.upper(len(b)) == np.inf and grid.lower(0) == -np.inf


def test_small_integers_each_get_a_bucket_of_their_own():
    ints = np.arange(0, 501, dtype=float)
    assert len(np.unique(grid.bucket_index(ints))) == 501
    # the bucket of an integer n is (lower, upper] with n-1 < lower < n <= upper < n+1
    b = grid.bucket_index(ints[1:])
    assert np.all(grid.lower(b) > ints[1:] - 1) and np.all(grid.upper(b) < ints[1:] + 1)


def test_quantile_edges_bracket_the_quantile():
    rng = np.random.default_rng(5)
    x = np.round(rng.lognormal(3, 0.8, 50_000), 2)
    p = profile_of(x)
    edges = p.decile_edges
    assert len(edges) == 9
    for q, e in zip(np.arange(1, 10) / 10, edges, strict=True):
        below = grid.lower(grid.bucket_index(np.array([e])))[0]
        assert (x <= e).mean() >= q - 1e-12 > (x <= below).mean()  # F(edge) >= q > F(bucket's lower end)
        assert abs(e / np.quantile(x, q, method="inverted_cdf") - 1) <= 2 * grid.ALPHA


def test_merged_counts_and_moments_equal_the_pooled_sample():
    rng = np.random.default_rng(11)
    days = [rng.normal(100 + 5 * i, 10 + i, 5_000 + 1000 * i) for i in range(3)]
    days[1][:7] = np.nan
    merged = merge_numeric([profile_of(d) for d in days])
    pooled = np.concatenate(days)
    whole = profile_of(pooled)
    assert np.array_equal(merged.buckets, whole.buckets) and np.array_equal(merged.counts, whole.counts)
    assert merged.missing == 7 and merged.n == np.isfinite(pooled).sum()
    assert merged.mean == pytest.approx(np.nanmean(pooled), rel=1e-12)
    assert merged.std == pytest.approx(np.nanstd(pooled, ddof=1), rel=1e-12)
    assert (merged.min, merged.max) == (np.nanmin(pooled), np.nanmax(pooled))


def test_merge_folds_rare_categories_after_summing_the_days():
    # "c" is rare on each day but frequent over the window: it survives the fold.
    a = Profile("m", "v1", ("d1",), categorical={"x": {"a": 5000, "c": 4}})
    b = Profile("m", "v1", ("d2",), categorical={"x": {"a": 5000, "c": 40, "z": 1}})
    ref = merge([a, b])
    assert ref.categorical["x"] == {"a": 10_000, "c": 44, "__other__": 1}
    assert ref.days == ("d1", "d2")
    assert fold_rare({"a": 1, "b": 1}, rare_share=0.6) == {"__other__": 2}
    with pytest.raises(ValueError, match="several model versions"):
        merge([a, Profile("m", "v2", ("d1",))])


def test_a_single_value_column_has_no_std():
    p = profile_of(np.array([3.0]))
    assert merge_numeric([p]).std is None and math.isclose(merge_numeric([p, p]).std, 0.0)
