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
from offline_eval.io.paths import day_report_dir, replace_dir, staging_dir, validation_file, write_json_atomic

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


def drift_metrics(drift_rows: list[dict], concept_rows: list[dict], alert_rows: list[dict]) -> dict[str, float | None]:
    """MLflow keys of the day's drift: ``drift/<reference>/<column>/<statistic>``, concept drift
    per segment and the alert counts."""
    out: dict[str, float | None] = {}
    for r in drift_rows:
        for stat in ("psi", "ks", "js", "wasserstein", "chi2_p"):
            if r.get(stat) is not None:
                out[f"drift/{r['reference']}/{r['column']}/{stat}"] = r[stat]
    for ref in sorted({r["reference"] for r in drift_rows}):
        rows = [r for r in drift_rows if r["reference"] == ref]
        out[f"drift/{ref}/drifted_columns"] = float(sum(r["verdict"] in ("minor", "severe") for r in rows))
        out[f"drift/{ref}/severe_columns"] = float(sum(r["verdict"] == "severe" for r in rows))
    for r in concept_rows:
        base = f"concept/{r['reference']}/{r['segment']}"
        out[f"{base}/ctr_given_score_abs_change"] = r["mean_abs_change"]
        out[f"{base}/ctr_given_score_rel_change"] = r["mean_rel_change"]
    for severity in ("medium", "high"):
        out[f"alerts/{severity}"] = float(sum(a["severity"] == severity for a in alert_rows))
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
    validation = validation_file(settings, day.ds)
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

        mine = lambda rows: [r for r in rows if (r["model_name"], r["model_version"]) == (name, version)]  # noqa: E731
        drift_rows, concept_rows, alert_rows = (mine(manifest.get(k, [])) for k in ("drift", "concept_drift", "alerts"))

        def fill(tmp: Path) -> None:
            summary["report"] = build_report(
                current, reference, tmp, title=f"{name} {version} {day.ds} vs {manifest['reference_ds']}",
                psi_edges=manifest.get("psi_edges", {}).get(f"{name}/{version}", {}),
            )
            write_json_atomic(tmp / "metrics.json", version_rows)
            write_json_atomic(tmp / "drift.json", {"drift": drift_rows, "concept_drift": concept_rows,
                                                   "notes": manifest.get("drift_notes", [])})
            write_json_atomic(tmp / "alerts.json", alert_rows)
            if validation.exists():
                shutil.copy(validation, tmp / "validation.json")

        out_dir = day_report_dir(settings, name, version, day.ds)
        replace_dir(out_dir, fill)
        report = summary["report"]
        html = out_dir / report.html.name
        metrics = dict(by_version[(name, version)])
        metrics.update({f"evidently/{k}": v for k, v in report.metrics().items()})
        metrics.update(drift_metrics(drift_rows, concept_rows, alert_rows))
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
