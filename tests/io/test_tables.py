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
    with pytest.raises(MissingPartitionError, match=r"offline_eval_test.metrics_daily: partition ds=2031-01-01 does not exist"):
        tables.read("metrics_daily", "2031-01-01")


def test_table_names_are_validated_before_sql(spark, settings):
    with pytest.raises(ConfigError):
        Tables(spark, settings).read("orders; drop table users", "2030-01-01")
