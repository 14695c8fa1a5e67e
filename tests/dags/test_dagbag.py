"""The DAG folder imports cleanly, the DAGs have the structure the docs promise, and the task
glue keeps the failure contract (bad data and bad configuration fail at once, the rest retries)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
GLUE = ROOT / "plugins" / "offline_eval_airflow"
HEAVY = {"pyspark", "mlflow", "evidently", "great_expectations", "pandas", "offline_eval"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {"offline_eval_daily", "offline_eval_ab_readout", "offline_eval_baseline_weekly"}


def test_daily_structure(dagbag):
    dag = dagbag.dags["offline_eval_daily"]
    assert {"offline-eval", "daily"} <= set(dag.tags)
    assert dag.catchup is False
    assert "evaluates" in dag.doc_md and "ds = D" in dag.doc_md
    order = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert order == {"validate": ["compute", "watcher"], "compute": ["baselines", "watcher"],
                     "baselines": ["drift", "watcher"], "drift": ["publish", "watcher"],
                     "publish": ["notify", "watcher"], "notify": ["watcher"], "watcher": []}
    assert all(t.retries >= 1 for t in dag.tasks if t.task_id != "watcher")
    # A failed step alerts the severe tier at once; notify (the delivery itself) and the watcher do not.
    from offline_eval_airflow.notify import notify_day_failure

    alerting = {t.task_id for t in dag.tasks if notify_day_failure in (t.on_failure_callback or [])}
    assert alerting == {"validate", "compute", "baselines", "drift", "publish"}
    # any failure anywhere fails the run, even when the tasks after it end skipped
    assert dag.get_task("watcher").trigger_rule == "one_failed"
    assert dag.params["sample_rows"] == 50_000
    # Only the reference step waits for the previous day; it runs (and then skips) when the
    # day was rejected, so a bad day does not block the next one.
    waits = {t.task_id for t in dag.tasks if t.depends_on_past}
    assert waits == {"baselines"} and dag.get_task("baselines").trigger_rule == "all_done"
    assert dag.get_task("validate").retries == 1  # a failed suite fails at once anyway


def test_spark_tasks_are_pyspark_tasks_on_the_spark_connect_connection(dagbag):
    from airflow.providers.apache.spark.operators.spark_pyspark import PySparkOperator

    for dag_id, task_ids in (("offline_eval_daily", ("validate", "compute", "baselines", "drift", "publish", "notify")),
                             ("offline_eval_ab_readout", ("readout",)),
                             ("offline_eval_baseline_weekly", ("build", "evaluate_week"))):
        dag = dagbag.dags[dag_id]
        for task_id in task_ids:
            task = dag.get_task(task_id)
            assert isinstance(task, PySparkOperator) and task.conn_id == "spark_connect_default", (dag_id, task_id)
            assert task.pool == "default_pool"  # no one-slot pool: tasks share the engine
    assert type(dagbag.dags["offline_eval_ab_readout"].get_task("log_to_mlflow")).__name__ == "_PythonDecoratedOperator"


def test_ab_readout_dag(dagbag):
    dag = dagbag.dags["offline_eval_ab_readout"]
    assert {"offline-eval", "ab"} <= set(dag.tags)
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "readout": ["log_to_mlflow"], "log_to_mlflow": []}
    assert set(dag.params) == {"experiment", "start", "end", "correction"}
    assert dag.params["correction"] == "holm"
    assert "reports/ab/<experiment>/<ds>/" in dag.doc_md


def test_the_connection_points_tasks_at_the_engine(monkeypatch):
    """What @task.pyspark connects to, for the embedded engine and for a cluster's endpoint."""
    from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook

    for conn, url in (('{"conn_type": "spark_connect", "host": "sc://127.0.0.1", "port": 15002}',
                       "sc://127.0.0.1:15002/"),
                      ('{"conn_type": "spark_connect", "host": "sc://spark-connect", "port": 15002, '
                       '"extra": {"use_ssl": true}}', "sc://spark-connect:15002/;use_ssl=True")):
        monkeypatch.setenv("AIRFLOW_CONN_SPARK_CONNECT_DEFAULT", conn)
        assert SparkConnectHook("spark_connect_default").get_connection_url() == url


