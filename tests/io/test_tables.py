from __future__ import annotations

import pytest

from offline_eval.config import ConfigError
from offline_eval.io.tables import MissingPartitionError, Tables

pytestmark = pytest.mark.spark

ROW = ("m", "v1", "control", "all", "ctr", 0.5, 1.0, 2.0)


def _metrics(spark, ds: str, value: float):
    return spark.createDataFrame(
        [(*ROW[:5], value, *ROW[6:], ds)],
        "model_name string, model_version string, variant string, segment string, metric string, "
        "value double, numerator double, denominator double, ds string",
    )


def test_overwrite_replaces_only_its_partition(spark, settings):
    tables = Tables(spark, settings)
    tables.ensure()
    tables.overwrite(_metrics(spark, "2030-01-01", 0.1), "metrics_daily", expected_ds=["2030-01-01"])
    tables.overwrite(_metrics(spark, "2030-01-02", 0.2), "metrics_daily", expected_ds=["2030-01-02"])
    tables.overwrite(_metrics(spark, "2030-01-01", 0.3), "metrics_daily", expected_ds=["2030-01-01"])
    got = {r.ds: r.value for r in tables.read_range("metrics_daily", "2030-01-01", "2030-01-02").collect()}
    assert got == {"2030-01-01": 0.3, "2030-01-02": 0.2}


def test_overwrite_refuses_partitions_it_was_not_given(spark, settings):
    tables = Tables(spark, settings)
    tables.ensure()
    with pytest.raises(ValueError, match=r"partitions \['2030-02-02'\] outside \['2030-02-01'\]"):
        tables.overwrite(_metrics(spark, "2030-02-02", 0.1), "metrics_daily", expected_ds=["2030-02-01"])
    assert not tables.has_partition("metrics_daily", "2030-02-02")


def test_missing_partition_error_names_table_and_ds(spark, settings):
    tables = Tables(spark, settings)
    tables.ensure()
    with pytest.raises(
        MissingPartitionError, match=r"offline_eval_test.metrics_daily: partition ds=2031-01-01 does not exist"
    ):
        tables.read("metrics_daily", "2031-01-01")


def test_table_names_are_validated_before_sql(spark, settings):
    with pytest.raises(ConfigError):
        Tables(spark, settings).read("orders; drop table users", "2030-01-01")


def test_a_table_from_another_release_is_refused_by_name(spark, settings):
    from offline_eval.errors import DataError

    tables = Tables(spark, settings)
    tables.ensure()
    spark.sql(
        f"CREATE TABLE {tables.qualified('alerts_old_shape')} (a int, ds string) USING parquet PARTITIONED BY (ds)"
    )
    from offline_eval.contract import ALERTS_DAILY, TableSpec

    renamed = TableSpec("alerts_old_shape", ALERTS_DAILY.columns, ALERTS_DAILY.keys, "")
    with pytest.raises(DataError, match=r"alerts_old_shape has columns \['a', 'ds'\].*check: table_schema"):
        tables.ensure([renamed])


def test_write_rows_replaces_the_partition_and_drops_it_when_empty(spark, settings):
    tables = Tables(spark, settings)
    tables.ensure()
    row = {"model_name": "m", "model_version": "v1", "variant": "control", "segment": "all", "metric": "ctr",
           "value": 0.5, "numerator": 1.0, "denominator": 2.0}
    assert tables.write_rows([row, {**row, "metric": "cvr"}], "metrics_daily", ds="2030-03-01") == 2
    assert tables.write_rows([{**row, "value": 0.7}], "metrics_daily", ds="2030-03-01") == 1
    assert [(r["metric"], r["value"]) for r in tables.rows("metrics_daily", ["2030-03-01"])] == [("ctr", 0.7)]
    assert tables.write_rows([], "metrics_daily", ds="2030-03-01") == 0
    assert not tables.has_partition("metrics_daily", "2030-03-01")


