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

**Which day a run reads out.** Same timetable as `offline_eval_daily`: the run for the interval
`[D, D+1)` reads out the window ending on `ds = D`. On demand: trigger with Params
`experiment`, `start` and `end` (empty means: every running experiment, its first day, `ds`).
"""
from __future__ import annotations

from airflow.sdk import Param, dag, task
from offline_eval_airflow import SPARK_CONN_ID, run_job, schedule_args, timetable


@dag(
    dag_id="offline_eval_ab_readout",
    schedule=timetable("0 0 * * *"),
    **schedule_args(),
    params={
        "experiment": Param("", type="string", pattern=r"^[A-Za-z0-9_.-]*$",
                            description="Experiment id; empty = every experiment running on the day."),
        "start": Param("", type="string", pattern=r"^(\d{4}-\d{2}-\d{2})?$",
                       description="First day of the window; empty = the experiment's first day."),
        "end": Param("", type="string", pattern=r"^(\d{4}-\d{2}-\d{2})?$",
                     description="Last day of the window; empty = the run's ds."),
        "correction": Param("holm", enum=["none", "holm", "bh"], description="Multiple-testing correction."),
    },
    tags=["offline-eval", "ab", "spark", "mlflow"],
    doc_md=__doc__,
)
def offline_eval_ab_readout() -> None:
    @task.pyspark(conn_id=SPARK_CONN_ID, retries=2)
    def readout(spark=None, ds: str | None = None, params: dict | None = None) -> dict:
        from offline_eval.jobs import ab_readout

        params = params or {}
        return run_job("readout", ab_readout.run, params.get("end") or ds, experiment=params.get("experiment") or None,
                       start=params.get("start") or None, correction=params.get("correction") or "holm", spark=spark)

    @task(retries=2)
    def log_to_mlflow(ds: str | None = None, run_id: str | None = None, params: dict | None = None) -> list[dict]:
        from offline_eval.jobs import ab_readout

        params = params or {}
        return ab_readout.publish(params.get("end") or ds, experiment=params.get("experiment") or None,
                                  dag_run_id=run_id or "unknown")

    readout() >> log_to_mlflow()


offline_eval_ab_readout()
