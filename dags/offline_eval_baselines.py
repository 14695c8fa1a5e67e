"""
### offline_eval_baseline_weekly

The weekly work, run on Monday for the week `[Mon, Sun]` that just ended:

1. **build**: the weekly references, merged from the stored daily profiles (`profiles_daily`), per model
version, in the `baselines` table keyed by (model, version, window end, window length): the
run for the week `[Mon, next Mon)` stores the 7- and 28-day windows ending on that Sunday
(grid counts and moments of every feature and the score, category frequencies, score bins
per user segment, mean and standard deviation of every daily metric).

The daily DAG's `baselines` task builds the same windows (same code) when a day needs them;
this DAG keeps them stored ahead of time and rebuilds them after a backfill changed a day's
profile. Days of the window with no profile (never evaluated) are profiled from their raw
partitions first, and the log says so. A rerun stores identical rows.
2. **evaluate_week**: the week's evaluation per model version (`offline_eval.jobs.weekly`):
   `metrics_weekly` (ratios of the week's sums, model quality from the week's score bins),
   a weekly report under `reports/<model>/<version>/weekly/<sunday>/` with the 7 days side by
   side, the week's incidents and its drift against the week before, and one MLflow run per
   version tagged `cadence = weekly`.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task
from offline_eval_airflow import SPARK_CONN_ID, run_job, schedule_args, timetable


@dag(
    dag_id="offline_eval_baseline_weekly",
    schedule=timetable("0 0 * * 1"),
    **schedule_args(retries=1, retry_delay=timedelta(minutes=5)),
    tags=["offline-eval", "baseline", "weekly", "spark"],
    doc_md=__doc__,
)
def offline_eval_baseline_weekly() -> None:
    @task.pyspark(conn_id=SPARK_CONN_ID)
    def build(spark=None, ds: str | None = None) -> dict:
        from offline_eval.dates import offset
        from offline_eval.jobs import baselines

        # ds is the interval's Monday (as in the daily DAG, ds names the interval start, also for
        # `airflow dags test` and backfills); the week [Mon, next Mon) ends on Sunday = ds + 6.
        return run_job("build", baselines.run_windows, offset(ds, 6), (7, 28), spark=spark)

    @task.pyspark(conn_id=SPARK_CONN_ID)
    def evaluate_week(spark=None, ds: str | None = None, run_id: str | None = None) -> list:
        from offline_eval.dates import offset
        from offline_eval.jobs import weekly

        return run_job("evaluate_week", weekly.run, offset(ds, 6), spark=spark, dag_run_id=run_id or "unknown")

    build() >> evaluate_week()


offline_eval_baseline_weekly()
