"""Alert rules and baseline bookkeeping, by hand."""
from __future__ import annotations

import pytest

from offline_eval.dates import weekly_end, window_dates
from offline_eval.stats.alerts import coverage_alerts, ctr_drop_alerts, drift_alerts, threshold_alerts
from offline_eval.stats.drift import compare_categorical
from offline_eval.stats.profile import OTHER, MetricStats, Profile, fold_rare, merge


def test_weekly_baseline_ends_on_the_sunday_before():
    assert weekly_end("2026-06-15") == "2026-06-14"  # Monday
    assert weekly_end("2026-06-18") == "2026-06-14"  # Thursday
    assert weekly_end("2026-06-14") == "2026-06-07"  # a Sunday compares with the week before
    assert window_dates("2026-06-14", 3) == ["2026-06-12", "2026-06-13", "2026-06-14"]


def test_metric_baseline_mean_and_sample_std():
    key = ("control", "all", "ctr")
    days = [Profile("m", "v1", (d,), metrics={key: MetricStats({d: v})} if v is not None else {})
            for d, v in (("2026-06-01", 0.08), ("2026-06-02", 0.10), ("2026-06-03", None))]
    stats = merge(days).metrics[key]
    assert (stats.n, stats.mean) == (2, pytest.approx(0.09))
    assert stats.std == pytest.approx(0.0141421356, rel=1e-8)  # sqrt(((0.01)^2 * 2) / 1)


def test_three_sigma_and_ctr_drop_rules():
    key = ("control", "all", "ctr")
    base = {key: (0.08, 0.004, 7.0), ("control", "all", "auc"): (0.70, 0.01, 7.0)}
    today = {key: 0.067, ("control", "all", "auc"): 0.69}
    (hi,) = threshold_alerts(today, base, "baseline_7d")  # 0.067 < 0.08 - 0.012; AUC within 1 sd
    assert (hi["metric"], hi["rule"], hi["z"]) == ("ctr", "baseline_3sd", pytest.approx(-3.25))
    assert threshold_alerts(today, {key: (0.08, 0.004, 2.0)}, "b") == []  # too few days
    (med,) = ctr_drop_alerts(today, base, "previous_day")  # -16.25% < -10%
    assert med["rule"] == "ctr_drop" and med["relative_change"] == pytest.approx(-0.1625)
    assert med["threshold"] == pytest.approx(-0.10) and med["lower"] == pytest.approx(0.072)
    assert ctr_drop_alerts({key: 0.073}, base, "p") == []  # -8.75%: no alert
    # A promotion day widens the allowed drop by the calendar's amount: -16.25% > -(10% + 15%).
    assert ctr_drop_alerts(today, base, "previous_day", widen=0.15) == []
    (wide,) = ctr_drop_alerts({key: 0.059}, base, "previous_day", widen=0.15)  # -26.25% < -25%
    assert wide["threshold"] == pytest.approx(-0.25)


def test_coverage_and_drift_rules():
    today = {("control", "all", "new_user_coverage"): 0.9499, ("treatment", "all", "new_user_coverage"): 0.95,
             ("control", "new_users", "new_user_coverage"): 0.5}  # only segment all is ruled
    (low,) = coverage_alerts(today)
    assert (low["variant"], low["value"], low["threshold"]) == ("control", 0.9499, 0.95)
    drift = [{"column": "score", "psi": 0.25, "verdict": "severe"}, {"column": "c_device", "psi": 0.12,
             "verdict": "minor"}, {"column": "f_price", "psi": 0.3, "verdict": "none"}]  # p-value too high
    found = drift_alerts(drift, "previous_day (2026-06-17)")
    assert [(a["rule"], a["metric"], a["threshold"]) for a in found] == [
        ("drift_minor", "c_device", 0.1), ("drift_severe", "score", 0.2)]


def test_rare_categories_fold_into_other_on_both_sides():
    folded = fold_rare({"a": 5000, "b": 4990, "c": 9, "d": 1})
    assert folded == {"a": 5000, "b": 4990, OTHER: 10}
    out = compare_categorical("x", folded, {"a": 10, "b": 10, "c": 1, "zz": 3})
    assert out["categories"] == 3 and out["n_current"] == 24


def test_serving_security_and_latency_rules():
    from offline_eval.stats.alerts import absolute_alerts, latency_alerts

    today = {("control", "all", "error_rate"): 0.051, ("treatment", "all", "error_rate"): 0.05,  # 5% is allowed
             ("control", "all", "bot_impression_share"): 0.02, ("treatment", "all", "bot_impression_share"): 0.0199,
             ("control", "all", "unknown_item_ids"): 3.0, ("treatment", "all", "unknown_item_ids"): 0.0,
             ("control", "all", "latency_p95_ms"): 84.1, ("treatment", "all", "latency_p95_ms"): 83.9}
    found = absolute_alerts(today)
    assert [(a["rule"], a["variant"], a["threshold"]) for a in found] == [
        ("bot_traffic", "control", 0.02), ("serving_error_rate", "control", 0.05),
        ("unknown_item_ids", "control", 0.0)]
    base = {(v, "all", "latency_p95_ms"): (80.0, 1.0, 7) for v in ("control", "treatment")}
    (slow,) = latency_alerts(today, base, "baseline_7d (2026-06-14)")  # 84.1 > 80 * 1.05 = 84.0 > 83.9
    assert slow["variant"] == "control" and slow["relative_change"] == pytest.approx(0.05125)
