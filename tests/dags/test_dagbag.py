"""The DAG folder imports cleanly and the daily DAG has the structure the docs promise."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
HEAVY = {"pyspark", "mlflow", "evidently", "great_expectations", "pandas"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"offline_eval_daily", "offline_eval_ab_readout", "offline_eval_baseline_weekly",
            "offline_eval_baseline_daily"} <= set(dagbag.dags)


def test_daily_structure(dagbag):
    dag = dagbag.dags["offline_eval_daily"]
    assert {"offline-eval", "daily"} <= set(dag.tags)
    assert dag.catchup is False
    assert "evaluates" in dag.doc_md and "ds = D" in dag.doc_md
    order = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert order == {"validate": ["compute"], "compute": ["publish"], "publish": []}
    assert all(t.retries >= 1 for t in dag.tasks)
    assert dag.params["sample_rows"] == 50_000


def test_ab_readout_dag(dagbag):
    dag = dagbag.dags["offline_eval_ab_readout"]
    assert {"offline-eval", "ab"} <= set(dag.tags)
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "readout": ["log_to_mlflow"], "log_to_mlflow": []}
    readout = dag.get_task("readout")
    assert readout.application.endswith("spark_jobs/ab_readout.py") and readout.pool == "offline_eval_spark"
    assert readout.application_args[:2] == ["--ds", "{{ params.end or ds }}"]
    assert set(dag.params) == {"experiment", "start", "end", "correction"}
    assert dag.params["correction"] == "holm"
    assert "reports/ab/<experiment>/<ds>/" in dag.doc_md


@pytest.mark.parametrize("dag_id, interval_end, expected", [
    # the week [Mon 06-08, Mon 06-15) -> windows ending Sunday 06-14; the day [06-17, 06-18) -> 06-17
    ("offline_eval_baseline_weekly", "2026-06-15", ["--end", "2026-06-14", "--windows", "7,28"]),
    ("offline_eval_baseline_daily", "2026-06-18", ["--end", "2026-06-17", "--windows", "1"]),
])
def test_baseline_dags_build_the_window_that_ends_their_interval(dagbag, dag_id, interval_end, expected):
    import pendulum
    from airflow.sdk.execution_time import macros

    dag = dagbag.dags[dag_id]
    task = dag.get_task("build")
    assert task.application.endswith("spark_jobs/build_baseline.py") and task.pool == "offline_eval_spark"
    end = pendulum.parse(interval_end, tz="UTC")
    start = end.subtract(days=7 if "weekly" in dag_id else 1)
    context = {"data_interval_end": end, "ds": start.to_date_string(), "macros": macros}
    assert task.render_template(task.application_args, context) == expected
    assert dag.timetable.expression == ("0 0 * * 1" if "weekly" in dag_id else "0 0 * * *")


def test_daily_runs_evaluate_their_interval_start(dagbag):
    """A data-interval timetable: the run after midnight ending day D has logical date D."""
    dag = dagbag.dags["offline_eval_daily"]
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression == "0 0 * * *"


def test_spark_tasks_are_spark_submits_on_the_shared_pool(dagbag):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    dag = dagbag.dags["offline_eval_daily"]
    for task_id, script in (("validate", "validate_inputs.py"), ("compute", "compute_metrics.py")):
        task = dag.get_task(task_id)
        assert isinstance(task, SparkSubmitOperator) and type(task).__name__ == "SparkJobOperator"
        assert task.pool == "offline_eval_spark"
        assert task.application.endswith(f"spark_jobs/{script}")
        assert task.application_args[:2] == ["--ds", "{{ ds }}"]
        assert task.conf["spark.sql.sources.partitionOverwriteMode"] == "dynamic"
    assert dag.get_task("validate").retries == 1  # a failed suite fails at once (exit code 3)


def test_spark_master_comes_from_the_connection(monkeypatch):
    """What SparkSubmitHook would run, for the default local connection and for a cluster."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    for conn, master in (('{"conn_type": "spark", "host": "local[*]"}', "local[*]"),
                         ('{"conn_type": "spark", "host": "spark://spark-master", "port": 7077}', "spark://spark-master:7077")):
        monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", conn)
        hook = SparkSubmitHook(conn_id="spark_default", conf={"spark.sql.shuffle.partitions": "4"})
        cmd = hook._build_spark_submit_command("spark_jobs/compute_metrics.py")
        assert cmd[cmd.index("--master") + 1] == master
        assert "spark.sql.shuffle.partitions=4" in cmd


def test_dag_files_import_no_heavy_libraries_at_parse_time():
    for path in DAGS.glob("*.py"):
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {(n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
        names |= {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
        assert not names & HEAVY, f"{path.name} imports {names & HEAVY} at module level"


@pytest.mark.spark
@pytest.mark.parametrize("code, fails_at_once", [(3, True), (2, True), (1, False)])
def test_bad_data_exit_code_fails_without_retry(tmp_path, monkeypatch, code, fails_at_once):
    """A real spark-submit of a job that exits with ``code``: data and config errors (3, 2)
    raise AirflowFailException, which Airflow never retries; anything else stays retryable."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from offline_eval.orchestration import SparkJobOperator

    job = tmp_path / "job.py"
    job.write_text(f"import sys\nsys.exit({code})\n")
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[1]"}')
    op = SparkJobOperator(task_id="validate", application=str(job), conn_id="spark_default")
    with pytest.raises(AirflowException) as err:
        op.execute({})
    assert isinstance(err.value, AirflowFailException) is fails_at_once
    assert op.exit_code() == code


def test_every_dag_shares_the_timetable_and_stops_at_the_configured_end(monkeypatch):
    """OFFLINE_EVAL_DAILY_END_DATE (the demo's last day) bounds every DAG, so unpausing for a
    backfill never schedules a day without data; without it the DAGs run on."""
    import pendulum
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("OFFLINE_EVAL_DAILY_END_DATE", "2026-06-21")
    bounded = DagBag(dag_folder=str(DAGS)).dags
    assert len(bounded) == 4
    for dag_id, dag in bounded.items():
        assert dag.end_date == pendulum.datetime(2026, 6, 21, tz="UTC"), dag_id
        assert dag.start_date == pendulum.datetime(2026, 6, 1, tz="UTC"), dag_id
        assert dag.catchup is False and dag.owner == "offline-eval"
        assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert bounded["offline_eval_daily"].max_active_runs == 2
    assert bounded["offline_eval_baseline_weekly"].default_args["retry_delay"].total_seconds() == 300
    assert bounded["offline_eval_ab_readout"].default_args["retries"] == 2
    monkeypatch.delenv("OFFLINE_EVAL_DAILY_END_DATE")
    assert all(d.end_date is None for d in DagBag(dag_folder=str(DAGS)).dags.values())
