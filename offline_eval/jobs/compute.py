"""Compute one day's metrics for every model on it: read each input partition once, write
metrics_daily for ds only, and stage the small aggregates plus a bounded sample per model
version for the publish task (which then needs no Spark)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from offline_eval.config import DayConfig, Settings, validate_identifier
from offline_eval.contract import IMPRESSIONS, OUTPUT_TABLES, categorical_features, numeric_features
from offline_eval.io.paths import replace_dir, staging_dir, write_json_atomic
from offline_eval.io.spark import get_spark
from offline_eval.io.tables import Tables
from offline_eval.metrics.daily import daily_metrics, sessions_with_newness, with_prior_buyers, with_segments
from offline_eval.metrics.funnel import impression_funnel
from offline_eval.metrics.sample import bounded_sample

log = logging.getLogger(__name__)

SAMPLE_COLUMNS = (*numeric_features(IMPRESSIONS), *categorical_features(IMPRESSIONS), "score")
MANIFEST = "manifest.json"


def run(day: DayConfig, settings: Settings | None = None) -> dict:
    settings = settings or Settings.from_env()
    spark = get_spark(f"offline-eval-compute-{day.ds}", settings)
    tables = Tables(spark, settings)
    tables.ensure(OUTPUT_TABLES.values())
    t0 = time.monotonic()

    impressions = tables.read("impressions", day.ds).cache()
    users = tables.read("users", day.ds)
    items = tables.read("items", day.ds)
    prior_orders = tables.read_range("orders", day.ds_offset(-day.repurchase_lookback_days), day.ds_offset(-1))
    funnel = impression_funnel(
        impressions, tables.read("clicks", day.ds), tables.read("add_to_cart", day.ds), tables.read("orders", day.ds)
    )
    rows = (
        funnel.transform(lambda df: with_segments(df, users, items, day.ds, day.new_user_days, day.new_item_days))
        .transform(lambda df: with_prior_buyers(df, prior_orders))
        .cache()
    )
    sessions = sessions_with_newness(tables.read("sessions", day.ds), users, day.ds, day.new_user_days)
    tables.overwrite(daily_metrics(rows, sessions, day.ds), "metrics_daily", expected_ds=[day.ds])
    metrics = [r.asDict() for r in tables.read("metrics_daily", day.ds).collect()]
    log.info("metrics_daily ds=%s: %d rows in %.1fs", day.ds, len(metrics), time.monotonic() - t0)

    current = bounded_sample(impressions, SAMPLE_COLUMNS, day.sample_rows, seed=day.ds).toPandas()
    previous = tables.read("impressions", day.ds_offset(-1), require=False)
    reference = bounded_sample(previous, SAMPLE_COLUMNS, day.sample_rows, seed=day.ds_offset(-1)).toPandas()
    rows.unpersist()
    impressions.unpersist()

    models = sorted({(m["model_name"], m["model_version"]) for m in metrics})

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
            },
        )

    target = staging_dir(settings, day.ds)
    replace_dir(target, fill)
    log.info("staged %s: %d model versions, samples of %d / %d rows, %.1fs", target, len(models), len(current),
             len(reference), time.monotonic() - t0)
    return {"ds": day.ds, "metrics_rows": len(metrics), "models": models, "staging": str(target)}
