from __future__ import annotations

import pytest

from offline_eval.config import ConfigError, DayConfig, Settings, validate_identifier, validate_sql_name


@pytest.mark.parametrize("good", ["home_feed_ctr", "v2", "1.4.0", "exp-2026_06"])
def test_identifiers_accepted(good):
    assert validate_identifier(good, "model name") == good


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "v1'; drop table x; --", "a b", "<script>", "-x", "a..b", "x" * 65])
def test_identifiers_rejected_with_the_field_named(bad):
    with pytest.raises(ConfigError, match="model version"):
        validate_identifier(bad, "model version")


@pytest.mark.parametrize("bad", ["Impressions", "1table", "t;drop", "t-1", "`t`"])
def test_sql_names_rejected(bad):
    with pytest.raises(ConfigError):
        validate_sql_name(bad, "table name")


@pytest.mark.parametrize("bad", ["2026-6-1", "2026-02-30", "20260601", "2026-06-01T00:00", "yesterday"])
def test_ds_must_be_a_real_date(bad):
    with pytest.raises(ConfigError, match="ds"):
        DayConfig(ds=bad)


def test_day_offsets():
    assert DayConfig(ds="2026-03-01").ds_offset(-1) == "2026-02-28"


def test_settings_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("OFFLINE_EVAL_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("OFFLINE_EVAL_SPARK_MASTER", "spark://10.0.0.1:7077")
    monkeypatch.setenv("OFFLINE_EVAL_HIVE_METASTORE_URI", "thrift://metastore:9083")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("OFFLINE_EVAL_DRIVER_JAVA_OPTS", raising=False)
    s = Settings.from_env()
    conf = s.spark_conf()
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'h' / 'mlflow' / 'mlflow.db'}"
    assert conf["spark.hadoop.hive.metastore.uris"] == "thrift://metastore:9083"
    assert "spark.hadoop.javax.jdo.option.ConnectionURL" not in conf  # no embedded Derby on a cluster
    assert "spark.driver.extraJavaOptions" not in conf  # JVM defaults off local mode
    assert conf["spark.sql.sources.partitionOverwriteMode"] == "dynamic"


def test_local_settings_use_embedded_derby_under_home(monkeypatch, tmp_path):
    monkeypatch.setenv("OFFLINE_EVAL_HOME", str(tmp_path))
    monkeypatch.delenv("OFFLINE_EVAL_SPARK_MASTER", raising=False)
    monkeypatch.delenv("OFFLINE_EVAL_HIVE_METASTORE_URI", raising=False)
    monkeypatch.delenv("OFFLINE_EVAL_DRIVER_JAVA_OPTS", raising=False)
    conf = Settings.from_env().spark_conf()
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == f"jdbc:derby:;databaseName={tmp_path / 'metastore_db'};create=true"
    assert f"-Dderby.system.home={tmp_path}" in conf["spark.driver.extraJavaOptions"]
