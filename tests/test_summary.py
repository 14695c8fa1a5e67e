"""The printed summary and its root-cause lines, on result tables written by hand."""
from __future__ import annotations

import dataclasses

import pytest

from offline_eval.summary import daily_summary


def _rows(ret: tuple[float, float], new: tuple[float, float]) -> list[dict]:
    rows = []
    for seg, (clicks, imps) in (("returning_users", ret), ("new_users", new)):
        rows.append({"segment": seg, "metric": "ctr", "value": clicks / imps, "numerator": clicks, "denominator": imps})
    c, i = ret[0] + new[0], ret[1] + new[1]
    rows.append({"segment": "all", "metric": "ctr", "value": c / i, "numerator": c, "denominator": i})
    return [{"model_name": "m", "model_version": "v1", "variant": "control", **r} for r in rows]


@pytest.mark.spark
def test_a_ctr_drop_is_flagged_and_split_into_mix_and_rate(spark, settings):
    from offline_eval.io.tables import Tables

    tables = Tables(spark, dataclasses.replace(settings, database="offline_eval_summary_test"))
    tables.ensure()
    week = {d: _rows((90, 900), (2, 100)) for d in ("2026-06-12", "2026-06-13", "2026-06-14")}  # 9.2%, 10% new
    days = {**week,
            "2026-06-17": _rows((80, 800), (4, 200)),    # CTR 8.4%: new users 20% of impressions
            "2026-06-18": _rows((50, 500), (10, 500))}   # CTR 6.0%: same rates, new users 50%
    for ds, rows in days.items():
        tables.write_rows(rows, "metrics_daily", ds=ds)
    version = {"model_name": "m", "model_version": "v1"}
    tables.write_rows([
        {**version, "reference": "previous_day", "reference_end": "2026-06-17", "column": "c_device", "psi": 0.05,
         "verdict": "none"},
        {**version, "reference": "previous_day", "reference_end": "2026-06-17", "column": "f_user_tenure_days",
         "psi": 0.51, "verdict": "severe"}], "drift_daily", ds="2026-06-18")
    tables.write_rows([{**version, "reference": "baseline_7d", "reference_end": "2026-06-14", "segment": "new_users",
                        "mean_rel_change": -0.3, "buckets": "[]"}], "concept_drift_daily", ds="2026-06-18")
    out = daily_summary(tables, "m", "2026-06-17", "2026-06-18")
    assert "2026-06-14" not in out.split("Why")[0]  # the table shows start..end only
    assert "-28.6%  <<" in out  # 6.0 / 8.4 - 1
    assert "Why v1 moved on 2026-06-18" in out and "vs the previous day (2026-06-17):" in out
    assert "8.40% -> 6.00% (-2.40 pts): mix -2.40 pts, rate +0.00 pts; new users 20% -> 50% of impressions" in out
    # against the pooled week 06-12..06-14: (270 + 6) / 3000 = 9.2%, new users 10% of impressions
    assert "vs the weekly baseline (2026-06-12..2026-06-14, pooled):" in out
    assert "9.20% -> 6.00% (-3.20 pts): mix -3.20 pts, rate +0.00 pts; new users 10% -> 50% of impressions" in out
    assert "vs previous_day (2026-06-17), PSI: f_user_tenure_days 0.51 (severe), c_device 0.05 (none)" in out
    assert "concept drift, new_users: P(click | score decile) -30.0% vs the week ending 2026-06-14" in out


def test_truth_check_states_cover_or_miss_and_the_distance_in_se():
    from offline_eval.summary import truth_check_lines

    z = 1.959963984540054
    readout = {"metrics": [
        # interval 0.02 +- 0.02 * z / z: SE 0.01 exactly; truth 0.06 is 4 SE above.
        {"metric": "ctr", "rel_lift": 0.02, "rel_ci_low": 0.02 - 0.01 * z, "rel_ci_high": 0.02 + 0.01 * z},
        {"metric": "cvr", "rel_lift": 0.04, "rel_ci_low": 0.04 - 0.01 * z, "rel_ci_high": 0.04 + 0.01 * z},
    ]}
    truth = {"treatment_vs_control": {"ctr_relative_lift": 0.06, "cvr_relative_lift": 0.03}}
    cov = {"summary": {"cvr": {"coverage": 0.95, "seeds": 40}}}
    lines = truth_check_lines(readout, truth, cov)
    assert len(lines) == 3
    assert "misses the truth (-4.0 SE)" in lines[1] and lines[1].lstrip().startswith("ctr")
    assert "covers the truth (+1.0 SE); covered in 95% of 40 seeds" in lines[2]


def test_security_lines_name_the_source_and_the_clean_ctr():
    from offline_eval.summary import format_security

    findings = {"2026-06-11": [
        {"kind": "burst_source", "key": "c0ffee0c0ffee0", "requests": 3600, "share_of_requests": 3600 / 33705},
        {"kind": "automated_session", "key": "a", "requests": 900}, {"kind": "automated_session", "key": "b",
                                                                      "requests": 900}]}
    rows = {"v1": {"2026-06-11": [{"segment": "all", "metric": m, "value": v} for m, v in
                                  (("bot_impression_share", 0.2131), ("ctr", 0.0627), ("ctr_clean", 0.0795))]},
            "v2": {"2026-06-11": [{"segment": "all", "metric": "bot_impression_share", "value": 0.0}]}}
    assert format_security(findings, rows) == (
        "\n\nSecurity (docs/serving.md):\n  2026-06-11: burst source c0ffee0c0ffee0: 3,600 requests (10.7% of the "
        "day's); 2 automated sessions (1,800 requests, no click); v1: 21.3% of impressions flagged, CTR 6.27% "
        "(7.95% without them)")
    assert format_security({}, rows) == ""
