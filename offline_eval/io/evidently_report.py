"""Evidently report of one model version and day: the data summary of a bounded sample of the
day's impressions (features and score), and their drift against the previous day's sample on
the pipeline's own PSI bins (the edges drift_daily used), so the report's drift numbers are the
table's, computed on the sample.

Evidently's own per-column tests on the raw sample values (K-S, chi-square, Wasserstein by
size) are not run: their numbers differed from drift_daily's for the same column and day, and
drawing them took half of the report's time."""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline_eval import failpoints
from offline_eval.contract import CATEGORICAL_FEATURE_PREFIX, NUMERIC_FEATURE_PREFIX
from offline_eval.dates import parse_ds
from offline_eval.io.paths import write_json_atomic

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
    categorical = [c for c in df.columns if c.startswith((CATEGORICAL_FEATURE_PREFIX, PSI_BIN_PREFIX))]
    return DataDefinition(numerical_columns=numeric, categorical_columns=categorical)


PSI_BIN_PREFIX = "psi_bin__"


def psi_bins(frame: pd.DataFrame, edges: dict[str, list[float]]) -> pd.DataFrame:
    """Add ``psi_bin__<column>``: the decile bin of each value on the reference edges that
    drift_daily used (bin k is (e_{k-1}, e_k], as ``numpy.searchsorted(side="left")``);
    missing values stay missing. Evidently's PSI on these columns uses our binning."""
    import numpy as np
    import pandas as pd

    out = frame.copy()
    for column, e in sorted(edges.items()):
        if column not in out:
            continue
        x = pd.to_numeric(out[column], errors="coerce").to_numpy(dtype=float)
        b = np.searchsorted(np.asarray(e, dtype=float), x, side="left").astype(object)
        b[np.isnan(x)] = None
        out[PSI_BIN_PREFIX + column] = pd.Series([None if v is None else f"bin{int(v):02d}" for v in b],
                                                 index=out.index, dtype=object)
    return out


def build_report(current: pd.DataFrame, reference: pd.DataFrame | None, out_dir: Path, title: str,
                 psi_edges: dict[str, list[float]] | None = None, *, ds: str | None = None,
                 labels: dict[str, str] | None = None) -> ReportSummary:
    """Write report.html and report.json into ``out_dir``: the data summary, and with a reference
    sample and ``psi_edges`` (the previous day's decile edges of drift_daily) the PSI drift on
    those bins, computed on the samples. Categorical features are compared as they are.

    The snapshot's timestamp is the day it describes (midnight UTC of ``ds``), not the moment it
    was made, so a backfilled day sorts where it belongs; ``labels`` (model, version, cadence)
    become its metadata and its tags."""
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    has_reference = reference is not None and len(reference) > 0
    raw = list(current.columns)
    drift_columns = [c for c in raw if c.startswith(CATEGORICAL_FEATURE_PREFIX)]
    if psi_edges and has_reference:
        current, reference = psi_bins(current, psi_edges), psi_bins(reference, psi_edges)
        drift_columns += sorted(c for c in current.columns if c.startswith(PSI_BIN_PREFIX))
    definition = _definition(current)
    presets = [DataSummaryPreset(columns=raw)]
    if has_reference and drift_columns:
        presets.append(DataDriftPreset(columns=drift_columns, cat_method="psi", cat_threshold=0.2))
    labels = dict(labels or {})
    snapshot = Report(presets, metadata={"title": title}).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition) if has_reference else None,
        name=title,
        timestamp=dt.datetime.combine(parse_ds(ds), dt.time(), dt.UTC) if ds else None,
        metadata={**labels, **({"ds": ds} if ds else {})},
        tags=[f"{k}={v}" for k, v in sorted(labels.items())],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    html, js = out_dir / HTML_NAME, out_dir / JSON_NAME
    html.write_text(safe_html(snapshot.get_html_str(as_iframe=False)), encoding="utf-8")
    # The snapshot's results, with the day it describes and its labels (save_json keeps only the
    # results; the full snapshot model carries the rest, and is what a workspace stores).
    model = snapshot.to_snapshot_model()
    js.write_text(json.dumps({**snapshot.dict(), "name": model.name, "timestamp": model.timestamp.isoformat(),
                              "tags": list(model.tags), "metadata": dict(model.metadata)}, cls=_numpy_encoder()),
                  encoding="utf-8")
    count, share = _drifted(json.loads(js.read_text())) if has_reference else (None, None)
    return ReportSummary(html, js, len(current), len(reference) if reference is not None and has_reference else 0,
                         count, share)


def _numpy_encoder() -> type[json.JSONEncoder]:
    from evidently.legacy.utils import NumpyEncoder

    return NumpyEncoder


_DATA_BLOCK = re.compile(r"<script>\n    var ([A-Za-z_][A-Za-z0-9_]*) = ")


def safe_html(page: str) -> str:
    """Evidently's page with its embedded data made inert: the report's data (category values,
    column names, from the day's logs) is JSON inside an inline ``<script>``, written as
    ``json.dumps`` gives it, so a value containing ``</script>`` would close the block and run
    what follows when the report is opened. Inside that block every ``<`` is in a JSON string
    (``<`` is no JSON token), and JSON strings hold no raw newline, so the block ends at the
    first newline followed by ``</script>``; every ``<`` before it becomes ``\\u003c``, the same
    character to JavaScript. Refuses (ValueError) a page whose data block it cannot find,
    rather than writing it unescaped."""
    blocks = list(_DATA_BLOCK.finditer(page))
    if len(blocks) != 1:
        raise ValueError(f"Evidently report: expected one embedded data block, found {len(blocks)}; "
                         "the report is not written unescaped")
    start = blocks[0].end()
    end = page.find("\n</script>", start)
    if end < 0:
        raise ValueError("Evidently report: the embedded data block has no end; the report is not written")
    return page[:start] + page[start:end].replace("<", "\\u003c") + page[end:]


def binned_psi(payload: dict[str, Any]) -> dict[str, float]:
    """{column: PSI} of the ``psi_bin__`` columns in a saved report (Evidently's own numbers)."""
    out = {}
    for metric in payload.get("metrics", []):
        config = metric.get("config") or {}
        column = str(config.get("column", ""))
        if config.get("type", "").endswith("ValueDrift") and column.startswith(PSI_BIN_PREFIX):
            out[column[len(PSI_BIN_PREFIX):]] = float(metric["value"])
    return out


def _drifted(payload: dict[str, Any]) -> tuple[int | None, float | None]:
    for metric in payload.get("metrics", []):
        if str(metric.get("metric_name", "")).startswith("DriftedColumnsCount"):
            value = metric.get("value") or {}
            return int(value.get("count", 0)), float(value.get("share", 0.0))
    return None, None


def write_report_folder(tmp: Path, *, current: pd.DataFrame, reference: pd.DataFrame, title: str,
                        psi_edges: dict[str, list[float]], files: dict[str, Any], validation: Path,
                        ds: str | None = None, labels: dict[str, str] | None = None) -> ReportSummary:
    """The report folder of one version and day, built in ``tmp`` (swapped in by replace_dir):
    the Evidently report, the day's rows as JSON and the day's validation result."""
    report = build_report(current, reference, tmp, title=title, psi_edges=psi_edges, ds=ds, labels=labels)
    failpoints.reach("publish.report_half_written")
    for file_name, content in files.items():
        write_json_atomic(tmp / file_name, content)
    if validation.exists():
        shutil.copy(validation, tmp / "validation.json")
    return report
