"""One run per (model, version, ds, cadence); reruns add no metric point; changed values
replace the run instead of stacking points."""
from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from offline_eval.config import ConfigError, Settings
from offline_eval.io.mlflow_log import RunKey, find_runs, log_day


@pytest.fixture()
def local_settings(tmp_path):
    return Settings(home=tmp_path / "home", reports_dir=tmp_path / "reports",
                    mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def _log(settings, key, metrics, params=None, artifacts=None):
    return log_day(settings, key, metrics=metrics, params=params or {"ds": key.ds},
                   tags={"offline_eval.dag_run_id": "r1"}, artifacts=artifacts or {})


def _history(settings, run_id, metric):
    return MlflowClient(settings.mlflow_tracking_uri).get_metric_history(run_id, metric)


def test_step_and_timestamp_come_from_ds():
    key = RunKey("m", "v1", "2026-06-18")
    assert key.step == 20622  # days from 1970-01-01 to 2026-06-18
    assert key.timestamp_ms == 20622 * 86_400_000


def test_rerun_reuses_the_run_and_adds_no_points(local_settings, tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.html").write_text("<html>1</html>")
    key = RunKey("home_feed_ctr", "v1", "2026-06-18")
    first = _log(local_settings, key, {"all/ctr": 0.05, "all/cvr": None}, artifacts={"evidently": report})
    (report / "report.html").write_text("<html>2</html>")
    second = _log(local_settings, key, {"all/ctr": 0.05, "all/cvr": None}, artifacts={"evidently": report})
    assert first["run_id"] == second["run_id"]
    assert (first["metrics_logged"], second["metrics_logged"]) == ("1", "0")
    hist = _history(local_settings, first["run_id"], "all/ctr")
    assert [(m.value, m.step, m.timestamp) for m in hist] == [(0.05, key.step, key.timestamp_ms)]
    client = MlflowClient(local_settings.mlflow_tracking_uri)
    exp = client.get_experiment_by_name("home_feed_ctr")
    assert len(find_runs(client, exp.experiment_id, key)) == 1
    local = client.download_artifacts(first["run_id"], "evidently/report.html", str(tmp_path / "dl"))
    assert open(local).read() == "<html>2</html>"  # artifact replaced, not duplicated


def test_changed_values_replace_the_run(local_settings):
    key = RunKey("home_feed_ctr", "v2", "2026-06-18")
    first = _log(local_settings, key, {"all/ctr": 0.05})
    second = _log(local_settings, key, {"all/ctr": 0.04})
    assert first["run_id"] != second["run_id"]
    client = MlflowClient(local_settings.mlflow_tracking_uri)
    exp = client.get_experiment_by_name("home_feed_ctr")
    runs = find_runs(client, exp.experiment_id, key)
    assert [r.info.run_id for r in runs] == [second["run_id"]]
    assert client.get_run(first["run_id"]).info.lifecycle_stage == "deleted"
    assert [m.value for m in _history(local_settings, second["run_id"], "all/ctr")] == [0.04]


def test_changed_param_replaces_the_run_instead_of_raising(local_settings):
    key = RunKey("home_feed_ctr", "v1", "2026-06-19")
    first = _log(local_settings, key, {"all/ctr": 0.05}, params={"sample_rows": "50000"})
    second = _log(local_settings, key, {"all/ctr": 0.05}, params={"sample_rows": "1000"})
    assert first["run_id"] != second["run_id"]
    assert MlflowClient(local_settings.mlflow_tracking_uri).get_run(second["run_id"]).data.params == {
        "sample_rows": "1000"
    }


def test_days_and_versions_get_their_own_runs(local_settings):
    ids = {_log(local_settings, RunKey("m", v, ds), {"all/ctr": 0.1})["run_id"]
           for v in ("v1", "v2") for ds in ("2026-06-18", "2026-06-19")}
    assert len(ids) == 4


def test_identifiers_are_validated_before_they_reach_the_filter():
    with pytest.raises(ConfigError):
        RunKey("m", "v1' or tags.x = 'y", "2026-06-18")


def test_one_logged_model_per_version_with_its_evaluations_and_inputs(local_settings):
    from offline_eval.io.mlflow_log import InputPartition

    client = MlflowClient(local_settings.mlflow_tracking_uri)
    inputs = [InputPartition("offline_eval.impressions", "2026-06-18", 300120),
              InputPartition("offline_eval.clicks", "2026-06-18", 24415)]
    for ds in ("2026-06-17", "2026-06-18", "2026-06-18"):  # two days, and a rerun of the second
        for version in ("v1", "v2"):
            log_day(local_settings, RunKey("home_feed_ctr", version, ds), metrics={"all/ctr": 0.08},
                    params={"ds": ds}, tags={}, artifacts={},
                    inputs=[InputPartition(p.table, ds, p.rows) for p in inputs])
    exp = client.get_experiment_by_name("home_feed_ctr")
    models = list(client.search_logged_models(experiment_ids=[exp.experiment_id]))
    assert sorted(m.name for m in models) == ["home_feed_ctr-v1", "home_feed_ctr-v2"]  # no second one on rerun
    v2 = next(m for m in models if m.name == "home_feed_ctr-v2")
    assert v2.model_type == "external" and str(v2.status) in ("READY", "LoggedModelStatus.READY")
    # The model's page lists its evaluations: one ctr point per day, no duplicate from the rerun.
    ctr = sorted((m.step, m.value) for m in v2.metrics if m.key == "all/ctr")
    assert ctr == [(RunKey("m", "v", "2026-06-17").step, 0.08), (RunKey("m", "v", "2026-06-18").step, 0.08)]
    (run,) = find_runs(client, exp.experiment_id, RunKey("home_feed_ctr", "v2", "2026-06-18"))
    run = client.get_run(run.info.run_id)
    got = sorted((d.dataset.name, json.loads(d.dataset.profile)["num_rows"]) for d in run.inputs.dataset_inputs)
    assert got == [("offline_eval.clicks", 24415), ("offline_eval.impressions", 300120)]  # once each
    assert [m.model_id for m in run.inputs.model_inputs] == [v2.model_id]


def test_standard_source_tags_name_the_job_and_the_full_commit():
    import subprocess

    from offline_eval.io.mlflow_log import source_tags

    tags = source_tags("offline_eval.jobs.publish")
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert tags["mlflow.source.name"] == "offline_eval.jobs.publish" and tags["mlflow.source.type"] == "JOB"
    assert tags.get("mlflow.source.git.commit") == (head or None)


def _readout(arms: dict[str, list[str]], end: str = "2026-06-21") -> dict:
    return {"model_name": "home_feed_ctr", "experiment_id": "exp_home_feed_v2", "model_versions": arms,
            "window": {"start": "2026-06-08", "end": end}, "pre_period": None, "alpha": 0.05,
            "correction": "holm",
            "srm": {"p_value": 0.6, "flag": False, "chi2": 0.27, "counts": {"control": 10, "treatment": 11}},
            "metrics": []}


def test_registered_versions_carry_the_arms_as_aliases(local_settings, tmp_path):
    from offline_eval.io.mlflow_log import log_readout

    for ds in ("2026-06-20", "2026-06-21", "2026-06-21"):  # a rerun registers nothing twice
        for version in ("v1", "v2"):
            log_day(local_settings, RunKey("home_feed_ctr", version, ds), metrics={"all/ctr": 0.08},
                    params={"ds": ds}, tags={}, artifacts={})
    client = MlflowClient(local_settings.mlflow_tracking_uri)
    versions = client.search_model_versions("name = 'home_feed_ctr'")
    labels = {v.tags["offline_eval.model_version"]: v for v in versions}
    assert sorted(labels) == ["v1", "v2"] and len(versions) == 2
    models = {m.name: m.model_id for m in client.search_logged_models(
        experiment_ids=[client.get_experiment_by_name("home_feed_ctr").experiment_id])}
    v2 = client.get_model_version("home_feed_ctr", labels["v2"].version)
    assert v2.source == f"models:/{models['home_feed_ctr-v2']}"  # the version is its LoggedModel

    (tmp_path / "ab").mkdir()
    out = log_readout(local_settings, _readout({"control": ["v1"], "treatment": ["v2"]}), tmp_path / "ab", "r1")
    assert out["aliases"] == f"control={labels['v1'].version},treatment={labels['v2'].version}"
    assert client.get_model_version_by_alias("home_feed_ctr", "treatment").tags["offline_eval.model_version"] == "v2"
    assert client.get_model_version_by_alias("home_feed_ctr", "control").tags[
        "offline_eval.ab.exp_home_feed_v2"] == "control"
    # The arms swap (a new experiment phase): the aliases follow; still two registered versions.
    log_readout(local_settings, _readout({"control": ["v2"], "treatment": ["v1"]}, "2026-06-22"), tmp_path / "ab", "r2")
    assert client.get_model_version_by_alias("home_feed_ctr", "control").tags["offline_eval.model_version"] == "v2"
    assert len(client.search_model_versions("name = 'home_feed_ctr'")) == 2


def test_no_registry_registers_nothing(tmp_path):
    from offline_eval.io.mlflow_log import arm_alias

    settings = Settings(home=tmp_path / "home", reports_dir=tmp_path / "reports", mlflow_registry_uri="none",
                        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    log_day(settings, RunKey("home_feed_ctr", "v1", "2026-06-21"), metrics={"all/ctr": 0.08},
            params={}, tags={}, artifacts={})
    assert MlflowClient(settings.mlflow_tracking_uri).search_registered_models() == []
    # Arm names that MLflow reserves for versions, or with a dot, become valid aliases.
    assert [arm_alias(a) for a in ("control", "v2", "latest", "b.1")] == ["control", "arm_v2", "arm_latest", "b_1"]
