"""Drift profiles in Spark: reference edges once, then histograms of every column in one pass.

* ``reference_profile``: for numeric columns, the reference's quantile edges on a fine grid
  (``GRID`` quantiles, one ``approxQuantile`` pass for all columns) plus count, missing,
  mean, std, min and max; then the reference histogram on those edges. For categorical
  columns, the value counts. Decile edges (for PSI) are the grid edges at 0.1 .. 0.9, so the
  decile counts are sums of grid counts.
* ``histograms``: counts of any data on given edges / categories, for all columns in a single
  ``mapInArrow`` pass (numpy ``searchsorted`` + ``bincount`` per Arrow batch). Only
  (column, bin, count) rows leave the executors, one set per partition: driver memory grows
  with partitions x columns x bins, never with rows.

Bins: bin 0 is (-inf, e0], bin k is (e_{k-1}, e_k], the last is (e_last, inf); nulls and NaN
are counted apart as missing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

import numpy as np

from offline_eval.stats.drift import MISSING, dense

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

GRID = 1000
DECILES = 10
ARROW_BATCH_ROWS = 200_000
QUANTILE_ERROR = 1e-4  # relative rank error of approxQuantile; edges only need to be fixed, not exact


def grid_probabilities(grid: int = GRID) -> list[float]:
    return [i / grid for i in range(1, grid)]


def decile_positions(edges_probs: Sequence[float]) -> list[int]:
    """Indexes of the grid edges at 0.1, ..., 0.9."""
    wanted = [k / DECILES for k in range(1, DECILES)]
    return [min(range(len(edges_probs)), key=lambda i: abs(edges_probs[i] - w)) for w in wanted]


def histograms(df: DataFrame, edges: Mapping[str, Sequence[float]], categorical: Sequence[str]) -> dict:
    """{column: {bin: count}} for numeric columns (bin MISSING for null/NaN) and
    {column: {value: count}} for categorical ones (None for null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    numeric = list(edges)
    cats = list(categorical)
    arrays = {c: np.asarray(edges[c], dtype=float) for c in numeric}
    schema = "column string, bin long, value string, n long"

    def count(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        num_acc = {c: np.zeros(len(arrays[c]) + 1, dtype=np.int64) for c in numeric}
        missing = dict.fromkeys(numeric, 0)
        cat_acc: dict[str, dict] = {c: {} for c in cats}
        for batch in batches:
            for c in numeric:
                x = batch.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False)
                ok = ~np.isnan(x)
                missing[c] += int(x.size - ok.sum())
                num_acc[c] += np.bincount(np.searchsorted(arrays[c], x[ok], side="left"),
                                          minlength=len(arrays[c]) + 1)
            for c in cats:
                vc = pc.value_counts(batch.column(c).cast(pa.string()))
                acc = cat_acc[c]
                for v, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                    acc[v] = acc.get(v, 0) + n
        cols, bins, values, ns = [], [], [], []
        for c in numeric:
            nz = np.flatnonzero(num_acc[c])
            cols += [c] * len(nz)
            bins += nz.tolist()
            values += [None] * len(nz)
            ns += num_acc[c][nz].tolist()
            if missing[c]:
                cols.append(c), bins.append(MISSING), values.append(None), ns.append(missing[c])
        for c in cats:
            for v, n in cat_acc[c].items():
                cols.append(c), bins.append(0), values.append(v), ns.append(n)
        yield pa.RecordBatch.from_arrays(
            [pa.array(cols, pa.string()), pa.array(bins, pa.int64()), pa.array(values, pa.string()),
             pa.array(ns, pa.int64())],
            names=["column", "bin", "value", "n"],
        )

    spark = df.sparkSession
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    previous = spark.conf.get(key, None)
    spark.conf.set(key, str(ARROW_BATCH_ROWS))  # fewer, larger batches: less per-batch overhead
    try:
        # Each partition emits at most columns x bins rows; they come back as Arrow and are
        # summed here, which saves a shuffle stage (driver memory: partitions x columns x bins).
        table = df.select(*numeric, *cats).mapInArrow(count, schema).toArrow()
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)
    out: dict[str, dict] = {c: {} for c in (*numeric, *cats)}
    for column, b, value, n in zip(*(table.column(k).to_pylist() for k in ("column", "bin", "value", "n"))):
        k = value if column in cats else int(b)
        acc = out[column]
        acc[k] = acc.get(k, 0) + int(n)
    return out


def reference_profile(df: DataFrame, numeric: Sequence[str], categorical: Sequence[str], grid: int = GRID) -> dict:
    """Everything later comparisons need from the reference, small enough to store as JSON."""
    from pyspark.sql import functions as F

    probs = grid_probabilities(grid)
    profile: dict = {"grid": grid, "numeric": {}, "categorical": {}}
    if numeric:
        dbl = df.select(*[F.col(c).cast("double").alias(c) for c in numeric])
        quantiles = dbl.approxQuantile(list(numeric), probs, QUANTILE_ERROR)
        aggs = []
        for c in numeric:
            valid = F.when(~F.isnan(c), F.col(c))
            aggs += [F.count(valid).alias(f"{c}__n"), F.avg(valid).alias(f"{c}__mean"),
                     F.stddev_samp(valid).alias(f"{c}__std"), F.min(valid).alias(f"{c}__min"),
                     F.max(valid).alias(f"{c}__max")]
        moments = dbl.agg(*aggs).first().asDict()
        deciles = decile_positions(probs)
        for c, q in zip(numeric, quantiles):
            # Repeated quantiles (discrete features) collapse to one edge; so do deciles.
            profile["numeric"][c] = {
                "edges": sorted(set(q)),
                "decile_edges": sorted({q[i] for i in deciles}) if q else [],
                "n": int(moments[f"{c}__n"] or 0),
                "mean": moments[f"{c}__mean"],
                "std": moments[f"{c}__std"],
                "min": moments[f"{c}__min"],
                "max": moments[f"{c}__max"],
            }
    hist = histograms(df, {c: profile["numeric"][c]["edges"] for c in numeric}, categorical)
    for c in numeric:
        profile["numeric"][c]["counts"] = dense(hist[c], len(profile["numeric"][c]["edges"]) + 1)
        profile["numeric"][c]["missing"] = hist[c].get(MISSING, 0)
    for c in categorical:
        profile["categorical"][c] = {"counts": {("__null__" if k is None else k): v for k, v in hist[c].items()}}
    return profile
