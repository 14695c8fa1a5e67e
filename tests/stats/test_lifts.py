"""Daily lifts on per-user sums worked by hand; the interval is the readout's (stats.ab)."""
from __future__ import annotations

import numpy as np
import pytest

from offline_eval.stats.ab import Moments, ratios
from offline_eval.stats.lifts import day_lifts
from offline_eval.stats.profile import Profile, add_moments, merge


def moments(clicks: list[int], impressions: list[int]) -> Moments:
    y, x = np.asarray(clicks, float), np.asarray(impressions, float)
    return Moments(len(y), y.sum(), (y * y).sum(), x.sum(), (x * x).sum(), (x * y).sum())


TODAY = moments([1, 0, 2, 1], [10, 10, 20, 10])  # CTR 4/50 = 8%
YESTERDAY = moments([2, 1, 3, 0, 2], [10, 10, 20, 10, 10])  # 8/60 = 13.33%
CONTROL = moments([1, 1, 0, 1], [10, 20, 10, 10])  # 3/50 = 6%


def test_lift_rows_against_each_reference():
    rows = day_lifts({("treatment", "ctr"): TODAY}, {"previous_day": ("previous_day (2026-06-10)",
                                                                   {("treatment", "ctr"): YESTERDAY})},
                     control={("control", "ctr"): CONTROL}, control_label="control v1",
                     gmv={("treatment", "previous_day"): (1100.0, 1000.0)})
    by = {(r["metric"], r["reference"]): r for r in rows}
    prev = by[("ctr", "previous_day")]
    assert (prev["value"], prev["reference_value"]) == (pytest.approx(0.08), pytest.approx(8 / 60))
    assert prev["rel_lift"] == pytest.approx(0.08 / (8 / 60) - 1)  # -40%
    expected = ratios(YESTERDAY, TODAY)
    assert (prev["rel_ci_low"], prev["rel_ci_high"]) == (expected.rel_ci_low, expected.rel_ci_high)
    assert prev["rel_ci_low"] < prev["rel_lift"] < prev["rel_ci_high"]
    arm = by[("ctr", "control_arm")]
    assert arm["rel_lift"] == pytest.approx(0.08 / 0.06 - 1) and arm["reference_label"] == "control v1"
    gmv = by[("gmv", "previous_day")]
    assert gmv["rel_lift"] == pytest.approx(0.1) and gmv["rel_ci_low"] is None
    # A control arm is not compared with itself.
    assert not [r for r in day_lifts({("control", "ctr"): CONTROL}, {}, {("control", "ctr"): CONTROL})
                if r["reference"] == "control_arm"]


def test_a_window_pools_its_days_moments():
    days = [Profile("m", "v1", (d,), moments={("control", "ctr"): m}) for d, m in (("a", TODAY), ("b", YESTERDAY))]
    pooled = merge(days).moments[("control", "ctr")]
    assert pooled == add_moments(TODAY, YESTERDAY)
    assert (pooled.n, pooled.sum_y, pooled.sum_x) == (9, 12.0, 110.0)  # CTR of the window 12/110
