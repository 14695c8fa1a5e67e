"""Deterministic bounded samples: at most N rows per model version, the same rows on every rerun."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_MASK53 = (1 << 53) - 1
# Pre-filter to about 1.5x the target before the exact top-N, so the sort stays small.
_OVERSAMPLE = 1.5


def bounded_sample(
    df: DataFrame,
    columns: Sequence[str],
    max_rows: int,
    seed: str,
    *,
    groups: Sequence[str] = ("model_name", "model_version"),
    keys: Sequence[str] = ("request_id", "item_id"),
    sizes: dict[tuple, int] | None = None,
) -> DataFrame:
    """Up to ``max_rows`` rows per group, chosen by a hash of (seed, keys): no ``rand()``,
    so reruns and any partitioning return the same rows. ``sizes``: the rows of each group,
    when the caller knows them (otherwise one grouped count finds them)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    u = F.xxhash64(F.lit(seed), *[F.col(k) for k in keys]).bitwiseAND(F.lit(_MASK53)) / F.lit(float(1 << 53))
    keep = F.lit(False)
    if sizes is None:
        sizes = {tuple(r[g] for g in groups): r["count"] for r in df.groupBy(*groups).count().collect()}
    for values, count in sorted(sizes.items(), key=lambda kv: tuple(map(str, kv[0]))):
        same_group = F.lit(True)
        for g, v in zip(groups, values, strict=True):
            same_group = same_group & F.col(g).eqNullSafe(v)
        keep = F.when(same_group, u < min(1.0, _OVERSAMPLE * max_rows / max(count, 1))).otherwise(keep)
    order = Window.partitionBy(*groups).orderBy(u, *keys)
    return (
        df.where(keep)
        .withColumn("_rank", F.row_number().over(order))
        .where(F.col("_rank") <= max_rows)
        .select(*groups, *columns)
    )
