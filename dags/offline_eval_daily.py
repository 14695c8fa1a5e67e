"""
### offline_eval_daily

Evaluates **one day of recommendation logs** per run, for every model version on it. Every
task is a thin client of the one long-lived Spark engine (a Spark Connect server; Airflow
connection `spark_connect_default`), so several tasks, DAGs and days can run at once; on the
2-core embedded engine the days of a backfill go one at a time, each using both cores.

1. **validate**: reads each input partition `ds` once, caches it in the engine (the day's
   snapshot) and runs the Great Expectations suites in `expectations/` on it. A failure fails
   the task at once, without retries, naming table, partition, column and check; the result
   JSON stays under `reports/validation/<ds>/`. Nothing downstream computes that day.
2. **compute**: from the same cached snapshot (no second read): `metrics_daily`, the day's
   mergeable profile (`profiles_daily`) and a bounded sample (`samples_daily`), for ds only.
3. **baselines**: the day's references, merged from stored daily profiles: the previous day,
   and the 7 days ending the last Sunday (stored in `baselines`). A day of a window that
   was never evaluated is profiled here from its raw partitions, once, and the log says so.
   `depends_on_past`: it waits for the previous day's run to have finished its own compute, so
   in a backfill every day compares against its complete references. A day rejected by the
   gate skips this task (it still counts as done for the next day).
4. **drift**: the day's profile against the previous day and the weekly baseline:
   `drift_daily`, `concept_drift_daily`, `alerts_daily`.
5. **publish**: an Evidently report per version under `reports/<model>/<version>/<ds>/` and one
   MLflow run per (model, version, ds, cadence), from the result tables.
6. **notify**: the day's alerts, grouped into incidents (alerts of a version that share a
   cause), to the people `conf/alerting.yaml` routes each tier to, through Airflow's notifiers
   (SMTP and webhook connections; the local outbox `.local/outbox/` in the embedded stack). A
   rerun sends nothing twice; a changed incident goes out as an update.
7. **watcher** (runs only if a task failed): fails the run, so a day the gate rejected is a
   failed run even though its baselines task ran and skipped.

**Which day a run evaluates.** The schedule is a data-interval timetable: the run whose
interval is `[D 00:00, D+1 00:00)` UTC starts after midnight ending day D and evaluates
`ds = D` (`{{ ds }}` is the interval start). A backfill from A to B evaluates exactly the days
A..B (`--reprocess-behavior completed` or `failed`: the `depends_on_past` task requires one).

A task that fails (after its retries) alerts the severe tier at once (`on_failure_callback`).

**Assets (lineage and what it schedules; docs/airflow_assets.md).** validate reads the input
tables (`hive://<database>/<table>`) and emits `offline-eval://<database>/inputs_validated`;
compute emits `metrics_daily` (the *evaluated day*), `profiles_daily`, `samples_daily`; baselines
emits `baselines`; drift emits `drift_daily`, `concept_drift_daily`, `alerts_daily`. Every event
has partition key `ds` and `extra = {"ds": ds, ...}`. A task emits only when it succeeds, so a day
the gate rejected emits nothing: `offline_eval_ab_readout` (one run per evaluated day) and
`offline_eval_baseline_weekly` (one run per week whose seven days were all evaluated) never
start from it.

Reruns and backfills are idempotent: the same day gives identical tables, the same single
MLflow run and replaced report files.
"""
from __future__ import annotations

from itertools import pairwise

from airflow.sdk import Param, dag, task
from offline_eval_airflow import SPARK_CONN_ID, day_config, require_upstream_success, run_job, schedule_args, timetable
from offline_eval_airflow.assets import (
    ALERTS_DAILY,
    BASELINES,
    CONCEPT_DRIFT_DAILY,
    DRIFT_DAILY,
    INPUTS_VALIDATED,
    METRICS_DAILY,
    PROFILES_DAILY,
    SAMPLES_DAILY,
    emit_day,
    input_assets,
)
from offline_eval_airflow.notify import notify_day_failure

FAILED = {"on_failure_callback": notify_day_failure}


