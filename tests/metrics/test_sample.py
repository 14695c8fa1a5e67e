"""The stored sample: bounded per version, the same rows on every rerun, and labelled with the
click the funnel counts."""
from __future__ import annotations

import datetime as dt

import pytest

from offline_eval.metrics.day import SAMPLE_COLUMNS, labelled
from offline_eval.metrics.sample import bounded_sample

pytestmark = pytest.mark.spark


def _impressions(spark, n: int):
    """n impressions: score i/n, version v1 for odd i, request r<i // 3>, item i<i>; features null."""
    from pyspark.sql import functions as F

    from offline_eval.contract import IMPRESSIONS, categorical_features

    categorical = set(categorical_features(IMPRESSIONS))
    i = F.col("id")
    return spark.range(n).select(
        *[F.lit(None).cast("string" if c in categorical else "double").alias(c) for c in SAMPLE_COLUMNS
          if c != "score"],
        (i / n).alias("score"), F.lit("m").alias("model_name"),
        F.when(i % 2 == 1, "v1").otherwise("v2").alias("model_version"),
        F.concat(F.lit("r"), (i / 3).cast("int").cast("string")).alias("request_id"),
        F.concat(F.lit("i"), i.cast("string")).alias("item_id"))


def test_the_sample_is_bounded_per_version_and_the_same_on_a_rerun(spark):
    df = _impressions(spark, 60)  # 30 rows per version
    cols = ("score", "request_id", "item_id")
    first = bounded_sample(df, cols, 10, seed="2026-06-18").collect()
    again = bounded_sample(df.repartition(3), cols, 10, seed="2026-06-18").collect()
    assert sorted(r["model_version"] for r in first) == ["v1"] * 10 + ["v2"] * 10
    assert sorted(map(tuple, first)) == sorted(map(tuple, again))
    assert {r["item_id"] for r in bounded_sample(df, cols, 10, seed="2026-06-19").collect()} != \
        {r["item_id"] for r in first}  # another day draws other rows


def test_each_sampled_impression_carries_its_click(spark):
    from pyspark.sql import Row

    sample = bounded_sample(_impressions(spark, 8), (*SAMPLE_COLUMNS, "request_id", "item_id"), 100, seed="d")
    ts = dt.datetime(2026, 6, 18, 12)
    clicks = spark.createDataFrame([
        Row(request_id="r0", item_id="i0", click_ts=ts),  # clicked
        Row(request_id="r0", item_id="i0", click_ts=ts),  # the same click logged twice: one row, still 1
        Row(request_id="r1", item_id="i4", click_ts=None),  # no time: not a click, as the funnel counts
        Row(request_id="r2", item_id="i7", click_ts=ts),  # clicked
        Row(request_id="r9", item_id="i0", click_ts=ts),  # another request's item: not this impression
    ])
    out = labelled(sample, clicks)
    assert out.columns == ["model_name", "model_version", *SAMPLE_COLUMNS, "clicked"]
    by_score = {r["score"]: r["clicked"] for r in out.collect()}
    # impression i = score i/8: clicked are i0 (score 0.0) and i7 (0.875)
    assert by_score == {k / 8: int(k in (0, 7)) for k in range(8)}
