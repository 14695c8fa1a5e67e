"""Airflow glue of the offline-eval DAGs: the shared schedule, and the tasks that run the
library's jobs on the Spark engine. The library (``offline_eval``) itself imports no Airflow;
this package is on ``sys.path`` because it lives in the plugins folder."""
from __future__ import annotations

from offline_eval_airflow.schedule import DAGS_START, schedule_args, timetable
from offline_eval_airflow.tasks import SPARK_CONN_ID, day_config, require_upstream_success, run_job

__all__ = ["DAGS_START", "SPARK_CONN_ID", "day_config", "require_upstream_success", "run_job", "schedule_args",
           "timetable"]
