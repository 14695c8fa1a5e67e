"""Running the library's jobs as Airflow tasks, with the failure contract of the project.

Every Spark task is ``@task.pyspark`` on the Spark Connect connection ``SPARK_CONN_ID``
(``spark_connect_default``): Airflow hands the task a client session of the engine, so a task
is a thin client and the engine's JVM is shared by every task and day. The job runs in the
engine session all tasks share (``offline_eval.io.spark``: its compiled query stages are
reused), reached through the same connection; the session Airflow opened stays unused.

Which failures a retry can fix:

* bad input data (``offline_eval.errors.DataError``: a failed expectation suite, a missing
  partition) and bad configuration (``ConfigError``) fail the task at once
  (``AirflowFailException``): a retry would give the same answer until someone fixes the data
  or the configuration, and the day's downstream tasks never start;
* anything else (the engine restarting, a lost executor, out of memory) is retried.

On the command line the same contract is the exit code: 3 bad data, 2 configuration, 1 other.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

SPARK_CONN_ID = os.environ.get("OFFLINE_EVAL_SPARK_CONN_ID", "spark_connect_default")


def run_job(task_id: str, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``job``, turning data and configuration errors into failures without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from offline_eval.config import ConfigError
    from offline_eval.errors import DataError

    try:
        if kwargs.get("spark") is not None:
            kwargs["spark"] = task_session(kwargs["spark"])
        return job(*args, **kwargs)
    except DataError as exc:
        raise AirflowFailException(f"{task_id}: bad input data (exit code 3 on the command line); not "
                                   f"retrying.\n{exc}") from exc
    except ConfigError as exc:
        raise AirflowFailException(f"{task_id}: configuration error (exit code 2 on the command line); not "
                                   f"retrying.\n{exc}") from exc


def task_session(given: Any) -> Any:
    """The configured session a job runs in: the shared one of the engine behind the task's
    Spark Connect connection (``offline_eval.io.spark.connect``, which applies the pipeline's
    session settings), or ``given`` with those settings when the connection is not a Spark
    Connect one (a local Spark master)."""
    from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook
    from airflow.sdk import BaseHook

    from offline_eval.config import Settings
    from offline_eval.io.spark import configure, connect

    settings = Settings.from_env()
    if BaseHook.get_connection(SPARK_CONN_ID).conn_type != SparkConnectHook.conn_type:
        return configure(given, settings)
    return connect(SparkConnectHook(SPARK_CONN_ID).get_connection_url(), settings)


def day_config(ds: str, params: dict | None) -> Any:
    from offline_eval.config import DayConfig

    return DayConfig(ds=ds, sample_rows=int((params or {}).get("sample_rows", 50_000)))


def require_upstream_success(ti: Any, task_id: str) -> None:
    """Skip this task unless ``task_id`` of the same run succeeded.

    For a task that must run whatever happened upstream (``trigger_rule="all_done"``, so a day
    rejected by the gate does not block the next day's ``depends_on_past`` chain) but has
    nothing to do when the day was not computed."""
    from airflow.sdk.exceptions import AirflowSkipException

    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[task_id], run_ids=[ti.run_id])
    state = (states.get(ti.run_id) or {}).get(task_id)
    if state != "success":
        raise AirflowSkipException(f"{task_id} did not succeed in this run ({state}): nothing to do for this day")
