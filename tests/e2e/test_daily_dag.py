"""One small day through the real DAG (`airflow dags test`): Spark tasks as thin clients of the
session's engine, GX gate, result tables, MLflow runs, Evidently reports; then a rerun
(idempotency) and a corrupted partition (the gate stops it).

Airflow, MLflow and the reports live in this module's own state directory, exactly as
`make demo` runs on the developer's .local/; the tables live in the engine's warehouse.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

ROOT = Path(__file__).resolve().parents[2]
DS = "2026-06-18"
DB = "offline_eval_e2e"
MODEL = "home_feed_ctr"


def _env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "OFFLINE_EVAL", "MLFLOW_TRACKING", "SPARK_CONF_DIR"))}
    # SPARK_REMOTE is the session's engine (the engine fixture exported it); scripts/env.sh
    # derives the Airflow connection spark_connect_default from it.
    env.update(OFFLINE_EVAL_HOME=str(state / "home"), OFFLINE_EVAL_REPORTS=str(state / "reports"),
               OFFLINE_EVAL_DATABASE=DB)
    return env


def _sh(state: Path, command: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-c", f". scripts/env.sh && {command}"], cwd=ROOT, env=_env(state),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{command} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


WAREHOUSE: Path


def _partition(table: str, ds: str = DS) -> Path:
    return WAREHOUSE / f"{DB}.db" / table / f"ds={ds}"


def _metrics(state: Path | None = None) -> list[dict]:
    table = pq.read_table(_partition("metrics_daily"))
    return sorted(table.to_pylist(), key=lambda r: (r["model_version"], r["segment"], r["metric"]))


@pytest.fixture(scope="module")
def state(tmp_path_factory, engine, settings):
    global WAREHOUSE
    WAREHOUSE = Path(settings.warehouse_dir)
    state = tmp_path_factory.mktemp("e2e")
    _sh(state, "offline-eval generate --start 2026-06-17 --days 2 --impressions-per-day 6000 "
               "--base-users 2000 --base-items 1000")
    _sh(state, "airflow db migrate")
    _sh(state, f"airflow dags test offline_eval_daily {DS}")
    return state


def test_metrics_table_matches_the_input(state):
    rows = _metrics(state)
    assert {(r["model_version"], r["variant"]) for r in rows} == {("v1", "control"), ("v2", "treatment")}
    impressions = pq.read_table(_partition("impressions"), columns=["model_version"]).to_pylist()
    for version in ("v1", "v2"):
        got = {r["metric"]: r for r in rows if r["model_version"] == version and r["segment"] == "all"}
        assert got["impressions"]["value"] == sum(1 for r in impressions if r["model_version"] == version)
        assert got["ctr"]["value"] == pytest.approx(got["clicks"]["value"] / got["impressions"]["value"])
        assert 0 < got["ctr"]["value"] < 0.2
        assert 0.8 < got["new_user_coverage"]["value"] <= 1.0


def test_one_mlflow_run_per_version_with_metrics_and_artifacts(state):
    client = MlflowClient(f"sqlite:///{state / 'home' / 'mlflow' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(MODEL)
    runs = client.search_runs([exp.experiment_id], f"tags.`offline_eval.ds` = '{DS}'")
    assert sorted(r.data.tags["offline_eval.model_version"] for r in runs) == ["v1", "v2"]
    models = client.search_logged_models(experiment_ids=[exp.experiment_id])
    assert sorted(m.name for m in models) == [f"{MODEL}-v1", f"{MODEL}-v2"]
    table = {(r["model_version"], r["segment"], r["metric"]): r["value"] for r in _metrics(state)}
    for run in runs:
        version = run.data.tags["offline_eval.model_version"]
        assert run.data.metrics["all/ctr"] == pytest.approx(table[(version, "all", "ctr")], rel=1e-12)
        assert run.data.params["ds"] == DS
        assert run.data.tags["offline_eval.dag_run_id"].startswith("manual__")
        assert run.data.tags["mlflow.source.name"] == "offline_eval.jobs.publish"
        assert len(run.data.tags["mlflow.source.git.commit"]) == 40
        assert {d.dataset.name for d in run.inputs.dataset_inputs} >= {f"{DB}.impressions", f"{DB}.requests"}
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evidently")}
        assert {"evidently/report.html", "evidently/report.json", "evidently/validation.json"} <= artifacts


def test_reports_and_validation_result_are_published(state):
    day = state / "reports" / MODEL / "v2" / DS
    html = (day / "report.html").read_text()
    assert "<html" in html.lower() and "Dataset Drift" in html and "f_user_tenure_days" in html
    report = json.loads((day / "report.json").read_text())
    assert any(str(m.get("metric_name", "")).startswith("DriftedColumnsCount") for m in report["metrics"])
    validation = json.loads((state / "reports" / "validation" / DS / "validation.json").read_text())
    assert validation["success"] is True and len(validation["tables"]) == 8


def _outbox(state: Path) -> list[Path]:
    folder = state / "home" / "outbox" / DS
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_alerts_carry_tier_context_and_incident_and_reach_the_outbox(state):
    alerts = pq.read_table(_partition("alerts_daily")).to_pylist()
    assert alerts, "the promotion day raises alerts"
    assert {a["tier"] for a in alerts} <= {"severe", "medium", "minor"}
    for a in alerts:
        ctx = json.loads(a["context"])
        assert ctx["reference_name"] in ("previous_day", "baseline_7d") and a["cause"]
        if a["rule"] == "ctr_drop" and a["segment"] == "all":  # the counts behind the value
            assert a["value"] == pytest.approx(a["numerator"] / a["denominator"])
            # 2026-06-17 was profiled for the references but never computed in this world, so
            # metrics_daily has no counts of it to split (tests/stats/test_incidents.py does).
            assert ctx["reference_name"] == "previous_day" and ctx["mix_rate"] is None
    # One incident per version and cause: a version's alerts share one id, except the serving
    # ones (latency), which are an incident of their own. 06-17 was only profiled, so the cause
    # is read from the drift against it (c_traffic_source, tenure: severe), not from a split.
    for version in {a["model_version"] for a in alerts}:
        mine = [a for a in alerts if a["model_version"] == version]
        day = {a["incident_id"] for a in mine if not a["rule"].startswith(("serving_", "latency_"))}
        assert len(day) == 1
        kinds = {json.loads(a["context"])["cause_kind"] for a in mine if a["incident_id"] in day}
        assert kinds == {"feature_drift"}
        assert all(json.loads(a["context"])["cause_kind"] == "serving" for a in mine if a["incident_id"] not in day)
    # Every incident with a sent tier left one file per recipient in the outbox (the embedded
    # stack delivers there), each recorded in the delivery ledger.
    ledger = json.loads((state / "home" / "alerting" / "deliveries" / f"{DS}.json").read_text())
    files = _outbox(state)
    assert len(files) == len(ledger) > 0
    assert {f.suffix for f in files} <= {".eml", ".json"}


def test_lifts_agree_with_metrics_daily(state):
    """The lifts' per-user sums give back the day's CTR, CVR and GMV per user of metrics_daily
    (computed by another path), and v2's control-arm lift compares it with v1 of the day."""
    lifts = pq.read_table(_partition("lifts_daily")).to_pylist()
    metrics = {(r["model_version"], r["metric"]): r["value"] for r in _metrics(state) if r["segment"] == "all"}
    (arm_ctr,) = [r for r in lifts if r["reference"] == "control_arm" and r["metric"] == "ctr"]
    assert arm_ctr["model_version"] == "v2" and arm_ctr["reference_label"] == "control v1"
    assert arm_ctr["value"] == pytest.approx(metrics[("v2", "ctr")], rel=1e-12)
    assert arm_ctr["reference_value"] == pytest.approx(metrics[("v1", "ctr")], rel=1e-12)
    assert arm_ctr["rel_ci_low"] < arm_ctr["rel_lift"] < arm_ctr["rel_ci_high"]
    for r in lifts:
        if r["metric"] in ("cvr", "gmv_per_user"):
            assert r["value"] == pytest.approx(metrics[(r["model_version"], r["metric"])], rel=1e-12)


