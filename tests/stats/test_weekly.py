"""A week's metrics from its days, by hand."""
from __future__ import annotations

import pytest

from offline_eval.stats.quality import ScoreBins, pointwise
from offline_eval.stats.weekly import week_metrics


def row(metric, value, num=None, den=None, variant="control", segment="all", version="v1"):
    return {"model_name": "m", "model_version": version, "variant": variant, "segment": segment, "metric": metric,
            "value": value, "numerator": num, "denominator": den}


def test_ratios_pool_counts_sum_peaks_max_and_the_rest_average():
    days = {
        "2026-06-08": [row("ctr", 0.10, 10, 100), row("clicks", 10, 10), row("peak_rps", 3.0, 3, 1),
                       row("ndcg_at_10", 0.6), row("latency_p95_ms", 80.0), row("auc", 0.70, None, 100)],
        "2026-06-09": [row("ctr", 0.05, 15, 300), row("clicks", 15, 15), row("peak_rps", 5.0, 5, 1),
                       row("ndcg_at_10", 0.7), row("latency_p95_ms", 90.0), row("auc", 0.72, None, 300)],
    }
    got = {r["metric"]: r for r in week_metrics(days)}
    assert (got["ctr"]["value"], got["ctr"]["numerator"], got["ctr"]["denominator"]) == (25 / 400, 25, 400)
    assert got["ctr"]["value"] != pytest.approx((0.10 + 0.05) / 2)  # the week's ratio, not a mean of days
    assert got["clicks"]["value"] == 25 and got["peak_rps"]["value"] == 5.0
    assert got["ndcg_at_10"]["value"] == pytest.approx(0.65) and got["latency_p95_ms"]["value"] == 85.0
    assert got["auc"]["value"] == pytest.approx(0.71) and got["ctr"]["days"] == 2  # no bins given: mean of days


def test_quality_from_the_weeks_score_bins():
    bins = ScoreBins.from_rows([(10, 100, 2, 1.2, 30.0), (500, 50, 20, 25.5, 40.0)])
    days = {"d1": [row("auc", 0.9, None, 100)], "d2": [row("auc", 0.5, None, 50)]}
    (auc,) = week_metrics(days, {("m", "v1"): {"all": bins}})
    # By hand: 22 clicked and 128 unclicked impressions; clicked-high vs unclicked-low pairs win
    # (20 * 98), pairs within a bin count half (2 * 98 / 2 + 20 * 30 / 2): (1960 + 98 + 300) / 2816.
    assert auc["value"] == pytest.approx(2358 / 2816) == pointwise(bins)["auc"]
