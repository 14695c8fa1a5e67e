"""Publish one day: an Evidently report per model version and the day's numbers in MLflow.

Reads only what the compute task staged (aggregates and bounded samples), so it needs no
Spark and never touches raw events.
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from offline_eval import __version__
from offline_eval.config import DayConfig, Settings, project_root
from offline_eval.io import mlflow_log
from offline_eval.io.evidently_report import build_report
from offline_eval.io.paths import day_report_dir, replace_dir, staging_dir, validation_dir, write_json_atomic

log = logging.getLogger(__name__)


class NothingStaged(RuntimeError):
    """The compute task has not produced outputs for this ds."""


def code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=project_root(), capture_output=True, text=True, timeout=5
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except OSError:
        pass
    return __version__


def metric_key(segment: str, metric: str, variant: str, variants_of_version: int) -> str:
    """MLflow metric name: ``<segment>/<metric>``, the variant first if a version ran in several."""
    base = f"{segment}/{metric}"
    return f"{variant}/{base}" if variants_of_version > 1 else base


def metrics_by_version(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float | None]]:
    variants: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in rows:
        variants[(r["model_name"], r["model_version"])].add(r["variant"])
    out: dict[tuple[str, str], dict[str, float | None]] = defaultdict(dict)
    for r in rows:
        key = (r["model_name"], r["model_version"])
        out[key][metric_key(r["segment"], r["metric"], r["variant"], len(variants[key]))] = r["value"]
    return out


def load_manifest(settings: Settings, ds: str) -> dict[str, Any]:
    path = staging_dir(settings, ds) / "manifest.json"
    if not path.exists():
        raise NothingStaged(f"nothing staged for ds={ds} at {path}: run the compute task first")
    return json.loads(path.read_text())


def run(day: DayConfig, settings: Settings | None = None, dag_run_id: str = "manual") -> list[dict[str, str]]:
    import pandas as pd

    settings = settings or Settings.from_env()
    manifest = load_manifest(settings, day.ds)
    validation = validation_dir(settings, day.ds) / "validation.json"
    by_version = metrics_by_version(manifest["metrics"])
    published = []
    for i, m in enumerate(manifest["models"], 1):
        t0 = time.monotonic()
        name, version = m["model_name"], m["model_version"]
        stage = staging_dir(settings, day.ds) / name / version
        current = pd.read_parquet(stage / "current.parquet")
        reference = pd.read_parquet(stage / "reference.parquet")
        version_rows = [r for r in manifest["metrics"] if (r["model_name"], r["model_version"]) == (name, version)]
        summary = {}

        def fill(tmp: Path) -> None:
            summary["report"] = build_report(
                current, reference, tmp, title=f"{name} {version} {day.ds} vs {manifest['reference_ds']}"
            )
            write_json_atomic(tmp / "metrics.json", version_rows)
            if validation.exists():
                shutil.copy(validation, tmp / "validation.json")

        out_dir = day_report_dir(settings, name, version, day.ds)
        replace_dir(out_dir, fill)
        report = summary["report"]
        html = out_dir / report.html.name
        metrics = dict(by_version[(name, version)])
        metrics.update({f"evidently/{k}": v for k, v in report.metrics().items()})
        key = mlflow_log.RunKey(name, version, day.ds, day.cadence)
        run = mlflow_log.log_day(
            settings,
            key,
            metrics=metrics,
            params={
                "ds": day.ds,
                "model_name": name,
                "model_version": version,
                "cadence": day.cadence,
                "reference_ds": manifest["reference_ds"],
                "sample_rows": str(day.sample_rows),
                "new_user_days": str(day.new_user_days),
                "new_item_days": str(day.new_item_days),
                "repurchase_lookback_days": str(day.repurchase_lookback_days),
            },
            tags={
                "offline_eval.dag_run_id": dag_run_id,
                "offline_eval.code_version": code_version(),
                "offline_eval.report_html": str(html),
                "offline_eval.validation": "passed" if validation.exists() else "missing",
                **day.extra_tags,
            },
            artifacts={"evidently": out_dir},
        )
        write_json_atomic(out_dir / "mlflow_run.json", {**run, "tracking_uri": settings.mlflow_tracking_uri})
        log.info("[%d/%d] %s %s %s: report %s, MLflow run %s (%s new metrics) in %.1fs", i, len(manifest["models"]),
                 name, version, day.ds, html, run["run_id"], run["metrics_logged"], time.monotonic() - t0)
        published.append({"model_name": name, "model_version": version, "report": str(html), **run})
    return published