def test_rerun_is_idempotent(state):
    client = MlflowClient(f"sqlite:///{state / 'home' / 'mlflow' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(MODEL)
    before_rows = _metrics(state)
    before_runs = {r.info.run_id for r in client.search_runs([exp.experiment_id])}
    html = state / "reports" / MODEL / "v1" / DS / "report.html"
    before_mtime = html.stat().st_mtime_ns
    before_outbox = _outbox(state)

    _sh(state, f"airflow dags test offline_eval_daily {DS}")

    assert _outbox(state) == before_outbox  # no alert is sent twice
    assert _metrics(state) == before_rows
    after_runs = client.search_runs([exp.experiment_id])
    assert {r.info.run_id for r in after_runs} == before_runs
    for run in after_runs:
        for key in ("all/ctr", "new_users/ctr", "all/gmv_per_user"):
            assert len(client.get_metric_history(run.info.run_id, key)) == 1
    assert html.stat().st_mtime_ns > before_mtime  # replaced ...
    leftovers = [p.name for p in html.parent.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # ... with no temporary or stale directories left beside it


def test_weekly_evaluation_of_the_stored_days(state):
    """`offline-eval weekly` for the week ending 2026-06-21: only 2026-06-18 was evaluated, so
    the week's CTR is that day's, with its own MLflow run (cadence weekly) and report; twice."""
    for _ in range(2):
        _sh(state, "offline-eval weekly --end 2026-06-21")
    weekly = {(r["model_version"], r["metric"]): r for r in pq.read_table(
        WAREHOUSE / f"{DB}.db" / "metrics_weekly" / "ds=2026-06-21").to_pylist() if r["segment"] == "all"}
    daily = {(r["model_version"], r["metric"]): r["value"] for r in _metrics(state) if r["segment"] == "all"}
    assert weekly[("v1", "ctr")]["value"] == pytest.approx(daily[("v1", "ctr")], rel=1e-12)
    assert weekly[("v2", "impressions")]["value"] == daily[("v2", "impressions")]
    html = (state / "reports" / MODEL / "v2" / "weekly" / "2026-06-21" / "report.html").read_text()
    assert "week ending 2026-06-21" in html and f"{daily[('v2', 'ctr')]:.2%}" in html
    client = MlflowClient(f"sqlite:///{state / 'home' / 'mlflow' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(MODEL)
    runs = client.search_runs([exp.experiment_id], "tags.`offline_eval.cadence` = 'weekly'")
    assert sorted(r.data.tags["offline_eval.model_version"] for r in runs) == ["v1", "v2"]  # one each, rerun kept
    assert all(r.data.tags["offline_eval.ds"] == "2026-06-21" for r in runs)
    assert len(client.get_metric_history(runs[0].info.run_id, "all/ctr")) == 1


def test_corrupted_partition_fails_the_gate_and_changes_nothing(state):
    orders = next(_partition("orders").glob("*.parquet"))
    table = pq.read_table(orders)
    prices = table.column("price").to_pylist()
    prices[0] = -9.99
    # INT96 timestamps: what Spark reads back as TIMESTAMP, as any Hive-compatible writer would.
    pq.write_table(table.set_column(table.schema.get_field_index("price"), "price", [prices]), orders,
                   use_deprecated_int96_timestamps=True)
    # The local file system keeps a Hadoop checksum beside each file; a foreign writer has none.
    orders.with_name(f".{orders.name}.crc").unlink(missing_ok=True)
    before = _metrics(state)

    proc = _sh(state, f"airflow dags test offline_eval_daily {DS}", check=False)

    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "DagRun failed" in out
    # Bad data fails the task without spending its retry.
    assert "validate: bad input data (exit code 3 on the command line); not retrying" in out
    assert f"table orders, partition ds={DS}" in out
    assert "expect_column_values_to_be_between on column price: 1 unexpected rows" in out
    validation = json.loads((state / "reports" / "validation" / DS / "validation.json").read_text())
    assert validation["success"] is False and validation["tables"]["orders"]["success"] is False
    assert _metrics(state) == before
    # The failed day is a severe alert, sent at once by the task's failure callback.
    failed = [f for f in _outbox(state) if "day's evaluation failed in validate" in f.read_text()]
    assert failed and all(f.name.startswith("severe-") for f in failed)


def test_ab_readout_dag_writes_the_readout_and_one_mlflow_run(state):
    for _ in range(2):  # the rerun replaces the files and keeps the run
        _sh(state, f"airflow dags test offline_eval_ab_readout {DS}")
    day = state / "reports" / "ab" / "exp_home_feed_v2" / DS
    readout = json.loads((day / "readout.json").read_text())
    assert readout["window"] == {"start": "2026-06-17", "end": DS, "experiment_start": "2026-06-17"}
    assert readout["pre_period"] is None  # the logs start with the experiment: no CUPED
    assert readout["model_versions"] == {"control": ["v1"], "treatment": ["v2"]}
    assert "Sample ratio" in (day / "readout.html").read_text()
    client = MlflowClient(f"sqlite:///{state / 'home' / 'mlflow' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(MODEL)
    runs = client.search_runs([exp.experiment_id], "tags.`offline_eval.ab_experiment` = 'exp_home_feed_v2'")
    assert len(runs) == 1
    assert runs[0].data.tags["offline_eval.treatment_version"] == "v2"
    assert runs[0].data.tags["offline_eval.dag_run_id"].startswith("manual__")


def test_weekly_baseline_dag_stores_the_windows_from_the_profiles(state):
    """The weekly DAG's run for the week ending Sunday 2026-06-21 stores the 7-day window from the
    daily profiles of the days that passed the gate: 2026-06-17 (never evaluated, so profiled from
    its raw partition first); 2026-06-18 is left out, as the corrupted-partition test above made
    its validation fail."""
    validation = json.loads((state / "reports" / "validation" / DS / "validation.json").read_text())
    assert validation["success"] is False
    proc = _sh(state, "airflow dags test offline_eval_baseline_weekly 2026-06-15", check=False)
    out = proc.stdout + proc.stderr
    assert "input validation failed: 2026-06-18" in out
    # The week's only evaluated day is now rejected: its evaluation fails at once, saying why.
    assert "no evaluated day in the week 2026-06-15..2026-06-21" in out and proc.returncode != 0
    rows = pq.read_table(WAREHOUSE / f"{DB}.db" / "baselines" / "window_days=7" / "ds=2026-06-21").to_pylist()
    assert {r["kind"] for r in rows} == {"numeric", "categorical", "score_bins", "metric", "moments"}
    price = [r for r in rows if r["model_version"] == "v1" and r["name"] == "f_item_price"][0]
    impressions = pq.read_table(_partition("impressions", "2026-06-17"), columns=["model_version", "f_item_price"])
    versions, prices = (impressions.column(c).to_pylist() for c in ("model_version", "f_item_price"))
    v1 = [p for v, p in zip(versions, prices, strict=True) if v == "v1" and p is not None]
    assert price["n"] == len(v1)
    drift = pq.read_table(_partition("drift_daily")).to_pylist()
    assert {(r["model_version"], r["reference"]) for r in drift} >= {("v1", "previous_day"), ("v2", "previous_day")}
