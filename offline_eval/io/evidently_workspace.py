"""The local Evidently workspace (``Settings.evidently_workspace``, served by `make evidently-ui`):
one project per model name, holding

* ``kind=report``, per version, day and cadence: the day's Evidently report (data summary and PSI
  drift of the sample), as build_report made it;
* ``kind=pipeline``, per day and cadence: the pipeline's own numbers of every version that day
  (CTR, CVR, GMV per user, AUC, max feature PSI, share of drifted features, alerts by tier), each
  the ``MeanValue`` of a one-row column ``<number>@<version>``, so that the project's dashboard
  plots them over the days, a line per version.

The versions of a day share one pipeline snapshot because the UI's x axis has a point per
snapshot: with a snapshot per version, each version's line would have a gap at every other
version's point and be drawn as loose dots.

A rerun replaces what it wrote: snapshot ids are derived from (kind, version, ds, cadence), so
finding the previous one is a path, not a scan of every stored snapshot, and a version's rerun
replaces its own columns of the day's pipeline snapshot. Days publish side by side in separate
processes: every change happens under an exclusive lock on a file in the workspace, and every
snapshot and dashboard file is swapped in whole, so a reader (the UI) never sees half of one.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import math
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from offline_eval.config import CADENCES, Settings, validate_identifier
from offline_eval.dates import parse_ds, validate_ds
from offline_eval.io.paths import write_text_atomic

if TYPE_CHECKING:
    from evidently.core.report import Snapshot
    from evidently.core.serialization import SnapshotModel
    from evidently.sdk.models import DashboardModel, DashboardPanelPlot, PanelMetric
    from evidently.ui.storage.local.base import LocalState
    from evidently.ui.workspace import Workspace

LOCK_NAME = ".offline_eval.lock"
KIND_REPORT = "report"
KIND_PIPELINE = "pipeline"
# Fixed, so that a model's project and a day's snapshots get the same ids on every machine and rerun.
_NAMESPACE = uuid.UUID("5d0c3a52-8f0e-4d8a-9a43-6f1f3b1c2e71")
_MEAN = "MeanValue"
_DRIFTED = "DriftedColumnsCount"
_ROC_AUC = "RocAuc"
TAB = "Pipeline"


@dataclass(frozen=True)
class Number:
    """One of the pipeline's numbers on the dashboard: its column in the pipeline snapshot."""

    name: str
    title: str


# The previous period each cadence compares a feature with (drift_daily / the weekly job).
PREVIOUS = {"daily": "previous_day", "weekly": "previous_week"}
QUALITY = (Number("ctr", "CTR"), Number("cvr", "CVR"), Number("gmv_per_user", "GMV per user"),
           Number("auc", "AUC"))
DRIFT = (Number("max_psi_previous", "max feature PSI vs the previous period"),
         Number("max_psi_baseline_7d", "max feature PSI vs the 7-day baseline"),
         Number("drifted_share_previous", "share of drifted features vs the previous period"))
ALERT_TIERS = ("severe", "medium", "minor")
ALERTS = tuple(Number(f"alerts_{t}", f"{t} alerts") for t in ALERT_TIERS) + (Number("incidents", "incidents"),)
NUMBERS = QUALITY + DRIFT + ALERTS


def _max_psi(metrics: Mapping[str, float | None], reference: str) -> float | None:
    pattern = re.compile(rf"^drift/{re.escape(reference)}/[^/]+/psi$")
    values = [float(v) for k, v in metrics.items() if pattern.match(k) and _finite(v)]
    return max(values) if values else None


