"""Airflow glue shared by the DAGs: spark-submit that knows which failures a retry can fix.

The job entry points (``offline_eval.cli.main``) exit with a code that says what went wrong:

* 1: anything else (lost executor, metastore lock, out of memory): worth a retry;
* 2: bad configuration or arguments: a retry gives the same answer;
* 3: bad input data (a failed expectation suite, a missing partition): a retry gives the
  same answer until someone fixes the data, so the task fails at once and the day's
  downstream tasks never start.
"""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_DATA_INVALID = 3
NOT_RETRYABLE = {EXIT_CONFIG: "configuration error", EXIT_DATA_INVALID: "input data failed validation"}


class SparkJobOperator(SparkSubmitOperator):
    """``SparkSubmitOperator`` that fails without retries when the job reports a data or
    configuration error through its exit code.

    With ``deploy-mode cluster`` spark-submit does not return the driver's exit code, so every
    failure there is retried as usual.
    """

    def execute(self, context: Any) -> None:
        try:
            super().execute(context)
        except AirflowException as exc:
            code = self.exit_code()
            if code in NOT_RETRYABLE:
                raise AirflowFailException(
                    f"{self.task_id}: {NOT_RETRYABLE[code]} (exit code {code}); not retrying. "
                    "The job's log above names the table, partition and check."
                ) from exc
            raise

    def exit_code(self) -> int | None:
        proc = getattr(self._hook, "_submit_sp", None) if self._hook is not None else None
        return getattr(proc, "returncode", None)


SPARK_POOL = "offline_eval_spark"


def spark_job(task_id: str, script: str, application_args: list[str], *, retries: int = 2, **kwargs: Any) -> SparkJobOperator:
    """A task that spark-submits ``spark_jobs/<script>`` the way every DAG of the project does:
    master from the Spark connection, the shared pool (one slot with the embedded Derby
    metastore), the driver settings of ``Settings.from_env()``."""
    from offline_eval.config import Settings, project_root
    from offline_eval.io.spark import spark_env

    settings = Settings.from_env()
    return SparkJobOperator(
        task_id=task_id,
        application=str(project_root() / "spark_jobs" / script),
        application_args=application_args,
        conn_id=os.environ.get("OFFLINE_EVAL_SPARK_CONN_ID", "spark_default"),
        conf=settings.spark_conf(),
        env_vars=spark_env(settings),
        name=f"offline-eval-{task_id}-{{{{ ds }}}}",
        pool=SPARK_POOL,
        retries=retries,
        execution_timeout=kwargs.pop("execution_timeout", timedelta(hours=2)),
        **kwargs,
    )


# First day any DAG of the project may schedule; runs before it are backfills.
DAGS_START = (2026, 6, 1)


def schedule_args(cron: str = "0 0 * * *", *, max_active_runs: int = 1, retries: int = 2,
                  retry_delay: timedelta = timedelta(minutes=1)) -> dict[str, Any]:
    """The ``@dag`` arguments every DAG of the project shares.

    * A data-interval timetable in UTC: the run for ``[D, D+1)`` starts after that interval
      and has ``ds = D``, so a run evaluates the day it is named after.
    * No catchup; history is filled with ``airflow backfill create`` (scripts/backfill.sh).
    * ``OFFLINE_EVAL_DAILY_END_DATE`` (yyyy-mm-dd, optional): the last day to schedule. The demo
      sets it to its last generated day so that unpausing for the backfill schedules nothing
      for today, whose partitions do not exist. Read from the environment, never from Airflow
      Variables at parse time.
    """
    import pendulum
    from airflow.sdk import CronDataIntervalTimetable

    end = os.environ.get("OFFLINE_EVAL_DAILY_END_DATE")
    return {
        "schedule": CronDataIntervalTimetable(cron, timezone="UTC"),
        "start_date": pendulum.datetime(*DAGS_START, tz="UTC"),
        "catchup": False,
        "end_date": pendulum.parse(end, tz="UTC") if end else None,
        "max_active_runs": max_active_runs,
        "default_args": {"owner": "offline-eval", "retries": retries, "retry_delay": retry_delay},
    }
