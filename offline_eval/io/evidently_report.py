"""Evidently report of one model version and day: data summary and data drift of a bounded
sample of the day's impressions (features and score) against the previous day's."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline_eval.contract import CATEGORICAL_FEATURE_PREFIX, NUMERIC_FEATURE_PREFIX

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

HTML_NAME = "report.html"
JSON_NAME = "report.json"


@dataclass(frozen=True)
class ReportSummary:
    html: Path
    json: Path
    rows_current: int
    rows_reference: int
    drifted_columns: int | None
    drifted_share: float | None

    def metrics(self) -> dict[str, float]:
        out = {"sample_rows_current": float(self.rows_current), "sample_rows_reference": float(self.rows_reference)}
        if self.drifted_columns is not None:
            out["drifted_columns"] = float(self.drifted_columns)
        if self.drifted_share is not None:
            out["drifted_columns_share"] = float(self.drifted_share)
        return out


def _definition(df: pd.DataFrame) -> Any:
    from evidently import DataDefinition

    numeric = [c for c in df.columns if c.startswith(NUMERIC_FEATURE_PREFIX)] + (["score"] if "score" in df else [])
    categorical = [c for c in df.columns if c.startswith(CATEGORICAL_FEATURE_PREFIX)]
    return DataDefinition(numerical_columns=numeric, categorical_columns=categorical)


def build_report(current: pd.DataFrame, reference: pd.DataFrame | None, out_dir: Path, title: str) -> ReportSummary:
    """Write report.html and report.json into ``out_dir``; drift only when a reference exists."""
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    definition = _definition(current)
    has_reference = reference is not None and len(reference) > 0
    presets = [DataSummaryPreset(), DataDriftPreset()] if has_reference else [DataSummaryPreset()]
    snapshot = Report(presets, metadata={"title": title}).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition) if has_reference else None,
        name=title,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    html, js = out_dir / HTML_NAME, out_dir / JSON_NAME
    snapshot.save_html(str(html))
    snapshot.save_json(str(js))
    count, share = _drifted(json.loads(js.read_text())) if has_reference else (None, None)
    return ReportSummary(html, js, len(current), len(reference) if has_reference else 0, count, share)


def _drifted(payload: dict[str, Any]) -> tuple[int | None, float | None]:
    for metric in payload.get("metrics", []):
        if str(metric.get("metric_name", "")).startswith("DriftedColumnsCount"):
            value = metric.get("value") or {}
            return int(value.get("count", 0)), float(value.get("share", 0.0))
    return None, None
