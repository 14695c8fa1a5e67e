"""grouped_histograms against numpy / collections.Counter on the same rows: groups, two edge
sets, values exactly on an edge, nulls and NaN, a group without edges and a null group."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from offline_eval.metrics.drift import ARROW_BATCH_ROWS, grouped_histograms, histograms
from offline_eval.stats.drift import MISSING


def _bins(x: np.ndarray, edges: np.ndarray) -> dict[int, int]:
    """Bin k = (e[k-1], e[k]], by comparison (independent of searchsorted)."""
    x = np.asarray(x, dtype=float)
    valid = x[~np.isnan(x)]
    idx = (valid[:, None] > edges[None, :]).sum(axis=1)
    out = {int(k): int(n) for k, n in zip(*np.unique(idx, return_counts=True))}
    if np.isnan(x).any():
        out[MISSING] = int(np.isnan(x).sum())
    return out


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(7)
    n = 30_000
    x = np.round(rng.normal(size=n), 1)  # many values fall exactly on an edge
    x[::97] = np.nan
    y = rng.integers(0, 20, size=n).astype(float)
    grp = rng.choice(["v1", "v2", "v3"], size=n, p=[0.5, 0.3, 0.2]).astype(object)
    grp[::501] = None
    cat = rng.choice(["a", "b", "c", "d"], size=n).astype(object)
    cat[::333] = None
    return pd.DataFrame({"x": x, "y": y, "g": grp, "cat": cat})


def test_grouped_counts_equal_numpy(spark, frame):
    # Several partitions: per-partition counts are summed on the driver.
    df = spark.createDataFrame(frame.astype({"x": "float64"})).repartition(3)
    e1 = {"x": np.array([-1.0, -0.5, 0.0, 0.5, 1.0]), "y": np.array([2.0, 5.0, 5.5, 10.0])}
    e2 = {"x": np.array([0.0]), "y": np.array([7.0])}
    # v3 has edges in one set only; the null group is counted nowhere.
    sets = {"prev": {"v1": e1, "v2": e1, "v3": e1}, "base": {"v1": e2, "v2": e2}}
    got = grouped_histograms(df, "g", sets, ["cat"], groups=["v1", "v2", "v3"])
    for s, grp in sets.items():
        assert set(got["numeric"][s]) == set(grp)
        for g, cols in grp.items():
            rows = frame[frame["g"] == g]
            for c, e in cols.items():
                assert got["numeric"][s][g][c] == _bins(rows[c].to_numpy(), e), (s, g, c)
    for g in ("v1", "v2", "v3"):
        rows = frame[frame["g"] == g]
        assert got["categorical"][g]["cat"] == dict(Counter(rows["cat"].where(rows["cat"].notna(), None)))


def test_groups_found_when_not_given_and_ungrouped_histograms(spark, frame):
    df = spark.createDataFrame(frame)
    edges = np.array([-0.3, 0.3])
    got = grouped_histograms(df, "g", {"s": {g: {"x": edges} for g in ("v1", "v2")}}, [])
    assert got["numeric"]["s"]["v2"]["x"] == _bins(frame.loc[frame["g"] == "v2", "x"].to_numpy(), edges)
    whole = histograms(df, {"x": edges}, ["cat"])
    assert whole["x"] == _bins(frame["x"].to_numpy(), edges)
    assert sum(whole["cat"].values()) == len(frame)
    assert whole["cat"][None] == int(frame["cat"].isna().sum())


def test_batches_larger_than_the_arrow_batch_are_summed(spark):
    n = ARROW_BATCH_ROWS * 2 + 123
    df = spark.range(n).selectExpr("cast(id % 1000 as double) as x").coalesce(1)
    got = histograms(df, {"x": [99.0, 499.5]}, [])
    # 0..99 -> bin 0 (100 per 1000), 100..499 -> bin 1, 500..999 -> bin 2.
    full, rest = divmod(n, 1000)
    assert got["x"] == {0: full * 100 + min(rest, 100), 1: full * 400 + max(0, min(rest, 500) - 100),
                        2: full * 500 + max(0, rest - 500)}


def test_sql_nulls_and_nan_are_missing(spark):
    df = spark.range(100).selectExpr(
        "CASE WHEN id % 10 = 0 THEN NULL WHEN id % 10 = 1 THEN double('NaN') ELSE cast(id as double) END AS x",
        "CASE WHEN id % 4 = 0 THEN NULL ELSE cast(id % 3 as string) END AS c")
    got = histograms(df, {"x": [50.0]}, ["c"])
    # 80 valid values 2..99 (ending 2..9): 40 at or below 50, 40 above.
    assert got["x"] == {0: 40, 1: 40, MISSING: 20}
    assert got["c"] == {None: 25, **{str(k): sum(1 for i in range(100) if i % 4 and i % 3 == k) for k in range(3)}}


def test_infinities_are_values_and_integer_columns_are_binned(spark):
    # +inf / -inf are values (last / first bin), not missing; a long column with nulls is
    # binned on its double value. Worked out by hand from the 12 rows.
    df = spark.createDataFrame(
        [(float("inf"), 1), (float("-inf"), None), (float("nan"), 5), (None, 7), (0.5, 2), (2.0, 2),
         (float("inf"), 9), (1.0, None), (-3.0, 0), (1.5, 4), (2.5, 1), (1.0, 3)],
        "x double, k long")
    got = histograms(df, {"x": [0.0, 1.0, 2.0], "k": [2.0, 4.0]}, [])
    # x: (-inf,0]: -inf, -3 -> 2; (0,1]: 0.5, 1, 1 -> 3; (1,2]: 2, 1.5 -> 2; (2,inf): inf, inf, 2.5 -> 3.
    assert got["x"] == {0: 2, 1: 3, 2: 2, 3: 3, MISSING: 2}
    # k: <=2: 1, 2, 2, 0, 1 -> 5; (2,4]: 4, 3 -> 2; >4: 5, 7, 9 -> 3; null x2.
    assert got["k"] == {0: 5, 1: 2, 2: 3, MISSING: 2}
