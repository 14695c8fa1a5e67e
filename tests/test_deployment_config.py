"""docker-compose.yml cannot be started here (no Docker engine): check what it would hand the
pipeline instead, through the same code that reads the configuration."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _expand(value: str) -> str:
    # ${VAR:?message} and ${VAR:-default}: substitute a placeholder as compose would with VAR set.
    return re.sub(r"\$\{(\w+)(:[?-][^}]*)?\}", lambda m: f"<{m.group(1)}>", value)


def test_services(compose):
    assert {"postgres", "hive-metastore", "spark-master", "spark-worker", "mlflow", "airflow-api-server",
            "airflow-scheduler", "airflow-dag-processor"} <= set(compose["services"])


def test_pipeline_settings_from_the_compose_environment(compose, monkeypatch):
    from offline_eval.config import Settings

    env = compose["services"]["airflow-scheduler"]["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, _expand(str(value)))
    settings = Settings.from_env()
    conf = settings.spark_conf()
    assert conf["spark.hadoop.hive.metastore.uris"] == "thrift://hive-metastore:9083"
    assert "spark.hadoop.javax.jdo.option.ConnectionURL" not in conf
    assert conf["spark.sql.warehouse.dir"] == "/opt/warehouse"
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"
    assert "spark.driver.extraJavaOptions" not in conf


def test_spark_submit_goes_to_the_cluster_master(compose, monkeypatch):
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    env = compose["services"]["airflow-scheduler"]["environment"]
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", env["AIRFLOW_CONN_SPARK_DEFAULT"])
    cmd = SparkSubmitHook(conn_id="spark_default")._build_spark_submit_command("spark_jobs/compute_metrics.py")
    assert cmd[cmd.index("--master") + 1] == "spark://spark-master:7077"


def test_no_secret_in_the_file(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    for secret_var in ("POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET"):
        assert f"${{{secret_var}:?" in text  # required from the environment, no default
    assert not re.search(r"PASSWORD:\s*['\"]?\w", text.replace("${POSTGRES_PASSWORD", ""))


def test_spark_image_matches_the_pinned_pyspark(compose):
    pin = re.search(r"^pyspark==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    for name in ("spark-master", "spark-worker"):
        image = _expand(compose["services"][name]["image"])
        default = re.search(r"apache/spark:([\d.]+)", compose["services"][name]["image"]).group(1)
        assert default == pin, f"{name} runs Spark {default}, the driver pyspark {pin} ({image})"
