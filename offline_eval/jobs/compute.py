"""compute: evaluate one validated day from its snapshot (the partitions validate cached in the
engine) and write, for ds only, ``metrics_daily``, ``profiles_daily`` and ``samples_daily``.

Nothing here compares the day with a reference: that needs the profiles of earlier days and
is the work of the baselines and drift tasks that follow. So compute of any two days can run
side by side.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from offline_eval import thresholds
from offline_eval.config import DayConfig, Settings
from offline_eval.contract import INPUT_TABLES, OUTPUT_TABLES
from offline_eval.io.results import write_day
from offline_eval.io.snapshot import DaySnapshot
from offline_eval.io.spark import get_spark
from offline_eval.io.tables import Tables
from offline_eval.io.validation import validate_day
from offline_eval.metrics.day import evaluate

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def run(day: DayConfig, settings: Settings | None = None, spark: SparkSession | None = None) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    spark = spark or get_spark(settings, tag=f"offline-eval-compute-{day.ds}")
    tables = Tables(spark, settings)
    tables.ensure(OUTPUT_TABLES.values())
    snapshot = DaySnapshot(tables, day.ds)
    if not snapshot.exists(INPUT_TABLES):
        log.warning("no validated snapshot of ds=%s in the engine (it restarted, or validate ran on another "
                    "engine): validating the day again before computing it", day.ds)
        validate_day(tables, day)
    t0 = time.monotonic()
    prior = tables.read_range("orders", day.ds_offset(-day.repurchase_lookback_days), day.ds_offset(-1))
    result = evaluate(snapshot.read, prior, day, thresholds.load().defaults, workers=settings.evaluate_workers)
    t1 = time.monotonic()
    written = write_day(tables, result)
    snapshot.drop(INPUT_TABLES)
    log.info("ds=%s: %d metric rows, profiles of %s (%.1fs), written in %.1fs", day.ds, written["metrics_daily"],
             ", ".join(f"{n} {v}" for n, v in result.models), t1 - t0, time.monotonic() - t1)
    return {"ds": day.ds, "metrics_rows": written["metrics_daily"], "models": [list(m) for m in result.models]}
