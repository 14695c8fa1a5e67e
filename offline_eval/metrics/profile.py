"""Column profiles in Spark: one pass counts every numeric column on the fixed grid of
``stats.grid`` with its moments, one JVM aggregation counts every categorical value.

* Numeric columns go to Python as Arrow (``mapInArrow``; doubles and a small int group code
  only, strings are slow to convert). Per batch and column: ``numpy.unique`` (one sort) gives
  the distinct values and their counts, ``searchsorted`` puts the distinct values on the grid,
  and count, mean, sum of squared deviations, min and max are taken on the same array. Only
  (group, column, bucket, count) rows and one row of moments per partition leave the
  executors: driver memory grows with columns x occupied buckets, never with rows.
* Categorical columns are counted in the JVM: one row per (group, column, value) from
  ``inline`` + ``groupBy``; their strings never cross to Python.

Nulls and NaN are counted apart as missing; -inf and +inf are values (the outer buckets).
Integer columns are profiled as doubles.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from offline_eval.stats import grid
from offline_eval.stats.profile import NULL, NumericProfile

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

ARROW_BATCH_ROWS = 200_000
SCAN_SPLIT_BYTES = 1 << 30
MISSING = -1  # bucket id of the per-partition row that carries missing count and moments
_GROUP = "__grp"

Group = tuple  # the values of the group columns


def group_codes(df: DataFrame, group_cols: Sequence[str], groups: Sequence[Group] | None = None
                ) -> tuple[list[Group], Column | None]:
    """The groups present (given, or found by one small distinct query) and an int expression
    that numbers them (None when there are no group columns: the whole frame is one group, ``()``)."""
    from pyspark.sql import functions as F

    if not group_cols:
        return [()], None
    if groups is None:
        groups = [tuple(r) for r in df.select(*group_cols).distinct().collect()]
    groups = sorted({tuple(g) for g in groups if all(v is not None for v in g)})
    code: Column | None = None
    for i, g in enumerate(groups):
        conds = [F.col(col) == F.lit(value) for col, value in zip(group_cols, g, strict=True)]
        cond = functools.reduce(lambda a, b: a & b, conds)
        code = F.when(cond, i) if code is None else code.when(cond, i)
    return groups, (code.otherwise(-1) if code is not None else F.lit(-1))


def numeric_profiles(df: DataFrame, group_cols: Sequence[str], columns: Sequence[str],
                     groups: Sequence[Group] | None = None) -> dict[Group, dict[str, NumericProfile]]:
    """{group: {column: NumericProfile}} of every group of ``df`` in one pass (``groups``: the
    groups present, when the caller knows them)."""
    groups, code = group_codes(df, group_cols, groups)
    out: dict[Group, dict[str, NumericProfile]] = {g: {} for g in groups}
    if not columns or not groups:
        return out
    with scan_conf(df.sparkSession):
        table = _grid_counts(df, code, list(columns)).toArrow()
    counts: dict[tuple, dict[int, int]] = {}
    moments: dict[tuple, list] = {}
    cols = (table.column(k).to_pylist() for k in ("grp", "column", "bucket", "n", "valid", "mean", "m2", "min", "max"))
    for gi, column, bucket, n, valid, mean, m2, lo, hi in zip(*cols, strict=True):
        key = (gi, column)
        if bucket == MISSING:
            moments.setdefault(key, []).append((n, valid, mean, m2, lo, hi))
        else:
            acc = counts.setdefault(key, {})
            acc[bucket] = acc.get(bucket, 0) + n
    for gi, g in enumerate(groups):
        for column in columns:
            out[g][column] = _profile(counts.get((gi, column), {}), moments.get((gi, column), []))
    return out


def _profile(counts: dict[int, int], parts: list[tuple]) -> NumericProfile:
    """Merge per-partition moments (Chan et al.) into one profile."""
    n, mean, m2 = 0, 0.0, 0.0
    missing, lo, hi = 0, None, None
    for miss, valid, pmean, pm2, pmin, pmax in parts:
        missing += miss
        if not valid:
            continue
        total = n + valid
        delta = pmean - mean
        mean += delta * valid / total
        m2 += pm2 + delta * delta * n * valid / total
        n = total
        lo = pmin if lo is None else min(lo, pmin)
        hi = pmax if hi is None else max(hi, pmax)
    return NumericProfile.from_counts(counts, missing=missing, mean=mean if n else None,
                                      std=float(np.sqrt(m2 / (n - 1))) if n > 1 else None, min=lo, max=hi)


def _grid_counts(df: DataFrame, code: Column | None, columns: list[str]) -> DataFrame:
    """(grp, column, bucket, n, valid, mean, m2, min, max): grid counts of every partition, and
    per partition, group and column one MISSING row with the missing count and the moments."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    boundaries = grid.BOUNDARIES  # captured by value: the workers need numpy and pyarrow only
    grouped = code is not None
    schema = "grp int, column string, bucket long, n long, valid long, mean double, m2 double, min double, max double"

    def count(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        acc: dict[tuple[int, str], np.ndarray] = {}
        mom: dict[tuple[int, str], list[float]] = {}  # missing, valid, mean, m2, min, max
        for batch in batches:
            codes = batch.column(_GROUP).to_numpy(zero_copy_only=False) if grouped else None
            present = [0] if codes is None else [int(g) for g in np.unique(codes) if g >= 0]
            for gi in present:
                mask = None if codes is None or len(present) == 1 and (codes == gi).all() else codes == gi
                rows = batch if mask is None else batch.filter(pa.array(mask))
                for c in columns:
                    x = rows.column(c).to_numpy(zero_copy_only=False).astype(float, copy=False)  # null -> NaN
                    x = x[~np.isnan(x)]
                    key = (gi, c)
                    m = mom.setdefault(key, [0, 0, 0.0, 0.0, np.inf, -np.inf])
                    m[0] += rows.num_rows - len(x)
                    if not len(x):
                        continue
                    values, n = np.unique(x, return_counts=True)
                    b = np.searchsorted(boundaries, values, side="left")
                    if key not in acc:
                        acc[key] = np.zeros(len(boundaries) + 1, dtype=np.int64)
                    acc[key] += np.bincount(b, weights=n, minlength=len(boundaries) + 1).astype(np.int64)
                    # Chan et al.: merge this batch's (count, mean, M2) into the running ones.
                    bmean = float(values @ n) / len(x)
                    bm2 = float(((values - bmean) ** 2) @ n)
                    total = m[1] + len(x)
                    delta = bmean - m[2]
                    m[2] += delta * len(x) / total
                    m[3] += bm2 + delta * delta * m[1] * len(x) / total
                    m[1] = total
                    m[4], m[5] = min(m[4], float(values[0])), max(m[5], float(values[-1]))
        out: dict[str, list] = {k: [] for k in ("grp", "column", "bucket", "n", "valid", "mean", "m2", "min", "max")}
        for (gi, c), a in acc.items():
            nz = np.flatnonzero(a)
            out["grp"] += [gi] * len(nz)
            out["column"] += [c] * len(nz)
            out["bucket"] += nz.tolist()
            out["n"] += a[nz].tolist()
            for k in ("valid", "mean", "m2", "min", "max"):
                out[k] += [None] * len(nz)
        for (gi, c), (missing, valid, mean, m2, lo, hi) in mom.items():
            for k, v in zip(out, (gi, c, MISSING, missing, valid, mean if valid else None, m2 if valid else None,
                                  lo if valid else None, hi if valid else None), strict=True):
                out[k].append(v)
        yield pa.RecordBatch.from_pydict(out, schema=pa.schema([
            ("grp", pa.int32()), ("column", pa.string()), ("bucket", pa.int64()), ("n", pa.int64()),
            ("valid", pa.int64()), ("mean", pa.float64()), ("m2", pa.float64()), ("min", pa.float64()),
            ("max", pa.float64())]))

    selected = [(code if grouped and code is not None else F.lit(0)).cast("int").alias(_GROUP)]
    selected += [F.col(c).cast("double").alias(c) for c in columns]
    return df.select(*selected).where(F.col(_GROUP) >= 0).mapInArrow(count, schema)


def categorical_counts(
    df: DataFrame, group_cols: Sequence[str], columns: Sequence[str]
) -> dict[Group, dict[str, dict[str, int]]]:
    """{group: {column: {value: count}}} in one JVM aggregation; a null value counts as NULL."""
    from pyspark.sql import functions as F

    if not columns:
        return {}
    pairs = F.inline(F.array(*[F.struct(F.lit(c).alias("column"), F.col(c).cast("string").alias("value"))
                               for c in columns]))
    rows = (df.select(*[F.col(g) for g in group_cols], pairs).groupBy(*group_cols, "column", "value").count()
            .collect())
    out: dict[Group, dict[str, dict[str, int]]] = {}
    for r in rows:
        g = tuple(r[c] for c in group_cols)
        if any(v is None for v in g):
            continue
        acc = out.setdefault(g, {c: {} for c in columns})[r["column"]]
        value = NULL if r["value"] is None else r["value"]
        acc[value] = acc.get(value, 0) + int(r["count"])
    return out


@contextmanager
def scan_conf(spark):
    """Session settings for a profile scan, reset to Spark's defaults afterwards.

    * ``spark.sql.execution.arrow.maxRecordsPerBatch``: 200k-row Arrow batches, so each
      Python call works on a large array (numpy's per-call overhead amortised).
    * ``spark.sql.files.maxPartitionBytes``: input splits of up to 1 GiB, so a scan uses about
      one split per core (the effective split size is min(this, bytes / cores)). A profile
      scan has a tiny output, so fewer, larger tasks only save per-task costs (an Arrow stream
      to a Python worker each).

    The pipeline's session settings (``Settings.session_conf``) never set these two, so the
    end state is Spark's defaults. Restoring "the previous values" instead would race when
    tasks share one engine session: a second scan that started inside the first would take
    the scan values for the previous ones and leave them set for good. They change split and
    batch sizes only, never results.
    """
    wanted = {"spark.sql.execution.arrow.maxRecordsPerBatch": str(ARROW_BATCH_ROWS),
              "spark.sql.files.maxPartitionBytes": str(SCAN_SPLIT_BYTES)}
    for k, v in wanted.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k in wanted:
            spark.conf.unset(k)
