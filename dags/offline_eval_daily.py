"""
### offline_eval_daily

Evaluates **one day of recommendation logs** per run, for every model version on it:

1. **validate** (spark-submit `spark_jobs/validate_inputs.py`): the Great Expectations suites in
   `expectations/` on each input partition `ds`. A failure fails the run for that day and
   lists the table, partition and failed expectations with counts; the result JSON is kept
   under `reports/validation/<ds>/`. Nothing downstream runs.
2. **compute** (spark-submit `spark_jobs/compute_metrics.py`): reads each input partition
   once, overwrites partition `ds` of `metrics_daily`, stages small aggregates and a
   bounded sample per model version.
3. **publish** (Python): an Evidently report per version under
   `reports/<model>/<version>/<ds>/` and one MLflow run per (model, version, ds, cadence).

**Which day a run evaluates.** The schedule is a data-interval timetable: the run whose
interval is `[D 00:00, D+1 00:00)` UTC starts after midnight ending day D and evaluates
`ds = D` (`{{ ds }}` is the interval start). A backfill from A to B evaluates exactly the days
A..B. (Airflow 3's plain `@daily` would make `ds` the run date instead.)

Reruns and backfills are idempotent: the same day gives identical tables, the same single
MLflow run and replaced report files.

Spark jobs take their master from the `spark_default` connection (`local[*]` by default)
and share the `offline_eval_spark` pool: with the embedded Derby metastore only one Spark
application may hold the metastore at a time, so the pool has one slot on a laptop; give
it more on a cluster with a shared metastore.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, task

from offline_eval.orchestration import schedule_args, spark_job

_DAY_ARGS = ["--ds", "{{ ds }}", "--sample-rows", "{{ params.sample_rows }}"]


@dag(
    dag_id="offline_eval_daily",
    **schedule_args(max_active_runs=2),
    params={
        "sample_rows": Param(50_000, type="integer", minimum=100, maximum=5_000_000,
                             description="Max rows per model version in the Evidently sample."),
    },
    tags=["offline-eval", "daily", "spark", "mlflow"],
    doc_md=__doc__,
)
def offline_eval_daily() -> None:
    # A failed suite exits with the "bad data" code and fails at once (SparkJobOperator);
    # one retry covers a transient failure (metastore lock, lost executor).
    validate = spark_job("validate", "validate_inputs.py", _DAY_ARGS, retries=1)
    compute = spark_job("compute", "compute_metrics.py", _DAY_ARGS, retries=2)

    @task(retries=2)
    def publish(ds: str | None = None, run_id: str | None = None, params: dict | None = None) -> list[dict]:
        from offline_eval.config import DayConfig
        from offline_eval.jobs import publish as publish_job

        day = DayConfig(ds=ds, sample_rows=int(params["sample_rows"]))
        return publish_job.run(day, dag_run_id=run_id or "unknown")

    validate >> compute >> publish()


offline_eval_daily()
