"""validate: the GX gate on one day's input partitions (``offline_eval.io.validation``); its result
JSON and Data Docs site land in reports/validation/<ds>/."""
from __future__ import annotations

from typing import TYPE_CHECKING

from offline_eval.config import DayConfig, Settings
from offline_eval.io.spark import get_spark
from offline_eval.io.tables import Tables
from offline_eval.io.validation import validate_day

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run(day: DayConfig, settings: Settings | None = None, spark: SparkSession | None = None,
        tables_to_check: tuple[str, ...] | None = None) -> dict:
    settings = settings or Settings.from_env()
    spark = spark or get_spark(settings, tag=f"offline-eval-validate-{day.ds}")
    return validate_day(Tables(spark, settings), day, tables_to_check)
