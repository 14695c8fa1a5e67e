"""docker-compose.yml cannot be started here (no Docker engine): check the properties that make it
work, through the same code that reads the configuration, and against the local multi-process
stack (scripts/cluster.py) that does run here."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LONG_RUNNING = ("postgres", "spark-master", "spark-worker", "spark-connect", "mlflow", "airflow-api-server",
                "airflow-scheduler", "airflow-dag-processor")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("cluster", ROOT / "scripts" / "cluster.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.DIR = tmp_path_factory.mktemp("cluster")  # its generated password goes here, not into .local
    return mod


def _expand(value: str) -> str:
    # ${VAR:?message} and ${VAR:-default}: substitute a placeholder as compose would with VAR set.
    return re.sub(r"\$\{(\w+)(:[?-][^}]*)?\}", lambda m: f"<{m.group(1)}>", value)


def _pins() -> dict[str, str]:
    text = (ROOT / "requirements.txt").read_text() + (ROOT / "constraints.txt").read_text()
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, re.M)}


def _settings(env: dict, monkeypatch, tmp_path):
    from offline_eval.config import Settings

    for key in list(__import__("os").environ):
        if key.startswith(("OFFLINE_EVAL_", "SPARK_REMOTE", "MLFLOW_TRACKING")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, _expand(str(value)))
    jar = tmp_path / "postgresql.jar"  # the image's /usr/share/java/postgresql.jar, here
    jar.write_bytes(b"")
    monkeypatch.setenv("OFFLINE_EVAL_ENGINE_JARS", str(jar))
    return Settings.from_env()


def test_services_have_health_checks_ordered_start_and_restart_policies(compose):
    services = compose["services"]
    assert set(LONG_RUNNING) | {"airflow-init"} == set(services)
    assert not any("hive" in str(s.get("image", "")) for s in services.values())  # no separate Hive 4 metastore
    for name in LONG_RUNNING:
        s = services[name]
        assert s.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert s.get("restart") == "unless-stopped", name
        for dep, cond in (s.get("depends_on") or {}).items():
            want = "service_completed_successfully" if dep == "airflow-init" else "service_healthy"
            assert cond == {"condition": want}, (name, dep)
    assert services["airflow-init"]["restart"] == "no"
    assert set(services["spark-connect"]["depends_on"]) == {"postgres", "spark-master", "spark-worker"}
    assert set(services["airflow-scheduler"]["depends_on"]) >= {"postgres", "spark-connect", "mlflow", "airflow-init"}


def test_the_spark_image_has_the_drivers_python_numpy_pyarrow_and_the_jdbc_driver():
    dockerfile = (ROOT / "docker" / "spark.Dockerfile").read_text()
    pins = _pins()
    assert re.search(r"^FROM python:3\.11-", dockerfile, re.M)  # executors' Python = the driver's (3.11)
    for package in ("pyspark", "numpy", "pyarrow", "pandas"):
        assert f"{package}=={pins[package]}" in dockerfile, package
    assert "libpostgresql-jdbc-java" in dockerfile and "openjdk-17-jre-headless" in dockerfile
    airflow = (ROOT / "docker" / "airflow.Dockerfile").read_text()
    assert f"apache/airflow:{pins['apache-airflow']}-python3.11" in airflow
    assert "requirements.txt" in airflow and "psycopg2-binary" in pins  # MLflow and Airflow on PostgreSQL


def test_the_engine_serves_other_containers_and_is_reached_back_by_its_executors(compose, monkeypatch, tmp_path):
    from offline_eval.io.engine import Engine

    engine = compose["services"]["spark-connect"]
    s = _settings(engine["environment"], monkeypatch, tmp_path)
    conf = Engine(s).properties()
    assert conf["spark.connect.grpc.binding.address"] == "0.0.0.0"
    assert conf["spark.driver.host"] == "spark-connect" and conf["spark.driver.bindAddress"] == "0.0.0.0"
    assert s.spark_master == "spark://spark-master:7077"
    # the metastore: Spark's built-in Hive client on PostgreSQL, with the JDBC driver on its classpath
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == "jdbc:postgresql://postgres:5432/metastore"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionDriverName"] == "org.postgresql.Driver"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] == "<POSTGRES_PASSWORD>"
    assert conf["spark.hadoop.datanucleus.schema.autoCreateTables"] == "true"
    assert conf["spark.hadoop.datanucleus.schema.autoCreateConstraints"] == "false"  # no lazy FKs: they deadlock
    assert "spark.hadoop.datanucleus.schema.autoCreateAll" not in conf  # it would imply them
    assert engine["environment"]["OFFLINE_EVAL_ENGINE_JARS"] == "/usr/share/java/postgresql.jar"
    assert conf["spark.pyspark.python"] == "/usr/local/bin/python"
    assert engine["command"] == "offline-eval engine start --foreground"
    # no service is told to bind Spark to loopback
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        assert "127.0.0.1" not in str(env.get("SPARK_LOCAL_IP", "")), name


def test_the_pipeline_is_pointed_at_the_engine_and_mlflow_by_configuration_alone(compose, cluster, monkeypatch,
                                                                                 tmp_path):
    from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook

    env = compose["services"]["airflow-scheduler"]["environment"]
    # The same variables the local multi-process stack exports (scripts/cluster.py env).
    assert set(cluster.exports()) <= set(env)
    s = _settings(env, monkeypatch, tmp_path)
    assert s.spark_remote == "sc://spark-connect:15002"
    assert s.mlflow_tracking_uri == "http://mlflow:5000"
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_CONNECT_DEFAULT", env["AIRFLOW_CONN_SPARK_CONNECT_DEFAULT"])
    assert SparkConnectHook("spark_connect_default").get_connection_url() == "sc://spark-connect:15002/"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    # the engine's side matches the variables the local stack gives its engine
    engine_env = compose["services"]["spark-connect"]["environment"]
    assert set(cluster.engine_env()) - {"OFFLINE_EVAL_HOME"} <= set(engine_env) | {"OFFLINE_EVAL_HOME"}


def test_mlflow_serves_other_containers_from_postgresql(compose):
    mlflow = compose["services"]["mlflow"]
    cmd = mlflow["command"]
    assert "--host 0.0.0.0" in cmd and "--serve-artifacts" in cmd
    # the image has psycopg2 (requirements.txt); the URI (with its password) is not on the command line
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert "--backend-store-uri" not in cmd and "POSTGRES_PASSWORD" not in cmd
    hosts = re.search(r"--allowed-hosts (\S+)", cmd).group(1).split(",")
    assert "mlflow" in hosts and "mlflow:5000" in hosts  # the name other containers use
    assert mlflow["build"]["dockerfile"] == "docker/airflow.Dockerfile"


def test_no_secret_in_the_file(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    for secret_var in ("POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET"):
        assert f"${{{secret_var}:?" in text  # required from the environment, no default
    assert not re.search(r"PASSWORD:\s*['\"]?\w", text.replace("${POSTGRES_PASSWORD", ""))