def test_a_table_of_a_release_that_only_appended_columns_gains_them(spark, settings):
    """samples_daily as the previous release wrote it (no ``clicked``): ensure adds the column,
    and the old partition reads it as null."""
    from offline_eval.contract import SAMPLES_DAILY, TableSpec

    tables = Tables(spark, settings)
    tables.ensure()
    old = TableSpec("samples_old_release", SAMPLES_DAILY.columns[:-1], (), "")
    spark.sql(f"CREATE TABLE {tables.qualified(old.name)} ({old.ddl_columns()}) USING parquet PARTITIONED BY (ds)")
    spark.sql(f"INSERT INTO {tables.qualified(old.name)} (model_name, model_version, score, ds) "
              "VALUES ('m', 'v1', 0.25, '2026-06-01')")
    new = TableSpec(old.name, SAMPLES_DAILY.columns, (), "")
    tables.ensure([new])
    assert [c.name for c in spark.catalog.listColumns(f"{settings.database}.{old.name}")] == new.all_columns
    (row,) = spark.sql(f"SELECT score, clicked FROM {tables.qualified(old.name)}").collect()
    assert (row["score"], row["clicked"]) == (0.25, None)


def test_ensure_checks_a_contract_once_per_engine(spark, settings, monkeypatch):
    """The second ensure of the same tables asks the metastore nothing (the engine keeps the
    marker); a changed contract of a table is checked, and its missing table created, at once."""
    from offline_eval.contract import METRICS_DAILY, TableSpec

    tables = Tables(spark, settings)
    spec = TableSpec("ensured_once", METRICS_DAILY.columns, METRICS_DAILY.keys, "")
    tables.ensure([spec])
    assert spark.catalog.tableExists(f"{settings.database}.ensured_once")

    def no_check(specs):
        raise AssertionError(f"checked again: {[s.name for s in specs]}")

    monkeypatch.setattr(tables, "_ensure", no_check)
    tables.ensure([spec])  # the marker: no check
    monkeypatch.undo()
    changed = TableSpec("ensured_once_v2", (*METRICS_DAILY.columns, ("note", "string")), METRICS_DAILY.keys, "")
    tables.ensure([spec, changed])
    assert [c.name for c in spark.catalog.listColumns(f"{settings.database}.ensured_once_v2")] == changed.all_columns


def test_ensured_marker_is_keyed_by_database_and_contract():
    from offline_eval.contract import METRICS_DAILY, TableSpec
    from offline_eval.io.tables import ensured_marker

    spec = TableSpec("t", METRICS_DAILY.columns, METRICS_DAILY.keys, "described one way")
    retyped = TableSpec("t", (*METRICS_DAILY.columns[:-1], (METRICS_DAILY.columns[-1][0], "float")), (), "")
    marker = ensured_marker("db", [spec])
    assert marker.startswith("oe_ensured__db__") and len(marker) == len("oe_ensured__db__") + 16
    assert ensured_marker("db", [TableSpec("t", spec.columns, (), "described another way")]) == marker
    assert ensured_marker("db", [retyped]) != marker
    assert ensured_marker("db2", [spec]) != marker
    with pytest.raises(ConfigError):
        ensured_marker("db; drop database x", [spec])


def test_partition_location_is_the_registered_one_or_none(spark, settings, tmp_path):

    tables = Tables(spark, settings)
    tables.ensure()
    tables.overwrite(_metrics(spark, "2030-04-01", 0.1), "metrics_daily", expected_ds=["2030-04-01"])
    assert tables.local_path("metrics_daily", tables.partition_location("metrics_daily", "2030-04-01")) == \
        tables.location("metrics_daily") / "ds=2030-04-01"
    # A partition registered elsewhere (ALTER TABLE ... ADD PARTITION ... LOCATION): its own directory,
    # not <table>/ds=<day>.
    elsewhere = tmp_path / "moved"
    elsewhere.mkdir()
    spark.sql(f"ALTER TABLE {tables.qualified('metrics_daily')} ADD PARTITION (ds='2030-04-02') "
              f"LOCATION '{elsewhere}'")
    assert tables.local_path("metrics_daily", tables.partition_location("metrics_daily", "2030-04-02")) == \
        elsewhere
    assert tables.partition_location("metrics_daily", "2030-04-03") is None
    assert tables.partition_location("no_such_table", "2030-04-01") is None
    with pytest.raises(ConfigError, match="lives at s3a://bucket/x"):
        tables.local_path("metrics_daily", "s3a://bucket/x")
