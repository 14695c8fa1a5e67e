"""The day's result tables, written by compute and drift and read by publish and the summary:
``metrics_daily``, ``profiles_daily``, ``samples_daily``, ``drift_daily``,
``concept_drift_daily`` and ``alerts_daily`` (all partitioned by ds)."""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from offline_eval import failpoints
from offline_eval.io import profiles as profile_store
from offline_eval.stats.records import MetricRow

if TYPE_CHECKING:
    import pandas as pd

    from offline_eval.io.tables import Tables
    from offline_eval.metrics.day import DayResult


def write_day(tables: Tables, result: DayResult, *, metrics: bool = True,
              stage: Callable[[str], AbstractContextManager] = lambda _name: nullcontext()) -> dict[str, int]:
    """A day's evaluation: its metrics (unless it is a history day profiled for a reference),
    its profile and its sample. Each table's ds partition is replaced in one write.
    ``stage(name)`` is entered around each write (for whoever times them)."""
    from pyspark.sql import functions as F

    written = {}
    if metrics:
        with stage("write_metrics"):
            written["metrics_daily"] = tables.write_rows([MetricRow.of(m).to_row() for m in result.metrics],
                                                         "metrics_daily", ds=result.ds)
        failpoints.reach("results.between_writes")
        with stage("write_security"):
            written["security_daily"] = tables.write_rows(result.findings, "security_daily", ds=result.ds)
    with stage("write_profiles"):
        written["profiles_daily"] = profile_store.write_day(tables, result.profiles.values(), result.ds)
    with stage("write_sample"):
        tables.overwrite(result.sample.withColumn("ds", F.lit(result.ds)), "samples_daily",
                         expected_ds=[result.ds], check=False)
    return written


def by_version(rows: Iterable[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        out[(r["model_name"], r["model_version"])].append(r)
    return dict(out)


def day_rows(tables: Tables, table: str, dates: Iterable[str]) -> dict[str, list[dict]]:
    """{ds: rows} of a small result table over ``dates``."""
    out: dict[str, list[dict]] = defaultdict(list)
    for r in tables.rows(table, dates):
        out[r["ds"]].append(r)
    return dict(out)


def concept_rows(tables: Tables, dates: Iterable[str]) -> dict[str, list[dict]]:
    """concept_drift_daily with its buckets parsed."""
    return {ds: [{**r, "buckets": json.loads(r["buckets"]) if r["buckets"] else []} for r in rows]
            for ds, rows in day_rows(tables, "concept_drift_daily", dates).items()}


def sample(tables: Tables, ds: str, model_name: str, model_version: str) -> pd.DataFrame:
    """The stored sample of one version and day (empty if the day has none)."""
    from pyspark.sql import functions as F

    from offline_eval.contract import SAMPLES_DAILY

    df = tables.read_days("samples_daily", [ds]).where(
        (F.col("model_name") == model_name) & (F.col("model_version") == model_version))
    return df.select(*SAMPLES_DAILY.column_names[2:]).toPandas()
