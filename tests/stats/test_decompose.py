"""Mix/rate decomposition on numbers worked out by hand."""
from __future__ import annotations

import pytest

from offline_eval.stats.decompose import mix_rate


def test_pure_mix_shift():
    # Rates unchanged (10% and 2%); new users go from 20% to 50% of impressions.
    got = mix_rate({"ret": (80, 800), "new": (4, 200)}, {"ret": (50, 500), "new": (10, 500)})
    assert (got.before, got.after) == pytest.approx((0.084, 0.06))
    assert got.rate == pytest.approx(0.0, abs=1e-15)
    assert got.mix == pytest.approx(-0.024)  # (0.5 - 0.8) * 0.10 + (0.5 - 0.2) * 0.02
    assert got.mix_share == pytest.approx(1.0)


def test_mix_and_rate_add_up_exactly():
    before = {"ret": (93, 1000), "new": (5, 250)}     # shares 0.8 / 0.2, rates 0.093 / 0.02
    after = {"ret": (43, 500), "new": (7, 500)}       # shares 0.5 / 0.5, rates 0.086 / 0.014
    got = mix_rate(before, after)
    mix = (0.5 - 0.8) * (0.093 + 0.086) / 2 + (0.5 - 0.2) * (0.02 + 0.014) / 2
    rate = (0.086 - 0.093) * (0.8 + 0.5) / 2 + (0.014 - 0.02) * (0.2 + 0.5) / 2
    assert got.mix == pytest.approx(mix) and got.rate == pytest.approx(rate)
    assert got.mix + got.rate == pytest.approx(got.after - got.before, abs=1e-15)
    assert got.shares_after == pytest.approx({"new": 0.5, "ret": 0.5})


def test_a_segment_absent_in_one_period_and_empty_periods():
    got = mix_rate({"ret": (10, 100)}, {"ret": (10, 100), "new": (0, 100)})
    assert got.after == pytest.approx(0.05) and got.mix + got.rate == pytest.approx(-0.05)
    with pytest.raises(ValueError):
        mix_rate({"ret": (0, 0)}, {"ret": (1, 10)})
