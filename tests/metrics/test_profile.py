"""Spark profiles (one grid pass for numeric columns, one JVM count for categorical ones)
against numpy and collections.Counter on the same rows: groups, values exactly on a grid
boundary, nulls and NaN, infinities, several partitions and batches larger than an Arrow batch."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from offline_eval.metrics.profile import ARROW_BATCH_ROWS, categorical_counts, numeric_profiles
from offline_eval.stats import grid
from tests.stats.test_grid import profile_of

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(7)
    n = 30_000
    x = np.round(rng.normal(size=n), 1)
    x[::97] = np.nan
    x[5::1000] = grid.BOUNDARIES[len(grid.BOUNDARIES) // 2 + 40]  # exactly on a boundary
    y = rng.integers(0, 20, size=n).astype(float)
    grp = rng.choice(["v1", "v2", "v3"], size=n, p=[0.5, 0.3, 0.2]).astype(object)
    grp[::501] = None
    cat = rng.choice(["a", "b", "c", "d"], size=n).astype(object)
    cat[::333] = None
    return pd.DataFrame({"x": x, "y": y, "g": grp, "cat": cat})


def _same(got, want):
    assert np.array_equal(got.buckets, want.buckets) and np.array_equal(got.counts, want.counts)
    assert got.missing == want.missing
    assert got.mean == pytest.approx(want.mean, rel=1e-12) and got.std == pytest.approx(want.std, rel=1e-12)
    assert (got.min, got.max) == (want.min, want.max)


def test_grouped_profiles_equal_numpy(spark, frame):
    df = spark.createDataFrame(frame).repartition(3)  # per-partition results are merged on the driver
    got = numeric_profiles(df, ["g"], ["x", "y"])
    assert set(got) == {("v1",), ("v2",), ("v3",)}  # the null group is profiled nowhere
    for (g,), cols in got.items():
        rows = frame[frame["g"] == g]
        for c in ("x", "y"):
            _same(cols[c], profile_of(rows[c].to_numpy()))
    cats = categorical_counts(df, ["g"], ["cat"])
    for (g,), cols in cats.items():
        rows = frame[frame["g"] == g]
        want = Counter(rows["cat"].where(rows["cat"].notna(), "__null__"))
        assert cols["cat"] == dict(want)


def test_ungrouped_and_batches_larger_than_the_arrow_batch(spark):
    n = ARROW_BATCH_ROWS * 2 + 123
    df = spark.range(n).selectExpr("cast(id % 1000 as double) as x").coalesce(1)
    (p,) = numeric_profiles(df, [], ["x"]).values()
    x = np.arange(n) % 1000
    _same(p["x"], profile_of(x.astype(float)))


def test_nulls_nan_and_infinities(spark):
    # +inf / -inf are values (the outer buckets), null and NaN are missing; worked out by hand.
    df = spark.createDataFrame(
        [(float("inf"),), (float("-inf"),), (float("nan"),), (None,), (0.5,), (2.0,), (2.0,)], "x double")
    (p,) = numeric_profiles(df, [], ["x"]).values()
    top, bottom = len(grid.BOUNDARIES), 0
    assert p["x"].missing == 2 and p["x"].n == 5
    counts = dict(zip(p["x"].buckets.tolist(), p["x"].counts.tolist(), strict=True))
    assert counts[top] == 1 and counts[bottom] == 1 and counts[int(grid.bucket_index(np.array([2.0]))[0])] == 2
    assert (p["x"].min, p["x"].max) == (float("-inf"), float("inf"))


def test_integer_columns_are_profiled_as_doubles(spark):
    df = spark.createDataFrame([(1, 3), (2, None), (2, 5)], "k long, i int")
    (p,) = numeric_profiles(df, [], ["k", "i"]).values()
    _same(p["k"], profile_of(np.array([1.0, 2.0, 2.0])))
    _same(p["i"], profile_of(np.array([3.0, np.nan, 5.0])))


def test_scan_settings_end_at_spark_defaults_when_scans_overlap(spark):
    # Two tasks of one shared engine session scanning at once: the inner scan starts while the
    # outer one's settings are set. Restoring "previous" values would leave the scan settings
    # set for good after the outer scan ended; both must end at Spark's defaults
    # (maxRecordsPerBatch 10000 and maxPartitionBytes 128 MiB, Spark's documented defaults).
    from offline_eval.metrics.profile import SCAN_SPLIT_BYTES, scan_conf

    keys = ("spark.sql.execution.arrow.maxRecordsPerBatch", "spark.sql.files.maxPartitionBytes")
    outer, inner = scan_conf(spark), scan_conf(spark)
    outer.__enter__()
    inner.__enter__()
    assert spark.conf.get(keys[1]) == str(SCAN_SPLIT_BYTES)
    outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    assert spark.conf.get(keys[0]) == "10000"
    assert spark.conf.get(keys[1]) in ("134217728b", "134217728")
