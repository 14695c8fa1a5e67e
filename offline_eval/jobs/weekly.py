"""weekly: the evaluation of a week (Monday, for the week ending Sunday), per model version.

Reads what the daily pipeline stored for the 7 days (``metrics_daily``, ``alerts_daily``, the
daily profiles merged into the week and the week before) through the IO layer; never a raw
partition. Writes ``metrics_weekly`` (partition ds = the Sunday), a weekly report per version
under ``reports/<model>/<version>/weekly/<sunday>/`` and one MLflow run per version tagged
``cadence = weekly``. A rerun replaces the partition and the report and keeps the run.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline_eval import thresholds
from offline_eval.config import Settings
from offline_eval.contract import OUTPUT_TABLES
from offline_eval.dates import Window, offset, parse_ds, validate_ds, window_dates
from offline_eval.errors import DataError
from offline_eval.io import evidently_workspace, mlflow_log, results
from offline_eval.io import profiles as profile_store
from offline_eval.io.paths import (
    failed_validation_days,
    replace_dir,
    weekly_report_dir,
    write_json_atomic,
    write_text_atomic,
)
from offline_eval.io.spark import get_spark
from offline_eval.io.tables import Tables
from offline_eval.reporting.weekly import render
from offline_eval.stats.day_drift import compare
from offline_eval.stats.incidents import group
from offline_eval.stats.weekly import week_metrics

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def _write_report(folder: Path, html: str, payload: dict[str, Any]) -> Path:
    write_text_atomic(folder / "report.html", html)
    write_json_atomic(folder / "week.json", payload)
    return folder / "report.html"


def run(end: str, settings: Settings | None = None, spark: SparkSession | None = None,
        dag_run_id: str = "manual") -> list[dict[str, Any]]:
    end = validate_ds(end)
    if parse_ds(end).weekday() != 6:
        log.warning("week ending %s: not a Sunday (%s); evaluating the 7 days ending on it anyway", end,
                    parse_ds(end).strftime("%A"))
    settings = settings or Settings.from_env()
    spark = spark or get_spark(settings, tag=f"offline-eval-weekly-{end}")
    tables = Tables(spark, settings)
    tables.ensure(OUTPUT_TABLES.values())
    days = window_dates(end, 7)
    before = window_dates(offset(end, -7), 7)
    # As the references do, the week leaves out the days whose input validation failed.
    rejected = set(failed_validation_days(settings, days + before))
    by_day = results.day_rows(tables, "metrics_daily", [d for d in days + before if d not in rejected])
    this = {d: by_day[d] for d in days if d in by_day}
    if not this:
        why = f"; validation failed on {', '.join(sorted(rejected))}" if rejected else ""
        raise DataError(f"table metrics_daily: no evaluated day in the week {days[0]}..{end} (check: "
                        f"partition_exists){why}; run the daily DAG for those days first")
    if rejected & set(days):
        log.info("week ending %s: left out (input validation failed): %s", end, ", ".join(sorted(rejected & set(days))))
    previous = {d: by_day[d] for d in before if d in by_day}
    week_profiles = profile_store.read_reference(tables, Window("baseline_7d", 7, end))
    prev_profiles = profile_store.read_reference(tables, Window("baseline_7d", 7, offset(end, -7)))
    rows = week_metrics(this, {k: p.score_bins for k, p in week_profiles.items()})
    prev_rows = week_metrics(previous, {k: p.score_bins for k, p in prev_profiles.items()}) if previous else []
    tables.write_rows([{k: v for k, v in r.items() if k != "days"} for r in rows], "metrics_weekly", ds=end)
    alerts = results.by_version(r for rows_of_day in results.day_rows(tables, "alerts_daily", days).values()
                                for r in rows_of_day)
    limits = thresholds.load()
    published = []
    for key in sorted({(r["model_name"], r["model_version"]) for r in rows}):
        name, version = key
        mine = [r for r in rows if (r["model_name"], r["model_version"]) == key]
        week_all = {r["metric"]: r["value"] for r in mine if r["segment"] == "all"}
        prev_all = {r["metric"]: r["value"] for r in prev_rows
                    if (r["model_name"], r["model_version"]) == key and r["segment"] == "all"}
        daily = {d: {r["metric"]: r["value"] for r in this[d] if (r["model_name"], r["model_version"]) == key
                     and r["segment"] == "all"} for d in days if d in this}
        daily = {d: v for d, v in daily.items() if v}
        drift = []
        if key in week_profiles and key in prev_profiles:
            drift = compare(prev_profiles[key], week_profiles[key], limits.for_model(name))
        incidents = [i for d in days for i in group([a for a in alerts.get(key, []) if a["ds"] == d], d)]
        html = render(model_name=name, model_version=version, days=days, daily=daily, week=week_all,
                      previous=prev_all, incidents=incidents, drift=drift)
        folder = weekly_report_dir(settings, name, version, end)
        payload = {"week": {"start": days[0], "end": end}, "metrics": mine, "previous_week": prev_all,
                   "incidents": [{"ds": i.ds, "incident_id": i.incident_id, "tier": i.tier, "cause": i.cause,
                                  "alerts": len(i.alerts)} for i in incidents],
                   "drift": [{k: d.get(k) for k in ("column", "type", "psi", "verdict")} for d in drift]}
        report = replace_dir(folder, functools.partial(_write_report, html=html, payload=payload))
        metrics = dict(mlflow_log.metrics_by_version([{k: v for k, v in r.items() if k != "days"}
                                                      for r in mine]).get(key, {}))
        metrics.update({f"drift/previous_week/{d['column']}/psi": d.get("psi") for d in drift})
        metrics["alerts/incidents"] = float(len(incidents))
        # The week's numbers beside the days' in the model's Evidently project (cadence=weekly).
        evidently_workspace.add_published_day(settings, name, version, end, "weekly", None, metrics)
        run_key = mlflow_log.RunKey(name, version, end, "weekly")
        run = mlflow_log.log_day(
            settings, run_key, metrics=metrics,
            params={"week_start": days[0], "week_end": end, "model_name": name, "model_version": version,
                    "cadence": "weekly", "days_evaluated": str(len(daily))},
            tags={"offline_eval.dag_run_id": dag_run_id, "offline_eval.code_version": mlflow_log.source_version(),
                  "offline_eval.report_html": str(folder / report.name)},
            artifacts={"weekly": folder})
        log.info("week %s..%s %s %s: %d days, %d incidents, report %s, MLflow run %s", days[0], end, name, version,
                 len(daily), len(incidents), folder / report.name, run["run_id"])
        published.append({"model_name": name, "model_version": version, "report": str(folder / report.name),
                          **run})
    return published
