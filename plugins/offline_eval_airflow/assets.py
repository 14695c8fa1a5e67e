"""The Airflow assets of the pipeline: what each task reads and writes, and the events that
schedule the A/B readout and the weekly work.

Tables are named ``hive://<database>/<table>`` (asset name ``<database>.<table>``), the day's
gate verdict ``offline-eval://<database>/inputs_validated``. Every event of a day-partitioned
asset carries the day twice: as its partition key (Airflow 3.3 asset partitions, which
partition-aware DAGs are scheduled on) and as ``extra["ds"]`` (what a person reads in the UI).

Why the events are trustworthy: a task registers its outlet events only when it succeeds. The
gate (validate) fails on bad data before it emits, compute never starts on a rejected day,
and the daily ``baselines`` task skips, so a rejected day leaves no event anywhere and
schedules nothing downstream.

The database is ``OFFLINE_EVAL_DATABASE`` (what ``offline_eval.config.Settings`` reads), read
here from the environment because DAG files must not import the library's config at parse time
for a name.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow.sdk import Asset

DATABASE = os.environ.get("OFFLINE_EVAL_DATABASE", "offline_eval")
GROUP = "offline-eval"


def table_asset(table: str, database: str = DATABASE) -> Asset:
    """The asset of a Hive table of the project."""
    return Asset(name=f"{database}.{table}", uri=f"hive://{database}/{table}", group=GROUP)


def input_assets(database: str = DATABASE) -> list[Asset]:
    """The day's input tables (``offline_eval.contract.INPUT_TABLES``): written outside Airflow,
    so they appear in the lineage as sources only."""
    from offline_eval.contract import INPUT_TABLES  # the contract is pure Python: cheap at parse time

    return [table_asset(name, database) for name in INPUT_TABLES]


# The day passed the Great Expectations gate (validate).
INPUTS_VALIDATED = Asset(name=f"{DATABASE}.inputs_validated", uri=f"offline-eval://{DATABASE}/inputs_validated",
                         group=GROUP, extra={"what": "a day's input partitions passed the GX suites"})
# The evaluated day (compute): the readout and the weekly DAG are scheduled on it.
METRICS_DAILY = table_asset("metrics_daily")
PROFILES_DAILY = table_asset("profiles_daily")
SAMPLES_DAILY = table_asset("samples_daily")
# Reference windows (the daily baselines task and the weekly build).
BASELINES = table_asset("baselines")
DRIFT_DAILY = table_asset("drift_daily")
CONCEPT_DRIFT_DAILY = table_asset("concept_drift_daily")
ALERTS_DAILY = table_asset("alerts_daily")
METRICS_WEEKLY = table_asset("metrics_weekly")

# The readout reads the raw logs of its window (users, sessions and the serving log it does not need).
READOUT_INPUTS = ("impressions", "clicks", "add_to_cart", "orders")


def emit_day(outlet_events: Any, assets: Iterable[Asset], ds: str | None, **extra: Any) -> None:
    """Key this task's events of ``assets`` by the day: partition key ``ds`` and ``extra["ds"]``.

    Called after the task's work, so a failing task emits nothing; Airflow registers the events
    when the task succeeds."""
    if not ds:  # an event without its day would schedule a readout of no particular day
        raise ValueError("no ds to key the asset events by")
    for asset in assets:
        event = outlet_events[asset]
        event.extra = {"ds": ds, **extra}
        event.add_partitions(ds)


def triggering_day(triggering_asset_events: Mapping[Any, Sequence[Any]] | None, asset: Asset) -> str | None:
    """The day an asset-triggered run is for: the ``ds`` of the latest triggering event of
    ``asset`` (its partition key when an event has no ``ds``); None for a run no event triggered
    (manual, ``airflow dags test``)."""
    events = list((triggering_asset_events or {}).get(asset) or [])
    if not events:
        return None
    latest = max(events, key=lambda e: e.timestamp)
    return str((latest.extra or {}).get("ds") or latest.partition_key or "") or None


def run_day(params: Mapping[str, Any] | None, triggering_asset_events: Mapping[Any, Sequence[Any]] | None,
            asset: Asset, dag_run: Any = None, ds: str | None = None) -> str:
    """The day a run works on, in order: the Params ``end`` (on demand), the triggering event's
    day, the run's partition key, the run's ``ds`` (a manual run with a logical date)."""
    day = ((params or {}).get("end") or triggering_day(triggering_asset_events, asset)
           or getattr(dag_run, "partition_key", None) or ds)
    if not day:
        raise ValueError("no day for this run: trigger it with Params end=yyyy-mm-dd or a logical date")
    return str(day)
