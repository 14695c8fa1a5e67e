"""Daily metrics on six impression rows whose every value is worked out by hand.

v1 (control): u1 returning sees old items A (cat X, clicked, carted, ordered GMV 20, bought
before) and B (cat Y); u2 new sees new item C (cat X, clicked); u3 is missing from the user
snapshot and sees A. v2 (treatment): u4 returning sees A and B, no clicks.
Sessions: new users u2, u5 in control, u6 in treatment; u1 returning.
"""
from __future__ import annotations

import math

import pytest

from offline_eval.metrics.daily import METRIC_NAMES, SEGMENTS, daily_metrics, headline_metrics

pytestmark = pytest.mark.spark

ROW_SCHEMA = (
    "model_name string, model_version string, experiment_id string, variant string, request_id string, "
    "user_id bigint, item_id bigint, clicked int, carts bigint, orders bigint, units bigint, gmv double, "
    "category string, is_new_user boolean, is_new_item boolean, user_segment string, item_segment string, "
    "has_prior_order boolean"
)
C, T = ("m", "v1", "e", "control"), ("m", "v2", "e", "treatment")
RET, NEW = (False, "returning_users"), (True, "new_users")
OLD_I, NEW_I = (False, "old_items"), (True, "new_items")


def row(arm, req, user, item, funnel, cat, user_seg, item_seg, prior):
    is_new_user, user_segment = user_seg
    is_new_item, item_segment = item_seg
    return (*arm, req, user, item, *funnel, cat, is_new_user, is_new_item, user_segment, item_segment, prior)


@pytest.fixture(scope="module")
def rows(spark):
    return spark.createDataFrame(
        [
            row(C, "r1", 1, 100, (1, 1, 1, 1, 20.0), "X", RET, OLD_I, True),
            row(C, "r1", 1, 101, (0, 0, 0, 0, 0.0), "Y", RET, OLD_I, True),
            row(C, "r2", 2, 102, (1, 0, 0, 0, 0.0), "X", NEW, NEW_I, False),
            row(C, "r3", 3, 100, (0, 0, 0, 0, 0.0), "X", (None, None), OLD_I, False),
            row(T, "r4", 4, 100, (0, 0, 0, 0, 0.0), "X", RET, OLD_I, False),
            row(T, "r4", 4, 101, (0, 0, 0, 0, 0.0), "Y", RET, OLD_I, False),
        ],
        ROW_SCHEMA,
    )


@pytest.fixture(scope="module")
def metrics(spark, rows):
    sessions = spark.createDataFrame(
        [(2, "e", "control", True), (5, "e", "control", True), (6, "e", "treatment", True), (1, "e", "control", False)],
        "user_id bigint, experiment_id string, variant string, is_new_user boolean",
    )
    out = daily_metrics(rows, sessions, "2026-06-18").collect()
    return {(r.model_version, r.segment, r.metric): r for r in out}


def value(metrics, version, segment, metric):
    return metrics[(version, segment, metric)].value


def test_every_version_gets_every_segment_and_metric(metrics):
    per_segment = len(METRIC_NAMES) - 1  # coverage only on "all"
    assert len(metrics) == 2 * (len(SEGMENTS) * per_segment + 1)
    assert {k[1] for k in metrics} == set(SEGMENTS)
    assert all(r.ds == "2026-06-18" for r in metrics.values())


@pytest.mark.parametrize(
    "metric, expected",
    [
        ("impressions", 4),
        ("clicks", 2),
        ("ctr", 0.5),
        ("add_to_carts", 1),
        ("add_to_cart_rate", 0.5),
        ("orders", 1),
        ("cvr", 0.5),
        ("gmv", 20.0),
        ("exposed_users", 3),
        ("gmv_per_user", 20.0 / 3),
        ("buyers", 1),
        ("repurchase_rate", 1.0),
        ("new_user_share", 1 / 3),
        ("new_item_impression_share", 0.25),
        # categories X, Y, X, X: -(3/4 log2 3/4 + 1/4 log2 1/4)
        ("category_entropy", -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))),
        ("new_user_coverage", 0.5),  # active new users u2, u5; only u2 was shown anything
    ],
)
def test_v1_all(metrics, metric, expected):
    assert value(metrics, "v1", "all", metric) == pytest.approx(expected, abs=1e-12)


