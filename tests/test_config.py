from __future__ import annotations

import pytest

from offline_eval.config import ConfigError, DayConfig, Settings, validate_identifier, validate_sql_name


@pytest.mark.parametrize("good", ["home_feed_ctr", "v2", "1.4.0", "exp-2026_06"])
def test_identifiers_accepted(good):
    assert validate_identifier(good, "model name") == good


@pytest.mark.parametrize(
    "bad", ["", "../etc", "a/b", "v1'; drop table x; --", "a b", "<script>", "-x", "a..b", "x" * 65]
)
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
    monkeypatch.setenv("SPARK_REMOTE", "sc://spark-connect:15002")
    monkeypatch.setenv("OFFLINE_EVAL_SPARK_MASTER", "spark://10.0.0.1:7077")
    monkeypatch.setenv("OFFLINE_EVAL_HIVE_METASTORE_URI", "thrift://metastore:9083")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("OFFLINE_EVAL_DRIVER_JAVA_OPTS", raising=False)
    s = Settings.from_env()
    conf = s.engine_conf()
    assert s.spark_remote == "sc://spark-connect:15002"
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'h' / 'mlflow' / 'mlflow.db'}"
    assert conf["spark.hadoop.hive.metastore.uris"] == "thrift://metastore:9083"
    assert "spark.hadoop.javax.jdo.option.ConnectionURL" not in conf  # no embedded Derby on a cluster
    assert "spark.driver.extraJavaOptions" not in conf
    assert conf["spark.sql.catalogImplementation"] == "hive"
    # Every client session sets the pipeline's SQL settings itself, whoever started the engine.
    assert s.session_conf()["spark.sql.sources.partitionOverwriteMode"] == "dynamic"
    assert conf["spark.sql.sources.partitionOverwriteMode"] == "dynamic"


def test_local_settings_use_embedded_derby_under_home(monkeypatch, tmp_path):
    for name in ("OFFLINE_EVAL_SPARK_MASTER", "OFFLINE_EVAL_HIVE_METASTORE_URI", "OFFLINE_EVAL_DRIVER_JAVA_OPTS",
                 "SPARK_REMOTE", "OFFLINE_EVAL_SPARK_UI_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OFFLINE_EVAL_HOME", str(tmp_path))
    s = Settings.from_env()
    conf = s.engine_conf()
    assert s.spark_remote == "sc://127.0.0.1:15002" and s.spark_master == "local[*]"
    assert (
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"]
        == f"jdbc:derby:;databaseName={tmp_path / 'metastore_db'};create=true"
    )
    assert f"-Dderby.system.home={tmp_path}" in conf["spark.driver.extraJavaOptions"]
    assert "-XX:Tier4InvocationThreshold=50000" in conf["spark.driver.extraJavaOptions"]  # a local engine's JIT
    assert conf["spark.ui.port"] == "4040"


def test_java_options_of_the_environment_come_last(monkeypatch, tmp_path):
    """HotSpot takes the last of repeated flags: OFFLINE_EVAL_DRIVER_JAVA_OPTS overrides the JIT defaults."""
    for name in ("OFFLINE_EVAL_SPARK_MASTER", "OFFLINE_EVAL_HIVE_METASTORE_URI", "SPARK_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OFFLINE_EVAL_HOME", str(tmp_path))
    monkeypatch.setenv("OFFLINE_EVAL_DRIVER_JAVA_OPTS", "-XX:Tier4InvocationThreshold=5000")
    opts = Settings.from_env().engine_conf()["spark.driver.extraJavaOptions"].split()
    assert opts[-1] == "-XX:Tier4InvocationThreshold=5000"
    assert opts.index("-XX:Tier4InvocationThreshold=50000") < len(opts) - 1


@pytest.mark.parametrize("name, value, message", [
    ("SPARK_REMOTE", "http://x:1", "Spark Connect URL"),
    ("OFFLINE_EVAL_ENGINE_MEMORY", "lots", "OFFLINE_EVAL_ENGINE_MEMORY"),
    ("OFFLINE_EVAL_SHUFFLE_PARTITIONS", "four", "OFFLINE_EVAL_SHUFFLE_PARTITIONS"),
    ("OFFLINE_EVAL_EVALUATE_WORKERS", "0", "OFFLINE_EVAL_EVALUATE_WORKERS"),
    ("OFFLINE_EVAL_EVALUATE_WORKERS", "two", "OFFLINE_EVAL_EVALUATE_WORKERS"),
])
def test_bad_engine_settings_name_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        Settings.from_env()


