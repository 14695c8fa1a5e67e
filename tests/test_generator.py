"""The generator is deterministic for a seed and produces the scenario it documents."""
from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from offline_eval.generator import Scenario, _position_weights, generate

pytestmark = pytest.mark.spark

SMALL = dict(impressions_per_day=3_000, base_users=600, signups_per_day=60, promo_signups_per_day=150,
             base_items=300, new_items_per_day=30, days=3, promo_day=2, start="2026-06-16")


def _fingerprint(df):
    # Order-independent digest: sum of row hashes reduced to 31 bits, so the sum cannot overflow.
    h = F.pmod(F.xxhash64(*df.columns), F.lit(2**31))
    return df.select(F.sum(h).alias("h"), F.count("*").alias("n")).first()


def test_same_seed_same_rows_other_seed_other_rows(spark):
    a = generate(spark, Scenario(**SMALL))
    b = generate(spark, Scenario(**SMALL))
    c = generate(spark, Scenario(**SMALL, seed=7))
    for name in ("impressions", "orders", "sessions"):
        assert _fingerprint(a[name]) == _fingerprint(b[name])
    assert _fingerprint(a["impressions"]) != _fingerprint(c["impressions"])


def test_requests_never_show_an_item_twice(spark):
    imp = generate(spark, Scenario(**SMALL))["impressions"]
    assert imp.groupBy("request_id", "item_id").count().where("count > 1").count() == 0
    assert imp.select(F.min("position"), F.max("position")).first() == (1, 10)


def test_new_user_share_jumps_on_the_promotion_day(spark):
    sc = Scenario(**{**SMALL, "impressions_per_day": 20_000})
    imp = generate(spark, sc)["impressions"]
    by_day = {r.ds: r.share for r in imp.groupBy("ds").agg(
        F.avg((F.col("f_user_tenure_days") < 7).cast("double")).alias("share")).collect()}
    # Impressions come from served sessions; new users lose a few more sessions to the cold-start gap.
    assert by_day["2026-06-16"] == pytest.approx(0.2, abs=0.02)
    assert by_day["2026-06-18"] == pytest.approx(0.5, abs=0.03)


def test_treatment_lifts_ctr_about_six_percent(spark):
    # Item appeal is drawn per item: with a few hundred items its realised mean is far from 1,
    # so this test uses the default catalogue size.
    sc = Scenario(**{**SMALL, "impressions_per_day": 200_000, "days": 1, "promo_day": 5,
                     "base_items": 20_000, "new_items_per_day": 300})
    frames = generate(spark, sc)
    observed = (
        frames["impressions"].join(frames["clicks"].select("request_id", "item_id").distinct()
                                   .withColumn("c", F.lit(1)), ["request_id", "item_id"], "left")
        .groupBy("variant").agg(F.avg(F.coalesce("c", F.lit(0))).alias("ctr")).collect()
    )
    rates = {r.variant: r.ctr for r in observed}
    # 100k impressions per arm: the standard error of the ratio is about 1.6%.
    assert rates["treatment"] / rates["control"] - 1 == pytest.approx(0.06, abs=0.035)
    truth = sc.ground_truth()["before_promo"]["ctr_all_both_arms"]
    overall = (rates["treatment"] + rates["control"]) / 2
    assert overall == pytest.approx(truth, rel=0.05)


def test_position_weights_have_mean_one():
    w = _position_weights()
    assert sum(w) / len(w) == pytest.approx(1.0)
    assert w[0] > w[1] > w[-1]


def test_no_experiment_before_its_start(spark):
    sc = Scenario(**{**SMALL, "start": "2026-06-09", "experiment_start": "2026-06-10", "promo_day": 5})
    sessions = generate(spark, sc)["sessions"]
    got = {(r.ds, r.experiment_id, r.variant) for r in sessions.select("ds", "experiment_id", "variant").distinct().collect()}
    assert got == {("2026-06-09", None, "control"),
                   ("2026-06-10", sc.experiment_id, "control"), ("2026-06-10", sc.experiment_id, "treatment"),
                   ("2026-06-11", sc.experiment_id, "control"), ("2026-06-11", sc.experiment_id, "treatment")}