def test_ratio_keeps_numerator_and_denominator(metrics):
    r = metrics[("v1", "all", "gmv_per_user")]
    assert (r.numerator, r.denominator) == (20.0, 3.0)
    count = metrics[("v1", "all", "clicks")]
    assert (count.numerator, count.denominator) == (2.0, None)


def test_user_missing_from_snapshot_counts_only_in_all(metrics):
    assert value(metrics, "v1", "new_users", "impressions") == 1
    assert value(metrics, "v1", "returning_users", "impressions") == 2
    assert value(metrics, "v1", "old_items", "impressions") == 3


def test_segment_values(metrics):
    assert value(metrics, "v1", "new_users", "ctr") == 1.0
    assert value(metrics, "v1", "new_users", "cvr") == 0.0
    assert value(metrics, "v1", "new_users", "category_entropy") == 0.0
    assert value(metrics, "v1", "returning_users", "ctr") == 0.5
    assert value(metrics, "v1", "old_items", "ctr") == pytest.approx(1 / 3)
    assert value(metrics, "v1", "new_items", "ctr") == 1.0


def test_zero_denominators_give_null_not_nan(metrics):
    # v2 has no click: CVR and add-to-cart rate have a zero denominator; no buyer: no repurchase rate.
    for metric in ("cvr", "add_to_cart_rate", "repurchase_rate"):
        r = metrics[("v2", "all", metric)]
        assert r.value is None and r.denominator == 0.0
    assert value(metrics, "v2", "all", "ctr") == 0.0
    assert value(metrics, "v2", "all", "new_user_coverage") == 0.0  # u6 active, never shown


def test_empty_group_has_zero_counts_and_null_ratios(metrics):
    for segment in ("new_users", "new_items"):
        assert value(metrics, "v2", segment, "impressions") == 0
        assert value(metrics, "v2", segment, "exposed_users") == 0
        assert value(metrics, "v2", segment, "ctr") is None
        assert value(metrics, "v2", segment, "gmv_per_user") is None
        assert value(metrics, "v2", segment, "category_entropy") is None


def test_coverage_only_on_all(metrics):
    assert ("v1", "new_users", "new_user_coverage") not in metrics


def test_headline_metrics_by_hand(rows, metrics):
    """v1: 4 impressions, 2 clicks, 1 order of GMV 20, users u1, u2, u3; v2: 2 impressions of u4,
    nothing clicked. The same rows, values, numerators and denominators as daily_metrics'."""
    got = {(r.model_version, r.metric): r for r in headline_metrics(rows, "2026-06-18").collect()}
    assert set(got) == {(v, m) for v in ("v1", "v2") for m in ("ctr", "cvr", "gmv_per_user")}
    want = {("v1", "ctr"): (0.5, 2.0, 4.0), ("v1", "cvr"): (0.5, 1.0, 2.0), ("v1", "gmv_per_user"): (20 / 3, 20.0, 3.0),
            ("v2", "ctr"): (0.0, 0.0, 2.0), ("v2", "cvr"): (None, 0.0, 0.0), ("v2", "gmv_per_user"): (0.0, 0.0, 1.0)}
    for k, (value_, num, den) in want.items():
        r = got[k]
        assert (r.value, r.numerator, r.denominator) == (pytest.approx(value_) if value_ else value_, num, den), k
        assert (r.segment, r.ds, r.variant) == ("all", "2026-06-18", "control" if k[0] == "v1" else "treatment")
        full = metrics[(k[0], "all", k[1])]
        assert (full.value, full.numerator, full.denominator) == (r.value, r.numerator, r.denominator), k
    only_ctr = headline_metrics(rows, "2026-06-18", ("ctr",)).collect()
    assert sorted((r.model_version, r.metric, r.value) for r in only_ctr) == [("v1", "ctr", 0.5), ("v2", "ctr", 0.0)]
    with pytest.raises(ValueError, match="category_entropy"):
        headline_metrics(rows, "2026-06-18", ("category_entropy",))
