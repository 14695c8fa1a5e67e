"""Plain input files (CSV or Parquet) read through the engine, for the commands that work on
any table (`offline-eval readout`, `offline-eval drift`)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from offline_eval.config import ConfigError
from offline_eval.errors import DataError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def read_table(spark: SparkSession, path: str) -> DataFrame:
    """CSV (header, inferred types) or Parquet by extension; a clear error for anything else.

    The path is made absolute: the engine resolves it, and its working directory is not the
    caller's. (A file on this machine is visible to the embedded engine; a cluster needs a
    path on storage its executors share.)"""
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise DataError(f"input {path} does not exist")
    if p.suffix.lower() in (".csv", ".txt"):
        return spark.read.option("header", True).option("inferSchema", True).csv(str(p))
    if p.suffix.lower() in (".parquet", ".pq") or p.is_dir():
        return spark.read.parquet(str(p))
    raise ConfigError(f"input {path}: expected a .csv or .parquet file (or a Parquet directory)")
