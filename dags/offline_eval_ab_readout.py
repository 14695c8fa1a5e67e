"""
### offline_eval_ab_readout

A/B readout of every experiment running on day `ds` (or of the one named in the Params),
over the window from the experiment's first day (or Param `start`) to `ds`:

1. **readout** (on the Spark engine): per-user sufficient statistics from the Hive logs, then
   the sample-ratio check, lifts with intervals (delta method for ratios,
   CUPED with the pre-period), Holm-adjusted p-values. Writes `readout.{json,html,md}` under
   `reports/ab/<experiment>/<ds>/`, replacing a previous run's files.
2. **log_to_mlflow** (Python): one MLflow run per (experiment, ds) in the model's experiment,
   tagged with the experiment id and the model version of every arm.

**When it runs, and which day it reads out.** Scheduled on the *evaluated day* asset
`hive://<database>/metrics_daily` (a partitioned asset schedule): every day the daily DAG's
compute finishes queues one readout with partition key `ds = D`, and the run reads out the window
ending on D (the `ds` of its triggering asset event). A day the Great Expectations gate rejected
has no event, so it is never read out by the schedule; when the day is fixed and evaluated
again, its readout runs then.

A backfill of the daily DAG emits one event per day: with this DAG unpaused, it queues one readout
per backfilled day. `scripts/backfill.sh` keeps this DAG paused during the daily backfill (events
then queue nothing) and, with `AB_READOUT_DAY=D`, triggers the one readout of D afterwards, only
if D's compute succeeded.

On demand: trigger with Params `experiment`, `start` and `end` (empty `end` means: the day of the
triggering event, else the run's logical date, e.g. `airflow dags test offline_eval_ab_readout D`).
A manual run reads out the day it is given; checking that the day passed the gate is then the
caller's part.
"""
from __future__ import annotations

from airflow.sdk import Param, dag, task
from offline_eval_airflow import SPARK_CONN_ID, run_job, schedule_args
from offline_eval_airflow.assets import METRICS_DAILY, READOUT_INPUTS, run_day, table_asset
from offline_eval_airflow.schedule import evaluated_day_schedule


@dag(
    dag_id="offline_eval_ab_readout",
    schedule=evaluated_day_schedule(),
    **schedule_args(),
    params={
        "experiment": Param("", type="string", pattern=r"^[A-Za-z0-9_.-]*$",
                            description="Experiment id; empty = every experiment running on the day."),
        "start": Param("", type="string", pattern=r"^(\d{4}-\d{2}-\d{2})?$",
                       description="First day of the window; empty = the experiment's first day."),
        "end": Param("", type="string", pattern=r"^(\d{4}-\d{2}-\d{2})?$",
                     description="Last day of the window; empty = the evaluated day that triggered the run "
                                 "(or the run's logical date)."),
        "correction": Param("holm", enum=["none", "holm", "bh"], description="Multiple-testing correction."),
    },
    tags=["offline-eval", "ab", "spark", "mlflow"],
    doc_md=__doc__,
)
def offline_eval_ab_readout() -> None:
    # The readout reads the raw logs of its whole window; the evaluated day only triggers it.
    @task.pyspark(conn_id=SPARK_CONN_ID, retries=2, inlets=[METRICS_DAILY, *map(table_asset, READOUT_INPUTS)])
    def readout(spark=None, ds: str | None = None, params: dict | None = None, triggering_asset_events=None,
                dag_run=None) -> dict:
        from offline_eval.jobs import ab_readout

        params = params or {}
        day = run_day(params, triggering_asset_events, METRICS_DAILY, dag_run, ds)
        return run_job("readout", ab_readout.run, day, experiment=params.get("experiment") or None,
                       start=params.get("start") or None, correction=params.get("correction") or "holm", spark=spark)

    @task(retries=2)
    def log_to_mlflow(ds: str | None = None, run_id: str | None = None, params: dict | None = None,
                      triggering_asset_events=None, dag_run=None) -> list[dict]:
        from offline_eval.jobs import ab_readout

        params = params or {}
        day = run_day(params, triggering_asset_events, METRICS_DAILY, dag_run, ds)
        return ab_readout.publish(day, experiment=params.get("experiment") or None, dag_run_id=run_id or "unknown")

    readout() >> log_to_mlflow()


offline_eval_ab_readout()
