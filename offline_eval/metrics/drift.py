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

from offline_eval.stats.drift import MISSING, OTHER, dense

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
    out = grouped_histograms(df, None, {"": {"": edges}}, categorical)
    return {**out["numeric"][""].get("", {c: {} for c in edges}), **out["categorical"].get("", {c: {} for c in categorical})}


def grouped_histograms(df: DataFrame, group_col: str | None, edge_sets: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]],
                       categorical: Sequence[str]) -> dict:
    """Histograms of every group of ``df`` on several edge sets at once, in one pass.

    ``edge_sets``: {set name: {group: {column: edges}}} (e.g. the previous day's and the weekly
    baseline's edges of each model version). Returns {"numeric": {set: {group: {column: {bin:
    count}}}}, "categorical": {group: {column: {value: count}}}}. With ``group_col`` None
    the whole frame is one group named "".
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    sets = {s: {g: {c: np.asarray(e, dtype=float) for c, e in cols.items()} for g, cols in groups.items()}
            for s, groups in edge_sets.items()}
    numeric = sorted({c for groups in sets.values() for cols in groups.values() for c in cols})
    cats = list(categorical)
    schema = "set string, grp string, column string, bin long, value string, n long"

    def count(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        num_acc: dict[tuple, np.ndarray] = {}
        missing: dict[tuple, int] = {}
        cat_acc: dict[tuple, dict] = {}
        for batch in batches:
            if group_col is None:
                parts = {"": None}
            else:
                keys = batch.column(group_col).cast(pa.string())
                parts = {g: pc.equal(keys, g) for g in pc.unique(keys).to_pylist() if g is not None}
            for g, mask in parts.items():
                sub = batch if mask is None else batch.filter(mask)
                values = {}
                for s, groups in sets.items():
                    for c, e in groups.get(g, {}).items():
                        if c not in values:
                            x = sub.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False)
                            values[c] = (x[~np.isnan(x)], int(np.isnan(x).sum()))
                        x, nmiss = values[c]
                        key = (s, g, c)
                        acc = num_acc.setdefault(key, np.zeros(len(e) + 1, dtype=np.int64))
                        acc += np.bincount(np.searchsorted(e, x, side="left"), minlength=len(e) + 1)
                        missing[key] = missing.get(key, 0) + nmiss
                for c in cats:
                    vc = pc.value_counts(sub.column(c).cast(pa.string()))
                    acc = cat_acc.setdefault((g, c), {})
                    for v, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                        acc[v] = acc.get(v, 0) + n
        out: dict[str, list] = {k: [] for k in ("set", "grp", "column", "bin", "value", "n")}

        def emit(s, g, c, b, v, n):
            for k, x in zip(out, (s, g, c, b, v, n)):
                out[k].append(x)

        for (s, g, c), acc in num_acc.items():
            for b in np.flatnonzero(acc).tolist():
                emit(s, g, c, b, None, int(acc[b]))
            if missing[(s, g, c)]:
                emit(s, g, c, MISSING, None, missing[(s, g, c)])
        for (g, c), acc in cat_acc.items():
            for v, n in acc.items():
                emit(None, g, c, 0, v, n)
        types = (pa.string(), pa.string(), pa.string(), pa.int64(), pa.string(), pa.int64())
        yield pa.RecordBatch.from_arrays([pa.array(out[k], t) for k, t in zip(out, types)], names=list(out))

    spark = df.sparkSession
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    previous = spark.conf.get(key, None)
    spark.conf.set(key, str(ARROW_BATCH_ROWS))  # fewer, larger batches: less per-batch overhead
    try:
        # Each partition emits at most sets x groups x columns x bins rows; they come back as
        # Arrow and are summed here, which saves a shuffle stage (driver memory: partitions x
        # columns x bins, never rows).
        cols = [*numeric, *[c for c in cats if c not in numeric]]
        if group_col is not None:
            cols.append(group_col)
        table = df.select(*cols).mapInArrow(count, schema).toArrow()
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)
    result: dict = {"numeric": {s: {} for s in edge_sets}, "categorical": {}}
    for s, g, column, b, value, n in zip(*(table.column(k).to_pylist() for k in ("set", "grp", "column", "bin", "value", "n"))):
        if s is None:
            acc = result["categorical"].setdefault(g, {c: {} for c in cats})[column]
            acc[value] = acc.get(value, 0) + int(n)
        else:
            acc = result["numeric"][s].setdefault(g, {c: {} for c in edge_sets[s].get(g, {})})[column]
            acc[int(b)] = acc.get(int(b), 0) + int(n)
    return result


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


PERCENTILE_ACCURACY = 10_000  # percentile_approx: relative rank error 1 / accuracy, as QUANTILE_ERROR
RARE_SHARE = 0.001  # stored categorical baselines fold values rarer than this into OTHER
MAX_CATEGORIES = 100


def fold_rare(counts: Mapping[str, int], rare_share: float = RARE_SHARE, keep: int = MAX_CATEGORIES) -> dict[str, int]:
    """Keep the ``keep`` most frequent values with at least ``rare_share`` of the rows; the
    rest become OTHER (so that a baseline stays small and a long tail cannot dominate chi-square)."""
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    out: dict[str, int] = {}
    for i, (value, n) in enumerate(ranked):
        if i < keep and total and n / total >= rare_share and value != OTHER:
            out[value] = n
        else:
            out[OTHER] = out.get(OTHER, 0) + n
    return out


def grouped_profiles(df: DataFrame, group_col: str, numeric: Sequence[str], categorical: Sequence[str],
                     grid: int = GRID) -> dict[str, dict]:
    """``reference_profile`` of every group of ``df`` (e.g. model versions) in one aggregation
    (``percentile_approx`` per group) plus one histogram pass; rare categories folded."""
    from pyspark.sql import functions as F

    probs = grid_probabilities(grid)
    aggs = []
    for c in numeric:
        x = F.col(c).cast("double")
        v = F.when(~F.isnan(x), x)
        aggs += [F.percentile_approx(v, probs, PERCENTILE_ACCURACY).alias(f"{c}__q"), F.count(v).alias(f"{c}__n"),
                 F.avg(v).alias(f"{c}__mean"), F.stddev_samp(v).alias(f"{c}__std"), F.min(v).alias(f"{c}__min"),
                 F.max(v).alias(f"{c}__max")]
    if not aggs:
        aggs = [F.count("*").alias("__rows")]
    stats_rows = {r[group_col]: r.asDict() for r in df.groupBy(group_col).agg(*aggs).collect() if r[group_col] is not None}
    deciles = decile_positions(probs)
    profiles: dict[str, dict] = {}
    for g, row in stats_rows.items():
        prof: dict = {"grid": grid, "numeric": {}, "categorical": {}}
        for c in numeric:
            q = [x for x in (row[f"{c}__q"] or []) if x is not None]
            prof["numeric"][c] = {
                "edges": sorted(set(q)), "decile_edges": sorted({q[i] for i in deciles}) if len(q) == len(probs) else sorted(set(q)),
                "n": int(row[f"{c}__n"] or 0), "mean": row[f"{c}__mean"], "std": row[f"{c}__std"],
                "min": row[f"{c}__min"], "max": row[f"{c}__max"],
            }
        profiles[g] = prof
    hist = grouped_histograms(df, group_col, {"ref": {g: {c: p["numeric"][c]["edges"] for c in numeric}
                                                      for g, p in profiles.items()}}, categorical)
    for g, prof in profiles.items():
        counts = hist["numeric"]["ref"].get(g, {})
        for c in numeric:
            ref = prof["numeric"][c]
            ref["counts"] = dense(counts.get(c, {}), len(ref["edges"]) + 1)
            ref["missing"] = counts.get(c, {}).get(MISSING, 0)
        cat_counts = hist["categorical"].get(g, {})
        for c in categorical:
            raw = {("__null__" if k is None else k): v for k, v in cat_counts.get(c, {}).items()}
            prof["categorical"][c] = {"counts": fold_rare(raw)}
    return profiles
