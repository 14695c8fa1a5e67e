"""publish: an Evidently report per model version and the day's numbers in MLflow.

Reads what compute and drift wrote (the day's result tables and the stored samples of the day
and the day before) through the IO layer; never a raw partition.
"""
from __future__ import annotations

import functools
import importlib
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from offline_eval.config import DayConfig, Settings
from offline_eval.dates import DRIFT_REFERENCES
from offline_eval.io import evidently_workspace, mlflow_log, results
from offline_eval.io.evidently_report import write_report_folder
from offline_eval.io.paths import (
    data_docs_page,
    day_report_dir,
    replace_dir,
    report_assets_dir,
    validation_file,
    write_json_atomic,
)
from offline_eval.io.spark import get_spark
from offline_eval.io.tables import Tables
from offline_eval.io.validation import validation_status
from offline_eval.reporting.day import DayHeadline
from offline_eval.stats.incidents import group

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


class NothingComputed(RuntimeError):
    """The compute task has not produced outputs for this ds."""


def input_partitions(validation: Path, ds: str) -> list[mlflow_log.InputPartition]:
    """The day's input partitions with the row counts the gate recorded (no Spark job)."""
    import json

    if not validation.is_file():
        return []
    result = json.loads(validation.read_text())
    return [mlflow_log.InputPartition(f"{result['database']}.{name}", ds, int(t["rows"]))
            for name, t in sorted(result.get("tables", {}).items()) if t.get("rows") is not None]


def incident_summaries(alert_rows: list[dict], ds: str) -> list[dict]:
    """The version's incidents of the day: tier, cause and the ids of their alerts."""
    return [{"incident_id": i.incident_id, "tier": i.tier, "title": i.title, "cause_kind": i.cause_kind,
             "cause": i.cause, "alert_ids": [a["alert_id"] for a in i.alerts]} for i in group(alert_rows, ds)]


def _warm_up(settings: Settings) -> None:
    """Import Evidently and open the MLflow tracking store (seconds of Python each) while the
    engine serves the day's tables; the first version's report then starts at once."""
    try:
        importlib.import_module("evidently")
        mlflow_log.client(settings)
    except Exception:  # the same call in the job raises it where it belongs
        log.debug("warming up Evidently and MLflow failed", exc_info=True)


def run(day: DayConfig, settings: Settings | None = None, dag_run_id: str = "manual",
        spark: SparkSession | None = None) -> list[dict[str, str]]:
    settings = settings or Settings.from_env()
    threading.Thread(target=_warm_up, args=(settings,), daemon=True).start()
    spark = spark or get_spark(settings, tag=f"offline-eval-publish-{day.ds}")
    tables = Tables(spark, settings)
    # The day's result tables are small and independent: read side by side (the engine serves
    # each query on its own thread), as are the samples below.
    pool = ThreadPoolExecutor(4, thread_name_prefix="publish-read")
    try:
        others = {t: pool.submit(read, tables, dates=[day.ds]) for t, read in _RESULTS.items()}
        metric_rows = results.day_rows(tables, "metrics_daily", [day.ds]).get(day.ds)
        if not metric_rows:
            raise NothingComputed(f"table metrics_daily: partition ds={day.ds} does not exist (check: "
                                  "partition_exists); run the compute task of that day first")
        by_version = mlflow_log.metrics_by_version(metric_rows)
        samples = _samples(pool, tables, (day.ds, day.ds_offset(-1)), sorted(by_version))
        day_results = {t: results.by_version(f.result().get(day.ds, [])) for t, f in others.items()}
        return _publish(day, settings, dag_run_id, metric_rows, by_version, day_results, samples)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_RESULTS = {"drift_daily": functools.partial(results.day_rows, table="drift_daily"),
            "concept_drift_daily": results.concept_rows,
            "alerts_daily": functools.partial(results.day_rows, table="alerts_daily"),
            "lifts_daily": functools.partial(results.day_rows, table="lifts_daily")}


def _samples(pool: ThreadPoolExecutor, tables: Tables, dates: tuple[str, str],
             models: list[tuple[str, str]]) -> Iterator[tuple[tuple[str, str], pd.DataFrame, pd.DataFrame]]:
    """Each version's samples of ``dates`` (the day, the day before), in ``models``' order. The
    first version's two are fetched side by side from now on (after the day's other result
    tables, queued first), and each next version's while the one before is published: one version
    ahead, so memory holds at most two versions' samples (each up to ``sample_rows`` rows)."""
    def fetch(key: tuple[str, str]) -> list[Future[pd.DataFrame]]:
        return [pool.submit(results.sample, tables, ds, *key) for ds in dates]

    first = fetch(models[0]) if models else []

    def each() -> Iterator[tuple[tuple[str, str], pd.DataFrame, pd.DataFrame]]:
        pending = first
        for i, key in enumerate(models):
            now, pending = pending, (fetch(models[i + 1]) if i + 1 < len(models) else [])
            current, reference = (f.result() for f in now)
            yield key, current, reference

    return each()


