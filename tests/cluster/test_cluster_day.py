"""One small day through the real DAG on the multi-process stack of scripts/cluster.py:
PostgreSQL (Airflow's metadata, the Hive metastore, MLflow's store), a Spark standalone master
and worker, the engine (Spark Connect) on that master, an MLflow tracking server. Only the
documented configuration differs from the embedded default (`python scripts/cluster.py env`).

Checks: the Spark work ran as an application of the standalone master, on its worker's
executor; the metrics and drift equal local mode's on the same tables; the MLflow runs went
through the HTTP server into PostgreSQL, artifacts served over HTTP.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.spark]

ROOT = Path(__file__).resolve().parents[2]
DS = "2026-06-18"
DB = "offline_eval_cluster"
GENERATE = ["--start", "2026-06-17", "--days", "2", "--impressions-per-day", "6000", "--base-users", "2000",
            "--base-items", "1000"]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _run(cmd: list[str], env: dict[str, str], timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("cluster")
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "OFFLINE_EVAL", "MLFLOW_TRACKING", "SPARK_REMOTE"))}
    ports = {f"OFFLINE_EVAL_CLUSTER_{n}_PORT": str(free_port())
             for n in ("POSTGRES", "MASTER", "MASTER_UI", "WORKER_UI", "ENGINE", "ENGINE_UI", "MLFLOW")}
    env = {**base, **ports, "OFFLINE_EVAL_HOME": str(home / "home"), "OFFLINE_EVAL_CLUSTER_WORKER_MEMORY": "2g"}
    _run([sys.executable, "scripts/cluster.py", "up"], env, timeout=600)
    try:
        exports = dict(line.removeprefix("export ").split("=", 1)
                       for line in _run([sys.executable, "scripts/cluster.py", "env"], env).stdout.splitlines())
        exports = {k: v.strip("'") for k, v in exports.items()}
        # The pipeline's side: the documented exports, its own state dir and database.
        client = {**base, **exports, "OFFLINE_EVAL_HOME": str(home / "client"),
                  "OFFLINE_EVAL_REPORTS": str(home / "reports"), "OFFLINE_EVAL_DATABASE": DB,
                  "AIRFLOW_HOME": str(home / "airflow")}
        sh = ". scripts/env.sh && "
        _run(["bash", "-c", sh + "offline-eval generate " + " ".join(GENERATE)], client)
        _run(["bash", "-c", sh + "airflow db migrate"], client)
        dag = _run(["bash", "-c", sh + f"airflow dags test offline_eval_daily {DS}"], client, check=False)
        yield {"env": env, "exports": exports, "client": client, "ports": ports, "dag": dag, "home": home}
    finally:
        _run([sys.executable, "scripts/cluster.py", "down", "--purge"], env, check=False)


def _cluster_rows(stack, table: str) -> list[dict]:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(stack["exports"]["SPARK_REMOTE"]).create()
    try:
        return [r.asDict(recursive=True) for r in spark.table(f"{DB}.{table}").where(f"ds = '{DS}'").collect()]
    finally:
        spark.stop()


def test_the_day_ran_as_an_application_of_the_standalone_master(stack):
    assert stack["dag"].returncode == 0, stack["dag"].stdout[-3000:] + stack["dag"].stderr[-3000:]
    master = _get(f"http://127.0.0.1:{stack['ports']['OFFLINE_EVAL_CLUSTER_MASTER_UI_PORT']}/json")
    apps = [a for a in master["activeapps"] if a["name"] == "Spark Connect server"]
    assert len(apps) == 1 and apps[0]["cores"] > 0 and apps[0]["state"] == "RUNNING"
    assert [w["state"] for w in master["workers"]] == ["ALIVE"]
    # The work ran on the worker's executor, not in the driver.
    ui = f"http://127.0.0.1:{stack['ports']['OFFLINE_EVAL_CLUSTER_ENGINE_UI_PORT']}/api/v1/applications"
    executors = _get(f"{ui}/{apps[0]['id']}/executors")
    assert sum(e["totalTasks"] for e in executors if e["id"] != "driver") > 0
    # ...and the tables live in the cluster's metastore, on PostgreSQL.
    import psycopg2

    pw = (stack["home"] / "home" / "cluster" / "postgres.password").read_text().strip()
    con = psycopg2.connect(host="127.0.0.1", port=int(stack["ports"]["OFFLINE_EVAL_CLUSTER_POSTGRES_PORT"]),
                           user="offline_eval", password=pw, dbname="metastore")
    with con.cursor() as cur:
        cur.execute('SELECT "TBL_NAME" FROM "TBLS" t JOIN "DBS" d ON t."DB_ID" = d."DB_ID" WHERE d."NAME" = %s', (DB,))
        tables = {r[0] for r in cur.fetchall()}
    con.close()
    assert {"impressions", "metrics_daily", "drift_daily", "profiles_daily"} <= tables


def test_metrics_and_drift_equal_local_mode_on_the_same_tables(stack, spark, settings):
    """The same generated day, evaluated by the session's local engine: the numbers agree."""
    import dataclasses

    from offline_eval.config import DayConfig
    from offline_eval.generator import Scenario
    from offline_eval.io.tables import Tables
    from offline_eval.jobs import baselines, compute, drift, generate, validate

    local = dataclasses.replace(settings, database="offline_eval_cluster_ref",
                                reports_dir=settings.reports_dir / "cluster_ref")
    # the world of GENERATE, as `offline-eval generate` sizes it
    generate.run(Scenario.sized(2000, 1000, start="2026-06-17", days=2, impressions_per_day=6000, promo_day=1,
                                experiment_start="2026-06-08"), local)
    day = DayConfig(ds=DS)
    for job in (validate, compute, baselines, drift):
        job.run(day, local)
    tables = Tables(spark, local)
    for table, keys, values in (
            ("metrics_daily", ("model_version", "variant", "segment", "metric"), ("value", "numerator", "denominator")),
            ("drift_daily", ("model_version", "reference", "column"), ("psi", "ks", "js", "wasserstein", "chi2_p"))):
        here = {tuple(r[k] for k in keys): r for r in tables.rows(table, [DS])}
        there = {tuple(r[k] for k in keys): r for r in _cluster_rows(stack, table)}
        assert set(here) == set(there) and len(here) > 0, table
        for k, r in here.items():
            for v in values:
                if r[v] is None:
                    assert there[k][v] is None, (table, k, v)
                else:
                    assert there[k][v] == pytest.approx(r[v], rel=1e-9, abs=1e-12), (table, k, v)


def test_mlflow_runs_went_through_the_http_server(stack):
    from mlflow import MlflowClient

    uri = stack["exports"]["MLFLOW_TRACKING_URI"]
    assert uri.startswith("http://127.0.0.1:")
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("home_feed_ctr")
    runs = client.search_runs([exp.experiment_id], f"tags.`offline_eval.ds` = '{DS}'")
    assert sorted(r.data.tags["offline_eval.model_version"] for r in runs) == ["v1", "v2"]
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "evidently")}
    assert "evidently/report.html" in artifacts
    assert exp.artifact_location.startswith("mlflow-artifacts:")  # served by the server, not a local path
    import psycopg2

    pw = (stack["home"] / "home" / "cluster" / "postgres.password").read_text().strip()
    con = psycopg2.connect(host="127.0.0.1", port=int(stack["ports"]["OFFLINE_EVAL_CLUSTER_POSTGRES_PORT"]),
                           user="offline_eval", password=pw, dbname="mlflow")
    with con.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE lifecycle_stage = 'active'")
        assert cur.fetchone()[0] >= 2
    con.close()
