"""SparkSession for the embedded stack and for spark-submit alike."""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from offline_eval.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_env(settings: Settings) -> dict[str, str]:
    """Environment a Spark driver needs: workers must use this interpreter, not system python3."""
    return {
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
        "PYSPARK_DRIVER_PYTHON": os.environ.get("PYSPARK_DRIVER_PYTHON", sys.executable),
        "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
    }


def get_spark(app_name: str, settings: Settings | None = None, *, hive: bool = True) -> SparkSession:
    """Return the active session (spark-submit) or build a local one with Hive support.

    ``hive=False`` is for commands on plain files (readout, drift): they need no metastore,
    so they never wait for, or lock, the embedded Derby database.

    Under spark-submit the master and properties come from the submit command (see
    ``Settings.spark_conf``); builder settings below only fill what is not set yet.
    """
    from pyspark.sql import SparkSession

    settings = settings or Settings.from_env()
    for key, value in spark_env(settings).items():
        os.environ.setdefault(key, value)
    settings.home.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.appName(app_name)
    if "spark.master" not in os.environ.get("PYSPARK_SUBMIT_ARGS", "") and not _under_spark_submit():
        builder = builder.master(settings.spark_master)
    conf = settings.spark_conf()
    if not hive:
        conf = {k: v for k, v in conf.items() if "derby" not in v and "jdo" not in k}
        conf["spark.sql.catalogImplementation"] = "in-memory"
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = (builder.enableHiveSupport() if hive else builder).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _under_spark_submit() -> bool:
    # spark-submit starts the JVM first and hands the gateway to Python through these.
    return "PYSPARK_GATEWAY_PORT" in os.environ or "SPARK_SUBMIT_OPTS" in os.environ