def _publish(day: DayConfig, settings: Settings, dag_run_id: str, metric_rows: list[dict],
             by_version: dict[tuple[str, str], dict[str, float | None]],
             day_results: dict[str, dict[tuple[str, str], list[dict]]],
             samples: Iterator[tuple[tuple[str, str], pd.DataFrame, pd.DataFrame]]) -> list[dict[str, str]]:
    drift, concept = day_results["drift_daily"], day_results["concept_drift_daily"]
    alerts, lifts = day_results["alerts_daily"], day_results["lifts_daily"]
    reference_ds = day.ds_offset(-1)
    validation = validation_file(settings, day.ds)
    inputs = input_partitions(validation, day.ds)
    published = []
    for i, (key, current, reference) in enumerate(samples, 1):
        t0 = time.monotonic()
        name, version = key
        version_rows = [{k: v for k, v in r.items() if k != "ds"} for r in metric_rows
                        if (r["model_name"], r["model_version"]) == key]
        drift_rows, concept_rows, alert_rows = drift.get(key, []), concept.get(key, []), alerts.get(key, [])
        notes = [f"{name} {version}: no {ref} reference" for ref in DRIFT_REFERENCES
                 if not any(r["reference"] == ref for r in drift_rows)]
        # The previous day's PSI edges, so that the Evidently report bins its sample exactly as
        # drift_daily binned the full data.
        psi_edges = {r["column"]: r["psi_edges"] for r in drift_rows
                     if r["reference"] == "previous_day" and r["psi_edges"] is not None}
        out_dir = day_report_dir(settings, name, version, day.ds)
        incidents = incident_summaries(alert_rows, day.ds)
        report = replace_dir(out_dir, functools.partial(
            write_report_folder, current=current, reference=reference,
            title=f"{name} {version} {day.ds} vs {reference_ds}", psi_edges=psi_edges, validation=validation,
            ds=day.ds, labels={"model_name": name, "model_version": version, "cadence": day.cadence},
            headline=DayHeadline(version_rows, lifts.get(key, []), incidents, drift_rows, concept_rows,
                                 validation=validation_status(validation),
                                 data_docs=os.path.relpath(data_docs_page(settings, day.ds), out_dir)),
            assets_dir=report_assets_dir(settings), files={
                "metrics.json": version_rows, "alerts.json": alert_rows,
                "incidents.json": incidents,
                "lifts.json": lifts.get(key, []),
                "drift.json": {"drift": drift_rows, "concept_drift": concept_rows, "notes": notes}}))
        html = out_dir / report.html.name
        metrics = dict(by_version[key])
        metrics.update({f"evidently/{k}": v for k, v in report.metrics().items()})
        metrics.update(mlflow_log.drift_metrics(drift_rows, concept_rows, alert_rows))
        metrics.update(mlflow_log.lift_metrics(lifts.get(key, [])))
        # The report and the numbers into the model's Evidently project (a failure fails the task;
        # its rerun replaces both snapshots).
        ev = evidently_workspace.add_published_day(settings, name, version, day.ds, day.cadence, report.snapshot,
                                                   metrics)
        log.info("%s %s %s: Evidently workspace project %s in %ss", name, version, day.ds, ev["project_id"],
                 ev["seconds"])
        run_key = mlflow_log.RunKey(name, version, day.ds, day.cadence)
        run = mlflow_log.log_day(
            settings,
            run_key,
            metrics=metrics,
            params={
                "ds": day.ds,
                "model_name": name,
                "model_version": version,
                "cadence": day.cadence,
                "reference_ds": reference_ds,
                "sample_rows": str(day.sample_rows),
                "new_user_days": str(day.new_user_days),
                "new_item_days": str(day.new_item_days),
                "repurchase_lookback_days": str(day.repurchase_lookback_days),
            },
            tags={
                **mlflow_log.source_tags("offline_eval.jobs.publish"),
                "offline_eval.dag_run_id": dag_run_id,
                "offline_eval.code_version": mlflow_log.source_version(),
                "offline_eval.report_html": str(html),
                "offline_eval.validation": validation_status(validation),
                "offline_eval.data_docs": str(data_docs_page(settings, day.ds)),
                **day.extra_tags,
            },
            artifacts={"evidently": out_dir},
            inputs=inputs,
        )
        write_json_atomic(out_dir / "mlflow_run.json", {**run, "tracking_uri": settings.mlflow_tracking_uri})
        log.info("[%d/%d] %s %s %s: report %s, MLflow run %s (%s new metrics) in %.1fs", i, len(by_version),
                 name, version, day.ds, html, run["run_id"], run["metrics_logged"], time.monotonic() - t0)
        published.append({"model_name": name, "model_version": version, "report": str(html), **run})
    return published
