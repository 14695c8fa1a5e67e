"""Clients of the engine join one server session (offline_eval.io.spark): computed alike in every
process, kept when a client closes, replaced by a private one when someone released it."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime

import pytest

from offline_eval.io.spark import shared_session_id, with_session_id

CONF = {"spark.sql.shuffle.partitions": "4", "spark.sql.session.timeZone": "UTC"}


def test_the_shared_session_is_one_per_endpoint_settings_and_utc_hour():
    at = datetime(2026, 6, 18, 10, 5, tzinfo=UTC)
    one = shared_session_id("sc://engine:15002", CONF, at)
    assert uuid.UUID(one).version == 5
    # Same endpoint (credentials are not part of the session), same settings, same hour.
    assert shared_session_id("sc://engine:15002/;token=abc;use_ssl=true", dict(reversed(CONF.items())),
                             datetime(2026, 6, 18, 10, 59, 59, tzinfo=UTC)) == one
    # 12:30 in UTC+2 is 10:30 UTC: the same hour.
    from datetime import timedelta, timezone
    assert shared_session_id("sc://engine:15002", CONF,
                             datetime(2026, 6, 18, 12, 30, tzinfo=timezone(timedelta(hours=2)))) == one
    assert shared_session_id("sc://engine:15002", CONF, datetime(2026, 6, 18, 11, 0, tzinfo=UTC)) != one
    assert shared_session_id("sc://engine:15003", CONF, at) != one
    assert shared_session_id("sc://engine:15002", {**CONF, "spark.sql.shuffle.partitions": "8"}, at) != one


@pytest.mark.parametrize("remote, params", [
    ("sc://engine:15002", {}),
    ("sc://engine:15002/", {}),
    ("sc://engine:15002/;token=abc;user_id=eval", {"token": "abc", "user_id": "eval"}),
    ("sc://engine:15002/;session_id=11111111-1111-1111-1111-111111111111;use_ssl=true", {"use_ssl": "true"}),
])
def test_the_session_id_joins_the_other_parameters_of_the_url(remote, params):
    from pyspark.sql.connect.client import DefaultChannelBuilder

    sid = "5d0f3c1e-7a44-4c55-9b1e-0ffe1e7a1c0d"
    built = DefaultChannelBuilder(with_session_id(remote, sid))  # Spark's own parser of the URL
    assert built.endpoint == "engine:15002"
    assert built.session_id == sid
    assert {k: v for k, v in built._params.items() if k != "session_id"} == params


@pytest.fixture
def same_hour():
    """The clients of a test compute the same hour's session: not started in its last 90 seconds."""
    import time

    now = datetime.now(UTC)
    left = 3600 - (now.minute * 60 + now.second)
    if left < 90:
        time.sleep(left + 1)


def _client(settings, code: str, partitions: int) -> subprocess.CompletedProcess:
    """``code`` in another process, with ``spark`` a client of the test engine whose session
    settings differ from other tests' by the shuffle partitions."""
    script = textwrap.dedent("""
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(levelname)s %(message)s")
        from offline_eval.io.spark import get_spark
        spark = get_spark()
    """) + textwrap.dedent(code)
    env = {**os.environ, "SPARK_REMOTE": settings.spark_remote, "OFFLINE_EVAL_SHUFFLE_PARTITIONS": str(partitions)}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)


def test_clients_in_other_processes_share_one_session_and_closing_one_keeps_it(engine, settings, same_hour):
    from pyspark.errors import AnalysisException

    # A session-scoped temporary view is visible to exactly the clients of its server session.
    made = _client(settings, """
        from pyspark.sql import functions as F  # the process is in Spark Connect mode
        spark.range(7).where(F.col("id") >= 0).createOrReplaceTempView("joined_probe")
        spark.stop()  # closes this client; the session stays
    """, partitions=5)
    assert made.returncode == 0, made.stderr[-2000:]
    read = _client(settings, """
        print("rows", spark.table("joined_probe").count(), spark.conf.get("spark.sql.shuffle.partitions"))
    """, partitions=5)
    assert read.returncode == 0, read.stderr[-2000:]
    assert "rows 7 5" in read.stdout
    # Other session settings, another session: the view is not there.
    other = _client(settings, """
        spark.table("joined_probe").count()
    """, partitions=6)
    assert other.returncode != 0 and "joined_probe" in other.stderr
    # And with sharing off, a session of its own.
    env_off = {**os.environ, "SPARK_REMOTE": settings.spark_remote, "OFFLINE_EVAL_SHUFFLE_PARTITIONS": "5",
               "OFFLINE_EVAL_SHARED_SESSION": "0"}
    private = subprocess.run([sys.executable, "-c", "from offline_eval.io.spark import get_spark\n"
                              "get_spark().table('joined_probe').count()"],
                             env=env_off, capture_output=True, text=True, timeout=300)
    assert private.returncode != 0 and "joined_probe" in private.stderr
    with pytest.raises(AnalysisException):  # this process's own client is in neither session
        from offline_eval.io.spark import get_spark
        get_spark(settings).table("joined_probe").count()


def test_a_released_shared_session_is_replaced_by_a_private_one_with_a_warning(engine, settings, same_hour):
    released = _client(settings, """
        spark.range(3).createOrReplaceTempView("released_probe")
        spark.client.release_session()  # what a careless client could do
    """, partitions=7)
    assert released.returncode == 0, released.stderr[-2000:]
    after = _client(settings, """
        print("sum", spark.range(4).groupBy().sum("id").collect()[0][0])
        print("view", spark.catalog.tableExists("released_probe"))
    """, partitions=7)
    assert after.returncode == 0, after.stderr[-2000:]
    assert "sum 6" in after.stdout  # 0+1+2+3
    assert "view False" in after.stdout  # a new session
    assert "shared session of this hour was released" in after.stdout


def test_a_session_reads_a_partition_that_another_session_overwrote(engine, settings):
    """Two server sessions of the engine, as when a task runs across the hour and a task of the
    new hour (a rerun) rewrites a partition: the first session listed the partition's files,
    the second replaces them, and the first must read the new rows, not the deleted files."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from offline_eval.io.spark import configure

    def session() -> SparkSession:
        url = with_session_id(settings.spark_remote, str(uuid.uuid4()))
        return configure(SparkSession.builder.remote(url).create(), settings)

    first, second = session(), session()
    table = f"{settings.database}.listing_probe"
    first.sql(f"CREATE DATABASE IF NOT EXISTS {settings.database}")
    first.sql(f"DROP TABLE IF EXISTS {table}")
    first.sql(f"CREATE TABLE {table} (v BIGINT, ds STRING) USING parquet PARTITIONED BY (ds)")

    def total(spark: SparkSession) -> int:
        return spark.table(table).where(F.col("ds") == "2026-06-18").agg(F.sum("v")).first()[0]

    try:
        first.range(3).select(F.col("id").alias("v"), F.lit("2026-06-18").alias("ds")).write.insertInto(table)
        assert total(first) == 0 + 1 + 2  # the first session has listed the partition's files
        second.range(10, 15).select(F.col("id").alias("v"), F.lit("2026-06-18").alias("ds")) \
            .write.insertInto(table, overwrite=True)
        assert total(second) == 10 + 11 + 12 + 13 + 14
        assert total(first) == 10 + 11 + 12 + 13 + 14
    finally:
        first.sql(f"DROP TABLE IF EXISTS {table}")
        for s in (first, second):
            s.client.release_session()
            s.stop()
