"""Client sessions of the Spark engine: every task is a thin Spark Connect client.

The engine is one long-lived Spark Connect server (``offline_eval.io.engine`` launches the
embedded one; on a cluster SPARK_REMOTE points at its endpoint). A client session costs
about half a second, shares the server's JVM, catalog and cache with every other task, and
holds no data of its own: the JVM starts once for the whole backfill, not twice a day.
"""
from __future__ import annotations

import socket
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from offline_eval.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class EngineUnavailable(RuntimeError):
    """No Spark Connect server answers at SPARK_REMOTE. Retryable: the engine may be restarting."""


def endpoint(remote: str) -> tuple[str, int]:
    """(host, port) of a Spark Connect URL ``sc://host:port/;params`` (port 15002 by default)."""
    url = urlparse(remote)
    return url.hostname or "localhost", url.port or 15002


def reachable(remote: str, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(endpoint(remote), timeout=timeout):
            return True
    except OSError:
        return False


def get_spark(settings: Settings | None = None, *, tag: str | None = None) -> SparkSession:
    """A client session of the engine at ``settings.spark_remote``, with the pipeline's session
    settings. ``tag`` labels the session's Spark jobs (visible in the Spark UI, and what
    ``interruptTag`` would cancel)."""
    from pyspark.sql import SparkSession

    settings = settings or Settings.from_env()
    if not reachable(settings.spark_remote):
        raise EngineUnavailable(
            f"no Spark engine answers at {settings.spark_remote}: start the embedded one with "
            "`make engine-up` (offline-eval engine start), or point SPARK_REMOTE at your cluster's "
            "Spark Connect endpoint (docs/deployment.md)")
    spark = SparkSession.builder.remote(settings.spark_remote).getOrCreate()
    configure(spark, settings)
    if tag:
        spark.addTag(tag)
    return spark


def configure(spark: SparkSession, settings: Settings | None = None) -> SparkSession:
    """Apply the pipeline's session settings to a session someone else created (an Airflow
    ``@task.pyspark`` task gets its session from the connection)."""
    for key, value in (settings or Settings.from_env()).session_conf().items():
        spark.conf.set(key, value)
    return spark
