"""Attribution rules on a handful of rows, expected values worked out by hand."""
from __future__ import annotations

import contextlib
import datetime as dt
import io

import pytest

from offline_eval.metrics.funnel import impression_funnel

pytestmark = pytest.mark.spark

T = dt.datetime(2026, 6, 18, 10, 0, 0)


def ts(minutes: float) -> dt.datetime:
    return T + dt.timedelta(minutes=minutes)


@pytest.fixture(scope="module")
def funnel(spark):
    impressions = spark.createDataFrame(
        [
            ("m", "v1", "e", "control", "r1", 1, 10, 1, 0.3),
            ("m", "v1", "e", "control", "r1", 1, 11, 2, 0.2),
            ("m", "v1", "e", "control", "r2", 1, 10, 1, 0.1),
            ("m", "v2", "e", "treatment", "r3", 2, 12, 1, 0.4),
        ],
        "model_name string, model_version string, experiment_id string, variant string, request_id string, "
        "user_id bigint, item_id bigint, position int, score double",
    )
    clicks = spark.createDataFrame(
        [
            ("r1", 1, 10, ts(0)),
            ("r1", 1, 10, ts(0.1)),  # a second click on the same impression counts once
            ("r2", 1, 10, ts(60)),
            ("r9", 1, 99, ts(5)),  # no such impression: not attributed
            ("r3", 2, 12, None),  # no timestamp: cannot be ordered against events
        ],
        "request_id string, user_id bigint, item_id bigint, click_ts timestamp",
    )
    carts = spark.createDataFrame(
        [
            ("c1", 1, 10, 1, ts(30)),  # last click before it: r1 (at 0.1 min)
            ("c2", 1, 10, 1, ts(90)),  # last click before it: r2 (at 60 min)
            ("c3", 1, 11, 1, ts(30)),  # item 11 never clicked
            ("c4", None, 10, 1, ts(30)),  # no user
        ],
        "cart_event_id string, user_id bigint, item_id bigint, quantity int, event_ts timestamp",
    )
    orders = spark.createDataFrame(
        [
            ("o1", 1, 10, 2, 5.0, ts(45)),  # -> r1: 2 units, GMV 10
            ("o2", 1, 10, 1, 5.0, ts(-60)),  # before any click
            ("o3", 2, 12, 1, 7.0, ts(120)),  # the only click has no timestamp
        ],
        "order_id string, user_id bigint, item_id bigint, quantity int, price double, order_ts timestamp",
    )
    rows = impression_funnel(impressions, clicks, carts, orders).collect()
    return {(r.request_id, r.item_id): r for r in rows}


def test_one_row_per_impression(funnel):
    assert sorted(funnel) == [("r1", 10), ("r1", 11), ("r2", 10), ("r3", 12)]


@pytest.mark.parametrize(
    "key, expected",
    [
        (("r1", 10), (1, 1, 1, 2, 10.0)),
        (("r1", 11), (0, 0, 0, 0, 0.0)),
        (("r2", 10), (1, 1, 0, 0, 0.0)),
        (("r3", 12), (0, 0, 0, 0, 0.0)),
    ],
)
def test_attribution(funnel, key, expected):
    r = funnel[key]
    assert (r.clicked, r.carts, r.orders, r.units, r.gmv) == expected


def test_version_and_variant_come_from_the_impression(funnel):
    assert (funnel[("r3", 12)].model_version, funnel[("r3", 12)].variant) == ("v2", "treatment")




@pytest.mark.parametrize("few_clicks", [False, True], ids=["shuffled", "broadcast"])
def test_a_cart_and_an_order_with_the_same_id_both_count(spark, few_clicks):
    """The two logs have their own ids: an add-to-cart and an order both named "x1" are two
    events, attributed to the same click (carts 1, orders 1, 3 units, GMV 3 x 2.5)."""
    impressions = spark.createDataFrame(
        [("m", "v1", "e", "control", "r1", 1, 10, 1, 0.3), ("m", "v1", "e", "control", "r2", 1, 11, 2, 0.2)],
        "model_name string, model_version string, experiment_id string, variant string, request_id string, "
        "user_id bigint, item_id bigint, position int, score double",
    )
    clicks = spark.createDataFrame([("r1", 1, 10, ts(0))],
                                   "request_id string, user_id bigint, item_id bigint, click_ts timestamp")
    carts = spark.createDataFrame([("x1", 1, 10, 1, ts(1))],
                                  "cart_event_id string, user_id bigint, item_id bigint, quantity int, "
                                  "event_ts timestamp")
    orders = spark.createDataFrame([("x1", 1, 10, 3, 2.5, ts(2))],
                                   "order_id string, user_id bigint, item_id bigint, quantity int, price double, "
                                   "order_ts timestamp")
    rows = {r.request_id: r for r in impression_funnel(impressions, clicks, carts, orders,
                                                        few_clicks=few_clicks).collect()}
    assert (rows["r1"].clicked, rows["r1"].carts, rows["r1"].orders, rows["r1"].units, rows["r1"].gmv) == \
        (1, 1, 1, 3, 7.5)
    assert (rows["r2"].clicked, rows["r2"].carts, rows["r2"].orders, rows["r2"].units, rows["r2"].gmv) == \
        (0, 0, 0, 0, 0.0)

def test_impressions_are_never_the_broadcast_side(spark):
    """Even when both inputs look small enough to broadcast (threshold 1 GB), the
    click-to-impression join shuffles and merges: a broadcast of a large impressions range,
    whose compressed Parquet size understates it, exhausts the driver."""
    from pyspark.sql import functions as F

    from offline_eval.metrics.funnel import attributed_clicks

    imps = spark.range(1000).select(F.col("id").cast("string").alias("request_id"), F.col("id").alias("item_id"),
                                    (F.col("id") % 7).alias("user_id"))
    clicks = imps.where("item_id % 4 = 0").select("request_id", "item_id", F.lit(T).alias("click_ts"))
    previous = spark.conf.get("spark.sql.autoBroadcastJoinThreshold")
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", str(1 << 30))
    try:
        joined = attributed_clicks(imps, clicks)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            joined.explain()  # the physical plan (the engine's, printed by the client)
        plan = out.getvalue()
        n = joined.count()
    finally:
        spark.conf.set("spark.sql.autoBroadcastJoinThreshold", previous)
    assert "SortMergeJoin" in plan and "BroadcastHashJoin" not in plan, plan
    assert n == 250  # ids 0, 4, ..., 996: every click matches its impression