def test_engine_command_is_the_shipped_connect_server_script(tmp_path):
    from offline_eval.io.engine import Engine, spark_home

    s = Settings(home=tmp_path, reports_dir=tmp_path / "r", spark_remote="sc://127.0.0.1:15123",
                 spark_master="local[2]", engine_memory="2g", spark_ui_port=0)
    engine = Engine(s)
    cmd = engine.command()
    assert cmd[0] == str(spark_home() / "sbin" / "start-connect-server.sh") and (spark_home() / "sbin").is_dir()
    args = dict(zip(cmd[1::2], cmd[2::2], strict=False))
    assert args["--master"] == "local[2]" and args["--driver-memory"] == "2g"
    path = engine.write_properties()
    assert args["--properties-file"] == str(path) and oct(path.stat().st_mode & 0o777) == "0o600"
    confs = dict(line.split(" ", 1) for line in path.read_text().splitlines())
    assert confs["spark.connect.grpc.binding.port"] == "15123"
    assert confs["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert confs["spark.ui.enabled"] == "false"
    with pytest.raises(ConfigError, match="not on this machine"):
        Engine(Settings(home=tmp_path, reports_dir=tmp_path, spark_remote="sc://cluster:15002")).start()


def test_a_metastore_on_postgresql_through_the_engines_own_hive_client(monkeypatch, tmp_path):
    """The cluster stack's metastore: Spark's built-in Hive client on a PostgreSQL database, the
    password from the environment, the JDBC driver jar on the engine's classpath."""
    jar = tmp_path / "postgresql.jar"
    jar.write_bytes(b"")
    monkeypatch.setenv("OFFLINE_EVAL_HOME", str(tmp_path))
    monkeypatch.setenv("OFFLINE_EVAL_METASTORE_JDBC_URL", "jdbc:postgresql://127.0.0.1:55432/metastore")
    monkeypatch.setenv("OFFLINE_EVAL_METASTORE_USER", "offline_eval")
    monkeypatch.setenv("OFFLINE_EVAL_METASTORE_PASSWORD", "s3cret")
    monkeypatch.setenv("OFFLINE_EVAL_ENGINE_JARS", str(jar))
    monkeypatch.setenv("OFFLINE_EVAL_SPARK_MASTER", "spark://127.0.0.1:17077")
    monkeypatch.delenv("OFFLINE_EVAL_HIVE_METASTORE_URI", raising=False)
    s = Settings.from_env()
    conf = s.engine_conf()
    assert conf["spark.hadoop.javax.jdo.option.ConnectionDriverName"] == "org.postgresql.Driver"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] == "s3cret"
    assert conf["spark.driver.extraClassPath"] == str(jar) and conf["spark.jars"] == str(jar)
    assert conf["spark.executor.memory"] == "1g" and conf["spark.pyspark.python"]
    assert "s3cret" not in repr(s)
    monkeypatch.setenv("OFFLINE_EVAL_ENGINE_JARS", str(tmp_path / "missing.jar"))
    with pytest.raises(ConfigError, match="libpostgresql-jdbc-java"):
        Settings.from_env().engine_conf()
    monkeypatch.setenv("OFFLINE_EVAL_HIVE_METASTORE_URI", "thrift://x:9083")
    with pytest.raises(ConfigError, match="not both"):
        Settings.from_env()


@pytest.mark.parametrize("raw, shared", [("", True), ("1", True), ("true", True), ("0", False), ("off", False)])
def test_tasks_share_the_engine_session_unless_turned_off(monkeypatch, raw, shared):
    monkeypatch.setenv("OFFLINE_EVAL_SHARED_SESSION", raw)
    assert Settings.from_env().shared_session is shared


def test_a_bad_shared_session_flag_names_the_variable(monkeypatch):
    monkeypatch.setenv("OFFLINE_EVAL_SHARED_SESSION", "sometimes")
    with pytest.raises(ConfigError, match="OFFLINE_EVAL_SHARED_SESSION"):
        Settings.from_env()