def test_weekly_baseline_builds_the_windows_ending_the_sunday_of_its_week(dagbag, monkeypatch):
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from offline_eval.jobs import baselines

    calls = []
    monkeypatch.setattr(baselines, "run_windows", lambda end, windows, spark=None: calls.append((end, windows)))
    task = dagbag.dags["offline_eval_baseline_weekly"].get_task("build")
    # a manual run for the week [Mon 06-08, Sun 06-14], ds = its Monday -> the windows ending Sunday 06-14
    task.python_callable(spark=None, ds="2026-06-08", dag_run=None, outlet_events=OutletEventAccessors())
    assert calls == [("2026-06-14", (7, 28))]
    # scheduled on the evaluated days (tests/dags/test_assets.py)
    assert type(dagbag.dags["offline_eval_baseline_weekly"].timetable).__name__ == "PartitionedAssetTimetable"


def test_daily_runs_evaluate_their_interval_start(dagbag):
    """A data-interval timetable: the run after midnight ending day D has logical date D."""
    dag = dagbag.dags["offline_eval_daily"]
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression == "0 0 * * *"


def test_dag_files_and_glue_import_no_heavy_libraries_at_parse_time():
    for path in [*DAGS.glob("*.py"), *GLUE.glob("*.py")]:
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {(n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
        names |= {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
        assert not names & HEAVY, f"{path.name} imports {names & HEAVY} at module level"


def test_library_imports_no_airflow():
    for path in (ROOT / "offline_eval").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        names |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "airflow" not in names, path


@pytest.mark.spark
def test_bad_data_and_config_fail_at_once_the_rest_is_retried(settings, small_world, monkeypatch):
    """Real jobs through the task glue: a missing partition (bad data) and a bad identifier
    (configuration) raise AirflowFailException, which Airflow never retries; an engine that does
    not answer raises a plain error, which it retries."""
    from airflow.sdk.exceptions import AirflowFailException
    from offline_eval_airflow import run_job

    from offline_eval.config import DayConfig
    from offline_eval.io.spark import EngineUnavailable
    from offline_eval.jobs import validate
    from offline_eval.summary import daily_summary

    with pytest.raises(AirflowFailException, match=r"(?s)validate: bad input data .*not retrying.*table clicks, "
                                                   r"partition ds=2026-08-02"):
        run_job("validate", validate.run, DayConfig(ds="2026-08-02"), settings, tables_to_check=("clicks",))
    with pytest.raises(AirflowFailException, match=r"(?s)summary: configuration error .*invalid model name"):
        run_job("summary", daily_summary, None, "../etc", "2026-06-17", "2026-06-18")
    import dataclasses

    from tests.conftest import free_port

    down = dataclasses.replace(settings, spark_remote=f"sc://127.0.0.1:{free_port()}")
    with pytest.raises(EngineUnavailable, match="no Spark engine answers"):
        run_job("validate", validate.run, DayConfig(ds="2026-06-18"), down)


def test_every_dag_shares_the_schedule_args_and_stops_at_the_configured_end(monkeypatch):
    """OFFLINE_EVAL_DAILY_END_DATE (the demo's last day) bounds every DAG, so unpausing for a
    backfill never schedules a day without data; without it the DAGs run on."""
    import pendulum
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("OFFLINE_EVAL_DAILY_END_DATE", "2026-06-21")
    bounded = DagBag(dag_folder=str(DAGS)).dags
    assert len(bounded) == 3
    for dag_id, dag in bounded.items():
        assert dag.end_date == pendulum.datetime(2026, 6, 21, tz="UTC"), dag_id
        assert dag.start_date == pendulum.datetime(2026, 6, 1, tz="UTC"), dag_id
        assert dag.catchup is False and dag.owner == "offline-eval"
    # the daily DAG runs on time; the readout and the weekly work on its evaluated days (assets)
    assert type(bounded["offline_eval_daily"].timetable).__name__ == "CronDataIntervalTimetable"
    assert {type(bounded[d].timetable).__name__ for d in ("offline_eval_ab_readout", "offline_eval_baseline_weekly")} \
        == {"PartitionedAssetTimetable"}
    assert bounded["offline_eval_daily"].max_active_runs == 1
    assert bounded["offline_eval_baseline_weekly"].default_args["retry_delay"].total_seconds() == 300
    assert bounded["offline_eval_ab_readout"].default_args["retries"] == 2
    monkeypatch.delenv("OFFLINE_EVAL_DAILY_END_DATE")
    assert all(d.end_date is None for d in DagBag(dag_folder=str(DAGS)).dags.values())
