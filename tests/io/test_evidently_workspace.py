"""The local Evidently workspace: a project per model, a day's snapshots replaced by its rerun,
a dashboard whose lines are the pipeline's numbers per version, and `evidently ui` serving it.
No Spark: the numbers are written by hand, as publish would pass them."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import multiprocessing
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from offline_eval.config import ConfigError, Settings
from offline_eval.io import evidently_workspace as ew
from offline_eval.io.evidently_report import build_report

D1, D2 = "2026-06-08", "2026-06-09"


@pytest.fixture
def ws_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", reports_dir=tmp_path / "reports")


def _metrics(ctr: float, psi_a: float, psi_b: float, drifted: float, severe: float) -> dict[str, float | None]:
    """What publish logs to MLflow for a version and day (the keys pipeline_numbers reads, and
    some it must ignore)."""
    return {"all/ctr": ctr, "all/cvr": 0.02, "all/gmv_per_user": 3.5, "all/auc": 0.75, "new_users/ctr": 0.9,
            "drift/previous_day/f_a/psi": psi_a, "drift/previous_day/f_a/ks": 0.9,
            "drift/previous_day/f_b/psi": psi_b, "drift/previous_day/c_c/chi2_p": 0.5,
            "drift/previous_day/drifted_columns": drifted, "drift/previous_day/severe_columns": 0.0,
            "drift/baseline_7d/f_a/psi": 0.01, "drift/baseline_7d/f_b/psi": None,
            "alerts/severe": severe, "alerts/medium": 0.0, "alerts/minor": 4.0, "alerts/incidents": 2.0,
            "evidently/drifted_columns_share": 0.25}


def _values(model: Any) -> dict[str, float]:
    """{column: value} of a pipeline snapshot read back from the workspace."""
    return {r.metric_value_location.metric.params["column"]: r.value for r in model.metric_results.values()}


def _ctr(model: Any) -> dict[str, float]:
    return {c: v for c, v in _values(model).items() if c.startswith("ctr@")}


def _runs(settings: Settings, model_name: str) -> list[Any]:
    ws = ew.open_workspace(settings)
    pid = ew.project_id(model_name)
    return [ws.get_run(pid, sid) for sid in ws.list_runs(pid)]


def _pipeline(settings: Settings, model_name: str) -> dict[str, list[Any]]:
    """{ds: the pipeline snapshots of that day}."""
    out: dict[str, list[Any]] = {}
    for run in _runs(settings, model_name):
        if run.metadata.get("kind") == ew.KIND_PIPELINE:
            out.setdefault(run.metadata["ds"], []).append(run)
    return out


def _add(settings: Settings, version: str, ds: str, ctr: float, model_name: str = "home_feed_ctr",
         report: Any = None) -> dict[str, str]:
    return ew.add_published_day(settings, model_name, version, ds, "daily", report,
                                _metrics(ctr, psi_a=0.1, psi_b=0.3, drifted=1.0, severe=2.0))


def test_pipeline_numbers_are_the_published_metrics():
    numbers = ew.pipeline_numbers(_metrics(0.05, psi_a=0.1, psi_b=0.3, drifted=1.0, severe=2.0))
    # max(0.1, 0.3); 1 drifted of the 3 columns compared with the previous day (f_a, f_b, c_c);
    # the 7-day baseline's missing PSI of f_b is no 0.
    assert numbers == {"ctr": 0.05, "cvr": 0.02, "gmv_per_user": 3.5, "auc": 0.75, "max_psi_previous": 0.3,
                       "max_psi_baseline_7d": 0.01, "drifted_share_previous": pytest.approx(1 / 3),
                       "alerts_severe": 2.0, "alerts_medium": 0.0, "alerts_minor": 4.0, "incidents": 2.0}


def test_pipeline_numbers_leave_out_what_is_missing_and_weekly_compares_with_the_week_before():
    assert ew.pipeline_numbers({"all/ctr": float("nan"), "all/auc": None, "alerts/severe": 1.0}) == {
        "alerts_severe": 1.0}
    weekly = {"all/ctr": 0.04, "drift/previous_week/f_a/psi": 0.2, "drift/previous_week/f_b/psi": 0.5,
              "drift/previous_day/f_a/psi": 9.0, "drift/baseline_7d/f_a/psi": 9.0, "alerts/incidents": 3.0}
    assert ew.pipeline_numbers(weekly, "weekly") == {"ctr": 0.04, "max_psi_previous": 0.5, "incidents": 3.0}


def test_one_project_per_model_name_with_an_id_that_survives_reruns(ws_settings):
    first = _add(ws_settings, "v1", D1, 0.05)
    _add(ws_settings, "v2", D1, 0.06)
    _add(ws_settings, "v1", D1, 0.05)
    other = _add(ws_settings, "v1", D1, 0.05, model_name="search_rank")
    ws = ew.open_workspace(ws_settings)
    projects = {p.name: str(p.id) for p in ws.list_projects()}
    assert projects == {"home_feed_ctr": first["project_id"], "search_rank": other["project_id"]}
    assert first["project_id"] == str(uuid.uuid5(ew._NAMESPACE, "project:home_feed_ctr"))


def test_a_project_made_by_hand_is_found_by_its_name(ws_settings):
    from evidently.sdk.models import ProjectModel

    ws = ew.open_workspace(ws_settings)
    mine = ws.add_project(ProjectModel(name="home_feed_ctr"))
    out = _add(ws_settings, "v1", D1, 0.05)
    assert out["project_id"] == str(mine.id)
    assert [p.name for p in ws.list_projects()] == ["home_feed_ctr"]


def test_two_days_and_two_versions_are_a_snapshot_per_day_stamped_with_it(ws_settings):
    for ds, ctr in ((D1, 0.05), (D2, 0.07)):
        _add(ws_settings, "v1", ds, ctr, report=_report(ws_settings.home / f"r{ds}v1", ds, "v1"))
        _add(ws_settings, "v2", ds, ctr + 0.001, report=_report(ws_settings.home / f"r{ds}v2", ds, "v2"))
    got = _pipeline(ws_settings, "home_feed_ctr")
    assert sorted(got) == [D1, D2]
    for ds, runs in got.items():
        (run,) = runs
        assert run.timestamp == dt.datetime(int(ds[:4]), int(ds[5:7]), int(ds[8:]), tzinfo=dt.UTC)
        assert set(run.tags) == {"kind=pipeline", "model_name=home_feed_ctr", "cadence=daily"}
        assert run.metadata["model_versions"] == "v1,v2"
    assert _ctr(got[D1][0]) == {"ctr@v1": 0.05, "ctr@v2": pytest.approx(0.051)}
    assert _ctr(got[D2][0]) == {"ctr@v1": 0.07, "ctr@v2": pytest.approx(0.071)}
    reports = sorted((r.metadata["model_version"], r.metadata["ds"], r.timestamp.date().isoformat())
                     for r in _runs(ws_settings, "home_feed_ctr") if r.metadata["kind"] == "report")
    assert reports == [("v1", D1, D1), ("v1", D2, D2), ("v2", D1, D1), ("v2", D2, D2)]


def test_the_pipeline_snapshot_holds_the_numbers_it_was_given(ws_settings):
    numbers = {"ctr": 0.0512, "auc": 0.7731, "max_psi_previous": 0.41, "alerts_severe": 3.0}
    ew.add_day(ws_settings, "home_feed_ctr", "v1", D1, "daily", None, numbers)
    (run,) = _runs(ws_settings, "home_feed_ctr")
    assert _values(run) == {"ctr@v1": 0.0512, "auc@v1": 0.7731, "max_psi_previous@v1": 0.41,
                            "alerts_severe@v1": 3.0}


def test_a_rerun_of_a_day_replaces_that_versions_numbers(ws_settings):
    _add(ws_settings, "v1", D1, 0.05)
    _add(ws_settings, "v2", D1, 0.04)
    _add(ws_settings, "v1", D2, 0.06)
    ew.add_day(ws_settings, "home_feed_ctr", "v1", D1, "daily", None, {"ctr": 0.08})
    got = _pipeline(ws_settings, "home_feed_ctr")
    assert {k: len(v) for k, v in got.items()} == {D1: 1, D2: 1}
    # v1's numbers of D1 are the rerun's (its other numbers are gone), v2's are untouched.
    assert {c: v for c, v in _values(got[D1][0]).items() if c.endswith("@v1")} == {"ctr@v1": 0.08}
    assert _ctr(got[D1][0]) == {"ctr@v1": 0.08, "ctr@v2": 0.04}
    assert _ctr(got[D2][0]) == {"ctr@v1": 0.06}
    assert len(_runs(ws_settings, "home_feed_ctr")) == 2


def test_adding_a_day_reads_no_other_snapshot(ws_settings):
    """Publishing a day opens only its own files: a snapshot of another day that no longer
    parses (here: truncated) neither stops it nor is read. Evidently's Workspace(path) parses
    every snapshot on opening and refuses this one."""
    _add(ws_settings, "v1", D1, 0.05)
    snapshots = ws_settings.evidently_workspace / str(ew.project_id("home_feed_ctr")) / "snapshots"
    (other,) = snapshots.glob("*.json")
    other.write_text(other.read_text()[:100])
    with pytest.raises(ValueError):  # json.JSONDecodeError
        ew.open_workspace(ws_settings)
    ew.add_day(ws_settings, "home_feed_ctr", "v1", D2, "daily", None, {"ctr": 0.07})
    added = [p for p in snapshots.glob("*.json") if p != other]
    assert [json.loads(p.read_text())["metadata"]["ds"] for p in added] == [D2]


def test_a_failure_half_way_is_repaired_by_the_rerun(ws_settings, monkeypatch):
    _add(ws_settings, "v1", D1, 0.05, report=_report(ws_settings.home / "r0", D1))
    calls = []
    real = ew._write_snapshot

    def second_fails(*args: Any) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk full")
        real(*args)

    monkeypatch.setattr(ew, "_write_snapshot", second_fails)
    with pytest.raises(OSError, match="disk full"):
        _add(ws_settings, "v1", D1, 0.09, report=_report(ws_settings.home / "r1", D1))
    monkeypatch.setattr(ew, "_write_snapshot", real)
    _add(ws_settings, "v1", D1, 0.09, report=_report(ws_settings.home / "r2", D1))
    runs = _runs(ws_settings, "home_feed_ctr")
    assert sorted(r.metadata["kind"] for r in runs) == ["pipeline", "report"]
    (pipeline,) = [r for r in runs if r.metadata["kind"] == "pipeline"]
    assert _ctr(pipeline) == {"ctr@v1": 0.09}


def _report(out_dir: Path, ds: str, version: str = "v1") -> Any:
    """A real report of two tiny samples whose only categorical feature moved completely: the
    drifted columns share is 1 by construction."""
    rng = np.random.default_rng(7)
    current = pd.DataFrame({"f_user_tenure_days": rng.exponential(100, 300), "score": rng.uniform(0, 1, 300),
                            "c_device": ["ios"] * 300})
    reference = current.assign(c_device=["android"] * 300)
    summary = build_report(current, reference, out_dir, f"home_feed_ctr {version} {ds}", ds=ds,
                           labels={"model_name": "home_feed_ctr", "model_version": version, "cadence": "daily"})
    return summary.snapshot


def test_the_days_report_is_stored_beside_its_numbers(ws_settings):
    out = _add(ws_settings, "v1", D1, 0.05, report=_report(ws_settings.home / "r", D1))
    ws = ew.open_workspace(ws_settings)
    run = ws.get_run(uuid.UUID(out["project_id"]), uuid.UUID(out["report_snapshot_id"]))
    assert run.metadata["kind"] == "report" and run.metadata["ds"] == D1
    assert run.timestamp == dt.datetime(2026, 6, 8, tzinfo=dt.UTC)
    shares = [r.share.value for r in run.metric_results.values()
              if r.metric_value_location.metric.params["type"].endswith(":DriftedColumnsCount")]
    assert shares == [1.0]
    _add(ws_settings, "v1", D2, 0.05, report=_report(ws_settings.home / "r2", D2))
    panel = _panels(ws_settings)["Evidently report of v1: drifted columns share, ROC AUC of the sample"]
    assert _series(ws_settings, panel) == {"drifted columns share": {D1: 1.0, D2: 1.0}}


def test_a_report_of_another_day_is_refused(ws_settings):
    with pytest.raises(ValueError, match="ds='2026-06-08'"):
        _add(ws_settings, "v1", D2, 0.05, report=_report(ws_settings.home / "r", D1))


def test_bad_identifiers_never_reach_the_workspace(ws_settings):
    for name, version in (("../etc", "v1"), ("home_feed_ctr", "v1/../../x"), ("a b", "v1")):
        with pytest.raises(ConfigError):
            ew.add_day(ws_settings, name, version, D1, "daily", None, {"ctr": 0.1})
    with pytest.raises(ConfigError):
        ew.add_day(ws_settings, "home_feed_ctr", "v1", "2026-13-01", "daily", None, {"ctr": 0.1})
    with pytest.raises(ValueError, match="cadence"):
        ew.add_day(ws_settings, "home_feed_ctr", "v1", D1, "hourly", None, {"ctr": 0.1})
    assert not ws_settings.evidently_workspace.exists()


def _panels(settings: Settings, model_name: str = "home_feed_ctr") -> dict[str, Any]:
    ws = ew.open_workspace(settings)
    board = ws.get_dashboard(ew.project_id(model_name))
    (tab,) = board.tabs
    assert tab.panels == [p.id for p in board.panels]
    return {p.title: p for p in board.panels}


def test_the_dashboard_has_a_line_per_version_of_each_number(ws_settings):
    _add(ws_settings, "v1", D1, 0.05)
    _add(ws_settings, "v2", D1, 0.05)
    panels = _panels(ws_settings)
    assert sorted(panels) == sorted(
        [f"{t} (daily)" for t in ("CTR", "CVR", "GMV per user", "AUC", "max feature PSI vs the previous period",
                                  "max feature PSI vs the 7-day baseline",
                                  "share of drifted features vs the previous period")]
        + ["Alerts by tier, v1 (daily)", "Alerts by tier, v2 (daily)"]
        + [f"Evidently report of {v}: drifted columns share, ROC AUC of the sample" for v in ("v1", "v2")])
    ctr = panels["CTR (daily)"]
    assert ctr.plot_params == {"plot_type": "line"}
    assert [(s.legend, s.metric, s.metric_labels, sorted(s.tags)) for s in ctr.values] == [
        (v, "evidently:metric_v2:MeanValue", {"column": f"ctr@{v}"}, ["cadence=daily", "kind=pipeline"])
        for v in ("v1", "v2")]
    alerts = panels["Alerts by tier, v2 (daily)"]
    assert alerts.plot_params == {"plot_type": "bar", "is_stacked": False}
    assert [s.metric_labels["column"] for s in alerts.values] == [
        "alerts_severe@v2", "alerts_medium@v2", "alerts_minor@v2", "incidents@v2"]


def test_the_dashboard_is_rewritten_only_when_a_version_comes(ws_settings):
    _add(ws_settings, "v1", D1, 0.05)
    board = ws_settings.evidently_workspace / str(ew.project_id("home_feed_ctr")) / "dashboard.json"
    before = (board.read_text(), board.stat().st_mtime_ns)
    time.sleep(0.01)
    _add(ws_settings, "v1", D2, 0.06)
    assert (board.read_text(), board.stat().st_mtime_ns) == before
    _add(ws_settings, "v2", D2, 0.06)
    assert "ctr@v2" in board.read_text()


def test_weekly_numbers_get_their_own_lines(ws_settings):
    _add(ws_settings, "v1", D1, 0.05)
    ew.add_published_day(ws_settings, "home_feed_ctr", "v1", "2026-06-14", "weekly", None,
                         {"all/ctr": 0.045, "drift/previous_week/f_a/psi": 0.2, "alerts/incidents": 1.0})
    panels = _panels(ws_settings)
    assert [s.tags for s in panels["CTR (weekly)"].values] == [["cadence=weekly", "kind=pipeline"]]
    assert "share of drifted features vs the previous period (weekly)" not in panels
    assert [s.metric_labels["column"] for s in panels["Alerts by tier, v1 (weekly)"].values] == ["incidents@v1"]


def _series(settings: Settings, panel: Any) -> dict[str, dict[str, float]]:
    """What the UI's own storage answers for a panel: {legend: {day: value}}; and the points of
    the x axis are the days, once each (else the lines have gaps)."""
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local.base import InMemoryDataStorage

    storage = InMemoryDataStorage(str(settings.evidently_workspace))
    filters = [SeriesFilter(tags=v.tags, metadata=v.metadata, metric=v.metric, metric_labels=v.metric_labels)
               for v in panel.values]
    answer = asyncio.run(storage.get_data_series(ew.project_id("home_feed_ctr"), filters, None, None))
    days = [s.timestamp.date() for s in answer.sources]
    assert days == sorted(set(days))
    out: dict[str, dict[str, float]] = {}
    for s in answer.series:
        legend = panel.values[s.filter_index].legend
        out[legend] = {answer.sources[i].timestamp.date().isoformat(): v for i, v in enumerate(s.values)
                       if v is not None}
    return out


def test_the_dashboards_lines_are_each_versions_numbers_over_the_days(ws_settings):
    for ds, ctr in ((D1, 0.05), (D2, 0.07)):
        _add(ws_settings, "v1", ds, ctr)
        _add(ws_settings, "v2", ds, ctr + 0.01)
    ew.add_published_day(ws_settings, "home_feed_ctr", "v1", "2026-06-14", "weekly", None, {"all/ctr": 0.5})
    panels = _panels(ws_settings)
    assert _series(ws_settings, panels["CTR (daily)"]) == {
        "v1": {D1: 0.05, D2: 0.07}, "v2": {D1: pytest.approx(0.06), D2: pytest.approx(0.08)}}
    assert _series(ws_settings, panels["CTR (weekly)"]) == {"v1": {"2026-06-14": 0.5}}
    assert _series(ws_settings, panels["Alerts by tier, v1 (daily)"]) == {
        "severe alerts": {D1: 2.0, D2: 2.0}, "medium alerts": {D1: 0.0, D2: 0.0},
        "minor alerts": {D1: 4.0, D2: 4.0}, "incidents": {D1: 2.0, D2: 2.0}}


def _add_version(home: str, version: str, start: Any) -> None:
    start.wait()
    settings = Settings(home=Path(home), reports_dir=Path(home) / "reports")
    ew.add_day(settings, "home_feed_ctr", version, D1, "daily", None, {"ctr": 0.05})


def test_days_published_side_by_side_lose_nothing(ws_settings):
    versions = [f"v{i}" for i in range(4)]
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(len(versions))
    procs = [ctx.Process(target=_add_version, args=(str(ws_settings.home), v, start)) for v in versions]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(versions)
    ws = ew.open_workspace(ws_settings)
    assert [p.name for p in ws.list_projects()] == ["home_feed_ctr"]
    (day,) = _pipeline(ws_settings, "home_feed_ctr")[D1]
    assert _ctr(day) == {f"ctr@{v}": 0.05 for v in versions}
    assert [s.legend for s in _panels(ws_settings)["CTR (daily)"].values] == versions


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_evidently_ui_serves_the_workspace(ws_settings, tmp_path):
    _add(ws_settings, "v1", D1, 0.05)
    port = _free_port()
    log = (tmp_path / "ui.log").open("w")
    ui = subprocess.Popen([str(Path(sys.executable).parent / "evidently"), "ui", "--workspace",
                           str(ws_settings.evidently_workspace), "--host", "127.0.0.1", "--port", str(port)],
                          stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                projects = _get(f"{base}/projects")
                break
            except OSError:
                assert ui.poll() is None, (tmp_path / "ui.log").read_text()
                assert time.monotonic() < deadline, "evidently ui did not answer within 120 s"
                time.sleep(0.5)
        pid = str(ew.project_id("home_feed_ctr"))
        assert [(p["name"], p["id"]) for p in projects] == [("home_feed_ctr", pid)]
        assert len(_get(f"{base}/projects/{pid}/snapshots")) == 1
        # A day published while the UI runs shows up without a restart.
        _add(ws_settings, "v1", D2, 0.07)
        deadline = time.monotonic() + 30
        while len(_get(f"{base}/projects/{pid}/snapshots")) < 2:
            assert time.monotonic() < deadline, "the UI did not pick up the new snapshot"
            time.sleep(0.5)
        board = _get(f"{base}/v2/dashboards/{pid}")
        ctr = next(p for p in board["panels"] if p["title"] == "CTR (daily)")
        req = urllib.request.Request(f"{base}/v2/snapshots/{pid}/data_series_batch", method="POST",
                                     data=json.dumps({"series_filter": [
                                         {k: v[k] for k in ("tags", "metadata", "metric", "metric_labels")}
                                         for v in ctr["values"]]}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            answer = json.loads(r.read())
        assert [s["values"] for s in answer["series"]] == [[0.05, 0.07]]
    finally:
        ui.terminate()
        ui.wait(30)
        log.close()
