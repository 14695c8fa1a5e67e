"""
### offline_eval_baseline_weekly

The weekly work for one ISO week `[Mon, Sun]`, run once every day of the week has been evaluated:

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

**When it runs (assets; docs/airflow_assets.md).** No cron: the schedule is the *evaluated day*
asset `hive://<database>/metrics_daily` rolled up by week (a partitioned asset schedule,
`RollupMapper(StartOfWeekMapper, WeekWindow)`): the run for the week of Monday M (partition key
`M`) is created once all seven days M..M+6 have an evaluated-day event since the week's last
run, normally right after Sunday's daily compute (Monday just after midnight, as a Monday cron
would). A week with a day the gate rejected waits, shown with the days that arrived under the
DAG's next-run assets in the UI, until that day is fixed and evaluated again. A backfill over a
whole week re-emits its seven events, so the week runs again and stores its windows anew; a
rerun of one day alone opens a new, partial week in the UI (run the week by hand if needed). So
no rejected day feeds a weekly baseline or evaluation through the schedule.
Asset-scheduled DAGs cannot be backfilled; for a week by hand: `airflow dags test
offline_eval_baseline_weekly <Monday>` (a manual run: the logical date names the Monday) or
`offline-eval weekly --end <Sunday>`. build emits `baselines`, evaluate_week `metrics_weekly`,
keyed by the Sunday.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task
from offline_eval_airflow import SPARK_CONN_ID, run_job, schedule_args
from offline_eval_airflow.assets import BASELINES, METRICS_DAILY, METRICS_WEEKLY, PROFILES_DAILY, emit_day
from offline_eval_airflow.schedule import evaluated_week_schedule


def week_end(dag_run: object, ds: str | None) -> str:
    """The Sunday ending the run's week: the week's Monday is the partition key of an
    asset-triggered run, the logical date (``ds``) of a manual one."""
    from offline_eval.dates import offset

    monday = getattr(dag_run, "partition_key", None) or ds
    if not monday:
        raise ValueError("no week for this run: trigger it with the week's Monday as logical date")
    return offset(monday, 6)


@dag(
    dag_id="offline_eval_baseline_weekly",
    schedule=evaluated_week_schedule(),
    **schedule_args(retries=1, retry_delay=timedelta(minutes=5)),
    tags=["offline-eval", "baseline", "weekly", "spark"],
    doc_md=__doc__,
)
def offline_eval_baseline_weekly() -> None:
    @task.pyspark(conn_id=SPARK_CONN_ID, inlets=[PROFILES_DAILY], outlets=[BASELINES])
    def build(spark=None, ds: str | None = None, dag_run=None, outlet_events=None) -> dict:
        from offline_eval.jobs import baselines

        # The week [Mon, Sun] ends on Sunday = Monday + 6; its windows are keyed by that Sunday.
        sunday = week_end(dag_run, ds)
        result = run_job("build", baselines.run_windows, sunday, (7, 28), spark=spark)
        emit_day(outlet_events, [BASELINES], sunday, windows=[7, 28])
        return result

    @task.pyspark(conn_id=SPARK_CONN_ID, inlets=[METRICS_DAILY, BASELINES], outlets=[METRICS_WEEKLY])
    def evaluate_week(spark=None, ds: str | None = None, run_id: str | None = None, dag_run=None,
                      outlet_events=None) -> list:
        from offline_eval.jobs import weekly

        sunday = week_end(dag_run, ds)
        result = run_job("evaluate_week", weekly.run, sunday, spark=spark, dag_run_id=run_id or "unknown")
        emit_day(outlet_events, [METRICS_WEEKLY], sunday)
        return result

    build() >> evaluate_week()


offline_eval_baseline_weekly()