def _finite(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def pipeline_numbers(metrics: Mapping[str, float | None], cadence: str = "daily") -> dict[str, float]:
    """The dashboard's numbers out of the metrics publish (or the weekly job) logs to MLflow
    (``all/ctr``, ``drift/<reference>/<column>/psi``, ``alerts/<tier>`` ...). A number whose
    inputs are missing (no reference yet, a version serving several arms whose keys carry the
    arm) is left out rather than plotted as 0."""
    if cadence not in CADENCES:
        raise ValueError(f"invalid cadence {cadence!r}: one of {CADENCES}")
    previous = PREVIOUS[cadence]
    out: dict[str, float | None] = {n.name: metrics.get(f"all/{n.name}") for n in QUALITY}
    out["max_psi_previous"] = _max_psi(metrics, previous)
    out["max_psi_baseline_7d"] = _max_psi(metrics, "baseline_7d") if cadence == "daily" else None
    columns = {k.split("/")[2] for k in metrics if re.match(rf"^drift/{re.escape(previous)}/[^/]+/[^/]+$", k)}
    drifted = metrics.get(f"drift/{previous}/drifted_columns")
    out["drifted_share_previous"] = float(drifted) / len(columns) if _finite(drifted) and columns else None
    for tier in ALERT_TIERS:
        out[f"alerts_{tier}"] = metrics.get(f"alerts/{tier}")
    out["incidents"] = metrics.get("alerts/incidents")
    return {k: float(v) for k, v in out.items() if _finite(v)}


def column(number: str, version: str) -> str:
    """The pipeline snapshot's column of a version's number (a version holds no ``@``)."""
    return f"{number}@{version}"


def project_id(model_name: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"project:{validate_identifier(model_name, 'model name')}")


def report_snapshot_id(model_name: str, model_version: str, ds: str, cadence: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"snapshot:{KIND_REPORT}:{model_name}:{model_version}:{ds}:{cadence}")


def pipeline_snapshot_id(model_name: str, ds: str, cadence: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"snapshot:{KIND_PIPELINE}:{model_name}:{ds}:{cadence}")


def _tags(labels: Mapping[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("ds", "model_versions")]


def _timestamp(ds: str) -> dt.datetime:
    # The day described, as build_report stamps the report: a backfilled day sorts where it belongs.
    return dt.datetime.combine(parse_ds(ds), dt.time(), dt.UTC)


def pipeline_snapshot(columns: Mapping[str, float], model_name: str, ds: str, cadence: str) -> SnapshotModel:
    """A snapshot whose metrics are the numbers ({``<number>@<version>``: value}): the mean of a
    one-row column is its value."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue

    frame = pd.DataFrame([{c: float(v) for c, v in sorted(columns.items())}])
    versions = ",".join(sorted({c.rsplit("@", 1)[1] for c in frame.columns}))
    labels = {"model_name": model_name, "cadence": cadence, "ds": ds, "kind": KIND_PIPELINE, "model_versions": versions}
    report = Report([MeanValue(column=c) for c in frame.columns], metadata={"title": "pipeline numbers"})
    snapshot = report.run(
        Dataset.from_pandas(frame, data_definition=DataDefinition(numerical_columns=list(frame.columns))), None,
        name=f"{model_name} {ds} {cadence}: pipeline numbers", timestamp=_timestamp(ds),
        metadata=labels, tags=_tags(labels))
    return snapshot.to_snapshot_model()


def snapshot_numbers(model: SnapshotModel) -> dict[str, float]:
    """{column: value} of a pipeline snapshot (as read back from the workspace)."""
    return {r.metric_value_location.metric.params["column"]: float(r.value) for r in model.metric_results.values()
            if r.metric_value_location.metric.params.get("type", "").endswith(f":{_MEAN}")}


def _report_model(report: Snapshot, model_name: str, model_version: str, ds: str, cadence: str) -> SnapshotModel:
    model = report.to_snapshot_model()
    for key, want in (("model_name", model_name), ("model_version", model_version), ("ds", ds), ("cadence", cadence)):
        if model.metadata.get(key, want) != want:
            raise ValueError(f"Evidently workspace: the report snapshot is labelled {key}={model.metadata[key]!r}, "
                             f"not {want!r}")
    labels = {"model_name": model_name, "model_version": model_version, "cadence": cadence, "ds": ds,
              "kind": KIND_REPORT}
    model.metadata = {**model.metadata, **labels}
    model.tags = _tags(labels)
    model.timestamp = _timestamp(ds)
    return model


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One process at a time: Evidently's file workspace writes a project's metadata file in
    place, reads every project's on opening, and has no notion of a second process creating the
    same project; the dashboard is read, extended and written back."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_NAME, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def open_workspace(settings: Settings) -> Workspace:
    """The workspace with Evidently's whole API (what the UI and a reader use). Opening it loads
    every snapshot of every project into memory; ``add_day`` works on the files instead."""
    from evidently.ui.workspace import Workspace

    settings.evidently_workspace.mkdir(parents=True, exist_ok=True)
    return Workspace(str(settings.evidently_workspace))


def _files(settings: Settings) -> LocalState:
    """Evidently's own file layer of the local workspace (projects, snapshots, dashboards as
    JSON files), which ``Workspace`` wraps. ``Workspace(path)`` also builds a project manager
    that parses every snapshot on disk: about 1.3 s per open at 88 snapshots, growing with every
    published day, so a year of days made each publish slower than the last. Adding a day
    reads and writes a handful of files, so it uses the file layer alone."""
    from evidently.ui.storage.local.base import LocalState

    settings.evidently_workspace.mkdir(parents=True, exist_ok=True)
    return LocalState(str(settings.evidently_workspace))


def _project(files: LocalState, model_name: str) -> uuid.UUID:
    """The model's project, found by name (the one with the id derived from the name first) or
    created with that id."""
    from evidently.sdk.models import ProjectModel
    from evidently.ui.storage.local.base import PROJECT_FILE_NAME

    mine = project_id(model_name)

    def has_metadata(project: uuid.UUID | str) -> bool:
        return (Path(files.path) / str(project) / PROJECT_FILE_NAME).is_file()

    if has_metadata(mine):
        return mine
    named = sorted(str(p) for p in files.list_projects()
                   if has_metadata(p) and files.read_project(p).name == model_name)
    if named:
        return uuid.UUID(named[0])
    about = f"offline evaluation of {model_name}: one snapshot per version and day"
    files.write_project(ProjectModel(id=mine, name=model_name, description=about))
    return mine


def _snapshot_file(files: LocalState, project: uuid.UUID, sid: uuid.UUID) -> Path:
    from evidently.ui.storage.local.base import SNAPSHOTS_DIR_NAME

    return Path(files.path) / str(project) / SNAPSHOTS_DIR_NAME / f"{sid}.json"


def _write_snapshot(files: LocalState, project: uuid.UUID, sid: uuid.UUID, model: SnapshotModel) -> None:
    from evidently.legacy.utils import NumpyEncoder

    path = _snapshot_file(files, project, sid)
    write_text_atomic(path, json.dumps(model.dict(), cls=NumpyEncoder))
    # A running UI learns of snapshot files from "created"/"modified" events on their own name,
    # not from the rename that swapped this one in: one byte appended (JSON allows trailing
    # whitespace) makes that event, on a file that is already whole.
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n")


def add_day(settings: Settings, model_name: str, model_version: str, ds: str, cadence: str,
            report: Snapshot | None, numbers: Mapping[str, float]) -> dict[str, str]:
    """Put one version's day (or week, ``ds`` = its last day) into the model's project: its
    report snapshot (if any) and its numbers in the day's pipeline snapshot, replacing what an
    earlier run of the same (version, ds, cadence) put there, and the version on the project's
    dashboard. Returns the project id and the snapshot ids."""
    validate_identifier(model_name, "model name")
    validate_identifier(model_version, "model version")
    ds = validate_ds(ds)
    if cadence not in CADENCES:
        raise ValueError(f"invalid cadence {cadence!r}: one of {CADENCES}")
    mine = {column(k, model_version): float(v) for k, v in numbers.items()}
    report_model = _report_model(report, model_name, model_version, ds, cadence) if report is not None else None
    out = {}
    with _locked(settings.evidently_workspace):
        # Finding the project reads the projects' metadata files, which another process may be writing.
        files = _files(settings)
        project = _project(files, model_name)
        out["project_id"] = str(project)
        sid = pipeline_snapshot_id(model_name, ds, cadence)
        day = _read(files, project, sid)
        others = {c: v for c, v in day.items() if c.rsplit("@", 1)[1] != model_version}
        if others or mine:
            _write_snapshot(files, project, sid, pipeline_snapshot({**others, **mine}, model_name, ds, cadence))
            out["pipeline_snapshot_id"] = str(sid)
        elif day:  # the rerun has none of the numbers the earlier run had
            files.delete_snapshot(project, sid)
        if report_model is not None:
            rid = report_snapshot_id(model_name, model_version, ds, cadence)
            _write_snapshot(files, project, rid, report_model)
            out["report_snapshot_id"] = str(rid)
        update_dashboard(files, project, {(cadence, model_version)})
    return out


def _read(files: LocalState, project: uuid.UUID, sid: uuid.UUID) -> dict[str, float]:
    if not _snapshot_file(files, project, sid).is_file():
        return {}
    return snapshot_numbers(files.read_snapshot(project, sid))


def _series(versions: list[str], number: str, cadence: str) -> list[PanelMetric]:
    from evidently.sdk.models import PanelMetric

    return [PanelMetric(legend=v, metric=_MEAN, metric_labels={"column": column(number, v)},
                        tags=_tags({"kind": KIND_PIPELINE, "cadence": cadence}))
            for v in versions]


def _panel_id(project: uuid.UUID, key: str) -> uuid.UUID:
    # Fixed ids: the same configuration gives the same dashboard, written only when it changes.
    return uuid.uuid5(_NAMESPACE, f"panel:{project}:{key}")


def _versions(dashboard: DashboardModel) -> set[tuple[str, str]]:
    """(cadence, version) of the series already on the dashboard: the dashboard is the record of
    which versions the project has, so adding a day reads no other snapshot."""
    seen = set()
    for panel in dashboard.panels:
        for value in panel.values:
            tags = dict(t.split("=", 1) for t in value.tags if "=" in t)
            label = value.metric_labels.get("column", "")
            if tags.get("kind") == KIND_PIPELINE and "cadence" in tags and "@" in label:
                seen.add((tags["cadence"], label.rsplit("@", 1)[1]))
    return seen


def dashboard(project: uuid.UUID, versions: set[tuple[str, str]]) -> DashboardModel:
    """The project's dashboard: for each cadence, a line per version of each quality and drift
    number, the alerts by tier per version, and the drifted columns share of the daily Evidently
    reports per version."""
    from evidently.sdk.models import DashboardModel, DashboardTabModel, PanelMetric
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel

    panels: list[DashboardPanelPlot] = []

    def add(key: str, panel: DashboardPanelPlot) -> None:
        panel.id = _panel_id(project, key)
        panels.append(panel)

    for cadence in CADENCES:
        mine = sorted(v for c, v in versions if c == cadence)
        if not mine:
            continue
        for n in QUALITY + DRIFT:
            if cadence == "weekly" and n.name in ("max_psi_baseline_7d", "drifted_share_previous"):
                continue  # the weekly job compares the week with the week before only
            add(f"{cadence}:{n.name}", line_plot_panel(
                f"{n.title} ({cadence})", _series(mine, n.name, cadence), size="half",
                description="one line per model version" + (f"; previous period = {PREVIOUS[cadence]}"
                                                             if n in DRIFT else "")))
        for v in mine:
            tiers = [PanelMetric(legend=a.title, metric=_MEAN, metric_labels={"column": column(a.name, v)},
                                 tags=_tags({"kind": KIND_PIPELINE, "cadence": cadence}))
                     for a in ALERTS if cadence == "daily" or a.name == "incidents"]
            add(f"{cadence}:alerts:{v}", bar_plot_panel(f"Alerts by tier, {v} ({cadence})", tiers, size="half"))
    for v in sorted(v for c, v in versions if c == "daily"):
        # One panel per version: the UI keys a plotted series by metric and parameters, not by
        # tags, and the report's metrics carry the same parameters for every version, so two
        # versions in one panel would be merged into one line.
        tags = _tags({"kind": KIND_REPORT, "model_version": v, "cadence": "daily"})
        add(f"report:{v}", line_plot_panel(
            f"Evidently report of {v}: drifted columns share, ROC AUC of the sample",
            [PanelMetric(legend="drifted columns share", metric=_DRIFTED, metric_labels={"value_type": "share"},
                         tags=tags),
             PanelMetric(legend="ROC AUC (sample)", metric=_ROC_AUC, tags=tags)],
            size="half", description="PSI of the day's sample on drift_daily's bins (threshold 0.2)"))
    # One tab: Evidently's open-source UI refuses to save a dashboard of several.
    tab = DashboardTabModel(id=_panel_id(project, "tab"), title=TAB, panels=[p.id for p in panels])
    return DashboardModel(tabs=[tab], panels=panels)


def update_dashboard(files: LocalState, project: uuid.UUID, versions: set[tuple[str, str]]) -> DashboardModel:
    """Add ``versions`` (cadence, version) to the project's dashboard; rewritten only if it
    changes, and swapped in whole (the UI reads it on every page load). Call under the lock."""
    from evidently.legacy.utils import NumpyEncoder
    from evidently.ui.storage.local.base import DASHBOARD_FILE_NAME

    current = files.read_dashboard(project)
    new = dashboard(project, _versions(current) | versions)
    if json.dumps(new.dict(), cls=NumpyEncoder, sort_keys=True) != json.dumps(current.dict(), cls=NumpyEncoder,
                                                                              sort_keys=True):
        write_text_atomic(Path(files.path) / str(project) / DASHBOARD_FILE_NAME,
                          json.dumps(new.dict(), cls=NumpyEncoder))
    return new


def add_published_day(settings: Settings, model_name: str, model_version: str, ds: str, cadence: str,
                      report: Snapshot | None, metrics: Mapping[str, float | None]) -> dict[str, str]:
    """add_day with the numbers taken from the metrics logged to MLflow; with its duration, which
    publish logs (it adds to every version's publish)."""
    t0 = time.monotonic()
    out = add_day(settings, model_name, model_version, ds, cadence, report, pipeline_numbers(metrics, cadence))
    return {**out, "seconds": f"{time.monotonic() - t0:.2f}"}
