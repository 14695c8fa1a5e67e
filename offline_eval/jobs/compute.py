"""Compute one day for every model on it: read each input partition once; write metrics_daily
(business and model-quality metrics) and drift_daily for ds only; compare against the
previous day's and the weekly baseline (building either if it is not stored yet); stage the
small aggregates, drift, concept drift, alerts and a bounded sample per model version for the
publish task (which then needs no Spark)."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from offline_eval.config import DayConfig, Settings, validate_identifier
from offline_eval.contract import DRIFT_DAILY, IMPRESSIONS, OUTPUT_TABLES, categorical_features, numeric_features
from offline_eval.io.paths import replace_dir, staging_dir, write_json_atomic
from offline_eval.io.spark import get_spark
from offline_eval.io.tables import Tables
from offline_eval.jobs import baseline, day_metrics
from offline_eval.jobs import drift as drift_job
from offline_eval.metrics.sample import bounded_sample
from offline_eval.stats.alerts import ctr_drop_alerts, threshold_alerts
from offline_eval.stats.quality import ScoreBins, concept_drift

log = logging.getLogger(__name__)

SAMPLE_COLUMNS = (*numeric_features(IMPRESSIONS), *categorical_features(IMPRESSIONS), "score")
MANIFEST = "manifest.json"
REFERENCES = ("previous_day", "baseline_7d")


def references(tables: Tables, day: DayConfig) -> dict[str, tuple[str, dict]]:
    """{name: (window end, parsed baseline)}: the previous day and the weekly baseline."""
    prev_end, week_end = day.ds_offset(-1), baseline.weekly_end(day.ds)
    return {
        "previous_day": (prev_end, baseline.parse(baseline.ensure(tables, baseline.PREVIOUS_DAY, prev_end, day))),
        "baseline_7d": (week_end, baseline.parse(baseline.ensure(tables, 7, week_end, day))),
    }


def concept(bins: dict[tuple, ScoreBins], refs: dict[str, tuple[str, dict]]) -> list[dict]:
    """P(click | score bucket) per version and user segment against each reference."""
    merged: dict[tuple, ScoreBins] = {}
    for (name, version, _variant, segment), b in bins.items():
        if segment in ("all", "new_users", "returning_users"):
            key = (name, version, segment)
            merged[key] = merged[key].merged(b) if key in merged else b
    out = []
    for ref, (end, parsed) in refs.items():
        for (name, version, segment), cur in sorted(merged.items()):
            base = parsed.get((name, version), {}).get("score_bins", {}).get(segment)
            if base is None or base.n == 0 or cur.n == 0:
                continue
            cd = concept_drift(base, cur)
            out.append({"model_name": name, "model_version": version, "segment": segment, "reference": ref,
                        "reference_end": end, **cd})
    return out


def alerts(metrics: list[dict], refs: dict[str, tuple[str, dict]]) -> list[dict]:
    out = []
    versions = sorted({(m["model_name"], m["model_version"]) for m in metrics})
    for name, version in versions:
        today = {(m["variant"], m["segment"], m["metric"]): m["value"] for m in metrics
                 if (m["model_name"], m["model_version"]) == (name, version)}
        for ref, (end, parsed) in refs.items():
            base = parsed.get((name, version), {}).get("metrics", {})
            label = f"{ref} ({end})"
            found = ctr_drop_alerts(today, base, label)
            if ref == "baseline_7d":
                found += threshold_alerts(today, base, label)
            out += [{"model_name": name, "model_version": version, **a} for a in found]
    return out


def run(day: DayConfig, settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    spark = get_spark(f"offline-eval-compute-{day.ds}", settings)
    tables = Tables(spark, settings)
    tables.ensure(OUTPUT_TABLES.values())
    t0 = time.monotonic()

    data = day_metrics.load(tables, day)
    metrics_df, bins = day_metrics.metrics(data, day)
    tables.overwrite(metrics_df, "metrics_daily", expected_ds=[day.ds])
    metrics = [r.asDict() for r in tables.read("metrics_daily", day.ds).collect()]
    log.info("metrics_daily ds=%s: %d rows in %.1fs", day.ds, len(metrics), time.monotonic() - t0)

    t1 = time.monotonic()
    refs = references(tables, day)
    log.info("baselines for ds=%s: previous day %s, weekly %s (%.1fs)", day.ds, refs["previous_day"][0],
             refs["baseline_7d"][0], time.monotonic() - t1)
    t1 = time.monotonic()
    drift_rows, drift_notes = drift_job.daily(data.impressions, refs)
    schema = DRIFT_DAILY.ddl_columns().replace("`", "")
    drift_df = spark.createDataFrame([[{**r, "ds": day.ds}[c] for c in DRIFT_DAILY.all_columns] for r in drift_rows],
                                     schema)
    tables.overwrite(drift_df, "drift_daily", expected_ds=[day.ds])
    concept_rows = concept(bins, refs)
    day_alerts = alerts(metrics, refs)
    for note in drift_notes:
        log.info("drift ds=%s: %s", day.ds, note)
    log.info("drift_daily ds=%s: %d rows, %d drifted (minor or severe), %d alerts in %.1fs", day.ds, len(drift_rows),
             sum(r["verdict"] in ("minor", "severe") for r in drift_rows), len(day_alerts), time.monotonic() - t1)

    current = bounded_sample(data.impressions, SAMPLE_COLUMNS, day.sample_rows, seed=day.ds).toPandas()
    previous = tables.read("impressions", day.ds_offset(-1), require=False)
    reference = bounded_sample(previous, SAMPLE_COLUMNS, day.sample_rows, seed=day.ds_offset(-1)).toPandas()
    data.unpersist()

    models = sorted({(m["model_name"], m["model_version"]) for m in metrics})
    prev_parsed = refs["previous_day"][1]

    def fill(tmp: Path) -> None:
        for name, version in models:
            vdir = tmp / validate_identifier(name, "model name") / validate_identifier(version, "model version")
            vdir.mkdir(parents=True)
            for label, frame in (("current", current), ("reference", reference)):
                part = frame[(frame.model_name == name) & (frame.model_version == version)]
                part.drop(columns=["model_name", "model_version"]).to_parquet(vdir / f"{label}.parquet", index=False)
        write_json_atomic(
            tmp / MANIFEST,
            {
                "ds": day.ds,
                "reference_ds": day.ds_offset(-1),
                "models": [{"model_name": n, "model_version": v} for n, v in models],
                "sample_rows": day.sample_rows,
                "metrics": metrics,
                "drift": drift_rows,
                "drift_notes": drift_notes,
                "concept_drift": concept_rows,
                "alerts": day_alerts,
                # The previous day's PSI edges per version, so that the Evidently report bins its
                # sample exactly as drift_daily binned the full data.
                "psi_edges": {f"{n}/{v}": {c: p["decile_edges"] for c, p in prev_parsed.get((n, v), {}).get(
                    "profile", {}).get("numeric", {}).items()} for n, v in models},
            },
        )

    target = staging_dir(settings, day.ds)
    replace_dir(target, fill)
    log.info("staged %s: %d model versions, samples of %d / %d rows, %.1fs", target, len(models), len(current),
             len(reference), time.monotonic() - t0)
    return {"ds": day.ds, "metrics_rows": len(metrics), "drift_rows": len(drift_rows), "alerts": len(day_alerts),
            "models": models, "staging": str(target)}
