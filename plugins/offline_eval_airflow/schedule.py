"""The ``@dag`` arguments every DAG of the project shares."""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

# First day any DAG of the project may schedule; runs before it are backfills.
DAGS_START = (2026, 6, 1)


def timetable(cron: str = "0 0 * * *") -> Any:
    """A data-interval timetable in UTC: the run for ``[D, D+1)`` starts after that interval and
    has ``ds = D``, so a run evaluates the day it is named after."""
    from airflow.sdk import CronDataIntervalTimetable

    return CronDataIntervalTimetable(cron, timezone="UTC")


def schedule_args(*, max_active_runs: int = 1, retries: int = 2,
                  retry_delay: timedelta = timedelta(minutes=1)) -> dict[str, Any]:
    """The rest of the schedule (the ``schedule=timetable(...)`` argument is given by each DAG):

    * No catchup; history is filled with ``airflow backfill create`` (scripts/backfill.sh).
    * ``OFFLINE_EVAL_DAILY_END_DATE`` (yyyy-mm-dd, optional): the last day to schedule. The demo
      sets it to its last generated day so that unpausing for the backfill schedules nothing
      for today, whose partitions do not exist. Read from the environment, never from Airflow
      Variables at parse time.
    """
    import pendulum

    end = os.environ.get("OFFLINE_EVAL_DAILY_END_DATE")
    return {
        "start_date": pendulum.datetime(*DAGS_START, tz="UTC"),
        "catchup": False,
        "end_date": pendulum.parse(end, tz="UTC") if end else None,
        "max_active_runs": max_active_runs,
        "default_args": {"owner": "offline-eval", "retries": retries, "retry_delay": retry_delay},
    }


def evaluated_day_schedule() -> Any:
    """One run per evaluated day: an event of ``metrics_daily`` (emitted by the daily DAG's
    compute, keyed by ``ds``) queues one run with partition key ``ds``. A rejected day has no
    event, so no run."""
    from airflow.sdk import PartitionedAssetTimetable

    from offline_eval_airflow.assets import METRICS_DAILY

    return PartitionedAssetTimetable(assets=METRICS_DAILY)


def evaluated_week_schedule() -> Any:
    """One run per ISO week [Mon, Sun] once all seven days have an evaluated-day event; its
    partition key is the Monday (yyyy-mm-dd). A week with a day the gate rejected waits (the UI
    lists the days that arrived) until that day is fixed and evaluated again."""
    from airflow.sdk import PartitionedAssetTimetable, RollupMapper, StartOfWeekMapper, WeekWindow

    from offline_eval_airflow.assets import METRICS_DAILY

    week = StartOfWeekMapper(timezone="UTC", input_format="%Y-%m-%d", output_format="%Y-%m-%d")
    return PartitionedAssetTimetable(assets=METRICS_DAILY,
                                     default_partition_mapper=RollupMapper(upstream_mapper=week, window=WeekWindow()))