@dag(
    dag_id="offline_eval_daily",
    schedule=timetable("0 0 * * *"),
    # One day at a time: a day's compute runs its independent passes side by side and uses both
    # cores of the 2-core engine, so a day's run takes 26-31 s; two days at once finish a backfill
    # 14-22% sooner but each run takes 40-65 s (backfill.sh's BACKFILL_MAX_ACTIVE_RUNS=2 with
    # OFFLINE_EVAL_EVALUATE_WORKERS=1 chooses that; docs/benchmarks.md).
    **schedule_args(max_active_runs=1),
    params={
        "sample_rows": Param(50_000, type="integer", minimum=100, maximum=5_000_000,
                             description="Max rows per model version in the Evidently sample."),
    },
    tags=["offline-eval", "daily", "spark", "mlflow"],
    doc_md=__doc__,
)
def offline_eval_daily() -> None:
    # A failed suite fails at once (bad data); one retry covers a transient engine failure.
    # Outlet events are registered only when a task succeeds: a day the gate rejects emits none.
    @task.pyspark(conn_id=SPARK_CONN_ID, retries=1, inlets=input_assets(), outlets=[INPUTS_VALIDATED], **FAILED)
    def validate(spark=None, ds: str | None = None, params: dict | None = None, outlet_events=None) -> dict:
        from offline_eval.jobs import validate as job

        result = run_job("validate", job.run, day_config(ds, params), spark=spark)
        emit_day(outlet_events, [INPUTS_VALIDATED], ds)
        return result

    @task.pyspark(conn_id=SPARK_CONN_ID, retries=2, inlets=[INPUTS_VALIDATED],
                  outlets=[METRICS_DAILY, PROFILES_DAILY, SAMPLES_DAILY], **FAILED)
    def compute(spark=None, ds: str | None = None, params: dict | None = None, outlet_events=None) -> dict:
        from offline_eval.jobs import compute as job

        result = run_job("compute", job.run, day_config(ds, params), spark=spark)
        # metrics_daily is the evaluated day: the readout and weekly DAGs are scheduled on it.
        emit_day(outlet_events, [METRICS_DAILY, PROFILES_DAILY, SAMPLES_DAILY], ds, models=result.get("models", []))
        return result

    @task.pyspark(conn_id=SPARK_CONN_ID, retries=2, trigger_rule="all_done", depends_on_past=True,
                  inlets=[PROFILES_DAILY], outlets=[BASELINES], **FAILED)
    def baselines(spark=None, ds: str | None = None, params: dict | None = None, ti=None, outlet_events=None) -> dict:
        from offline_eval.jobs import baselines as job

        require_upstream_success(ti, "compute")
        result = run_job("baselines", job.run, day_config(ds, params), spark=spark)
        emit_day(outlet_events, [BASELINES], ds)
        return result

    @task.pyspark(conn_id=SPARK_CONN_ID, retries=2, inlets=[PROFILES_DAILY, BASELINES],
                  outlets=[DRIFT_DAILY, CONCEPT_DRIFT_DAILY, ALERTS_DAILY], **FAILED)
    def drift(spark=None, ds: str | None = None, params: dict | None = None, outlet_events=None) -> dict:
        from offline_eval.jobs import drift as job

        result = run_job("drift", job.run, day_config(ds, params), spark=spark)
        emit_day(outlet_events, [DRIFT_DAILY, CONCEPT_DRIFT_DAILY, ALERTS_DAILY], ds)
        return result

    @task.pyspark(conn_id=SPARK_CONN_ID, retries=2, **FAILED)
    def publish(spark=None, ds: str | None = None, params: dict | None = None, run_id: str | None = None) -> list:
        from offline_eval.jobs import publish as job

        return run_job("publish", job.run, day_config(ds, params), dag_run_id=run_id or "unknown", spark=spark)

    @task.pyspark(conn_id=SPARK_CONN_ID, retries=2)
    def notify(spark=None, ds: str | None = None, params: dict | None = None) -> dict:
        from offline_eval_airflow.notify import sender

        from offline_eval.jobs import notify as job

        return run_job("notify", job.run, day_config(ds, params), send=sender(), spark=spark)

    @task(trigger_rule="one_failed", retries=0)
    def watcher() -> None:
        """Fails the run when any task of the day failed. baselines runs after a failed upstream
        (trigger rule all_done, so a rejected day does not block the next one) and then skips,
        so without this leaf a day the gate rejected would end as a green run."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("a task of this day failed: see the failed task's log")

    steps = [validate(), compute(), baselines(), drift(), publish(), notify()]
    for upstream, downstream in pairwise(steps):
        upstream >> downstream
    steps >> watcher()


offline_eval_daily()
