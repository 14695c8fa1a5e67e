"""drift: compare a day's stored profile with its references (merges of stored daily profiles)
and write ``drift_daily``, ``concept_drift_daily`` and ``alerts_daily`` for that day; and
`offline-eval drift`, the same comparison for any two tables (CSV or Parquet).

Neither reads a row of the day again: the day was profiled once by compute (one pass), and
every statistic here is computed from profiles (``stats.drift``, ``stats.quality``,
``stats.alerts``).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from offline_eval import alerting, failpoints, thresholds
from offline_eval.config import DayConfig, Settings
from offline_eval.contract import OUTPUT_TABLES
from offline_eval.dates import DRIFT_REFERENCES, Window, reference_windows
from offline_eval.errors import DataError
from offline_eval.io import profiles as profile_store
from offline_eval.io import results
from offline_eval.io.files import prepare_output, read_table
from offline_eval.io.paths import strict_json_value, write_json_atomic
from offline_eval.io.spark import get_spark
from offline_eval.io.tables import Tables
from offline_eval.metrics.table_profile import align_types, split_columns, table_profile
from offline_eval.stats.day_drift import alert_rows, compare, concept_rows, drift_rows, lift_rows
from offline_eval.stats.incidents import DayEvidence
from offline_eval.stats.profile import Profile

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def reference(tables: Tables, window: Window) -> dict[tuple[str, str], Profile]:
    """A window's references: as the baselines task stored them (it re-merges them from the
    daily profiles just before this task), or merged here if they are not stored; the previous
    day is its day's profile."""
    if window.days > 1 and tables.has_partition("baselines", window.end, window_days=window.days):
        return profile_store.read_window(tables, window.days, window.end)
    return profile_store.read_reference(tables, window)


def day_evidence(tables: Tables, ds: str, refs: dict[str, tuple[Window, Any]], drift: list, concept: list
                 ) -> dict[tuple[str, str], DayEvidence]:
    """Per version, what the alerts' context needs: metrics_daily of the day and of its
    references' days (small rows, one read), and the drift rows just computed."""
    previous = next((w.end for w, _ in refs.values() if w.name == "previous_day"), None)
    week = next((w.dates for w, _ in refs.values() if w.name == "baseline_7d"), [])
    by_day = results.day_rows(tables, "metrics_daily", sorted({ds, *([previous] if previous else []), *week}))

    def of(day: str | None, key: tuple[str, str]) -> list[dict]:
        return [r for r in by_day.get(day or "", []) if (r["model_name"], r["model_version"]) == key]

    keys = {(r["model_name"], r["model_version"]) for r in by_day.get(ds, [])}
    security = results.day_rows(tables, "security_daily", [ds]).get(ds, [])
    return {key: DayEvidence(today=of(ds, key), previous_day=of(previous, key), week=[of(d, key) for d in week],
                             drift=[r.to_row() for r in drift if (r.model_name, r.model_version) == key],
                             concept=[r.to_row() for r in concept if (r.model_name, r.model_version) == key],
                             security=security)
            for key in keys}


def run(day: DayConfig, settings: Settings | None = None, spark: SparkSession | None = None) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    spark = spark or get_spark(settings, tag=f"offline-eval-drift-{day.ds}")
    tables = Tables(spark, settings)
    tables.ensure(OUTPUT_TABLES.values())
    t0 = time.monotonic()
    current = profile_store.read_days(tables, [day.ds]).get(day.ds)
    if not current:
        raise DataError(f"table profiles_daily: partition ds={day.ds} does not exist (check: partition_exists); "
                        "the compute task of that day writes it")
    limits = thresholds.load()
    refs = {w.name: (w, reference(tables, w)) for w in reference_windows(day.ds) if w.name in DRIFT_REFERENCES}
    rows, notes = drift_rows(current, refs, limits)
    concept = concept_rows(current, refs)
    evidence = day_evidence(tables, day.ds, refs, rows, concept)
    alerts = alert_rows(current, refs, day.ds, limits, alerting.load(), evidence, rows)
    tables.write_rows([r.to_row() for r in rows], "drift_daily", ds=day.ds)
    failpoints.reach("drift.between_writes")
    tables.write_rows([r.to_row() for r in concept], "concept_drift_daily", ds=day.ds)
    tables.write_rows([r.to_row() for r in alerts], "alerts_daily", ds=day.ds)
    lifts = lift_rows(current, refs, day.ds)
    tables.write_rows(lifts, "lifts_daily", ds=day.ds)
    for note in notes:
        log.info("drift ds=%s: %s", day.ds, note)
    drifted = sum(r.drifted for r in rows)
    log.info("ds=%s: %d drift rows (%d drifted), %d concept drift rows, %d alerts in %.1fs", day.ds, len(rows),
             drifted, len(concept), len(alerts), time.monotonic() - t0)
    return {"ds": day.ds, "drift_rows": len(rows), "drifted": drifted, "alerts": len(alerts), "lifts": len(lifts),
            "notes": notes}


def run_files(reference: str, current: str, out: str | None, *, columns: Sequence[str] | None = None,
              categorical: Sequence[str] = (), settings: Settings | None = None) -> dict[str, Any]:
    """`offline-eval drift`: profile both tables (each column read once), compare the profiles."""
    out_path = prepare_output(out, "--out")
    settings = settings or Settings.from_env()
    spark = get_spark(settings, tag="offline-eval-drift")
    ref_df, cur_df = read_table(spark, reference), read_table(spark, current)
    for df, path in ((ref_df, reference), (cur_df, current)):
        if df.isEmpty():
            raise DataError(f"{path}: no data rows (check: non-empty input)")
    ref_df, cur_df = align_types(ref_df, cur_df, reference, current, columns, categorical)
    numeric, cats = split_columns(dict(ref_df.dtypes), dict(cur_df.dtypes), columns, categorical,
                                  f"{reference} vs {current}")
    t0 = time.monotonic()
    limits = thresholds.load().defaults
    ref = table_profile(ref_df, numeric, cats, "reference")
    t1 = time.monotonic()
    cur = table_profile(cur_df, numeric, cats, "current")
    result = {"columns": compare(ref, cur, limits), "reference": str(reference), "current": str(current),
              "seconds": {"reference_profile": round(t1 - t0, 3), "current_profile": round(time.monotonic() - t1, 3)}}
    drifted = [c["column"] for c in result["columns"] if c["verdict"] in ("minor", "severe")]
    log.info("drift %s vs %s: %d columns, drifted: %s", reference, current, len(result["columns"]), drifted or "none")
    if out_path:
        write_json_atomic(out_path, result)
    return strict_json_value(result)
