"""The pipeline's experiment readout: per-user units on inline rows by hand, then a generated
world read out end to end (Hive tables -> Spark moments -> readout files -> one MLflow run)."""
from __future__ import annotations

import dataclasses
import json

import pytest
from mlflow import MlflowClient

from offline_eval.metrics.ab import experiment_units, exposed_units, per_user

pytestmark = pytest.mark.spark


def test_units_by_hand(spark):
    sessions = spark.createDataFrame(
        [("e1", 1, "control"), ("e1", 1, "control"), ("e1", 2, "treatment"), ("e1", 3, "control"),
         ("e1", 3, "treatment"), ("other", 4, "control"), (None, 5, "control")],
        "experiment_id string, user_id long, variant string")
    exposed = {r.user_id: (r.variant, r.arms) for r in exposed_units(sessions, "e1").collect()}
    assert exposed == {1: ("control", 1), 2: ("treatment", 1), 3: ("control", 2)}  # 3 leaked

    funnel = spark.createDataFrame(
        [(1, 1, 0, 0.0), (1, 0, 0, 0.0), (1, 1, 2, 30.0), (2, 0, 0, 0.0), (9, 1, 1, 5.0)],
        "user_id long, clicked int, orders int, gmv double")
    window = per_user(funnel)
    got = {r.user_id: (r.impressions, r.clicks, r.orders, r.gmv, r.clicked, r.converted) for r in window.collect()}
    assert got[1] == (3.0, 2.0, 2.0, 30.0, 1.0, 1.0)
    assert got[2] == (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    pre = per_user(spark.createDataFrame([(2, 1, 1, 12.5)], "user_id long, clicked int, orders int, gmv double"))
    units = {r.user_id: r for r in experiment_units(exposed_units(sessions, "e1"), window, pre).collect()}
    assert sorted(units) == [1, 2]  # the leaked user is out, user 9 was never exposed
    assert (units[1].pre_gmv, units[1].pre_impressions) == (0.0, 0.0)  # no pre-period activity -> 0
    assert (units[2].pre_gmv, units[2].pre_clicked, units[2].gmv) == (12.5, 1.0, 0.0)


@pytest.fixture(scope="module")
def ab_world(spark, settings):
    from offline_eval.generator import Scenario
    from offline_eval.jobs import generate

    ab_settings = dataclasses.replace(settings, database="offline_eval_ab_test")
    scenario = Scenario(start="2026-06-06", days=6, experiment_start="2026-06-09", promo_day=10,
                        impressions_per_day=20_000, base_users=3_000, signups_per_day=150,
                        promo_signups_per_day=400, base_items=1_000, new_items_per_day=30)
    generate.run(scenario, ab_settings, force=True)
    return ab_settings, scenario


def test_readout_of_a_generated_experiment(spark, ab_world):
    from offline_eval.io.tables import Tables
    from offline_eval.jobs import ab_readout

    settings, sc = ab_world
    tables = Tables(spark, settings)
    assert ab_readout.running_experiments(tables, "2026-06-11") == [sc.experiment_id]
    got = ab_readout.readout_experiment(tables, sc.experiment_id, "2026-06-11")
    assert got["window"] == {"start": "2026-06-09", "end": "2026-06-11", "experiment_start": "2026-06-09"}
    assert got["pre_period"] == {"start": "2026-06-02", "end": "2026-06-08"}
    assert got["model_versions"] == {"control": ["v1"], "treatment": ["v2"]}

    db = settings.database
    users = {r.variant: r.n for r in spark.sql(
        f"select variant, count(distinct user_id) n from {db}.sessions where experiment_id = '{sc.experiment_id}' "
        "and ds between '2026-06-09' and '2026-06-11' group by variant").collect()}
    assert got["srm"]["counts"] == users and got["excluded_users_in_several_arms"] == 0
    # CTR per arm straight from the logs: distinct clicked (request, item) over impressions.
    ctr = {r.variant: r.ctr for r in spark.sql(f"""
        select i.variant, count(c.request_id) / count(*) ctr
        from {db}.impressions i
        left join (select distinct request_id, item_id from {db}.clicks) c
          on i.request_id = c.request_id and i.item_id = c.item_id
        where i.ds between '2026-06-09' and '2026-06-11' and i.experiment_id = '{sc.experiment_id}'
        group by i.variant""").collect()}
    row = next(r for r in got["metrics"] if r["metric"] == "ctr")
    assert row["mean_control"] == pytest.approx(ctr["control"], rel=1e-12)
    assert row["mean_variant"] == pytest.approx(ctr["treatment"], rel=1e-12)
    # GMV per exposed user over the window: all attributed order value / exposed users.
    gmv = next(r for r in got["metrics"] if r["metric"] == "gmv_per_user")
    assert gmv["method"].startswith("CUPED") and gmv["variance_reduction"] >= 0
    assert next(r for r in got["metrics"] if r["metric"] == "impressions_per_user")["guardrail"] is True
    # The intervals cover the generator's true lifts (docs/demo_scenario.md).
    truth = sc.ground_truth()["treatment_vs_control"]
    for metric, lift in (("ctr", truth["ctr_relative_lift"]), ("cvr", truth["cvr_relative_lift"]),
                         ("gmv_per_user", truth["gmv_per_user_relative_lift"])):
        r = next(r for r in got["metrics"] if r["metric"] == metric)
        assert r["rel_ci_low"] <= lift <= r["rel_ci_high"], (metric, r["rel_ci_low"], r["rel_ci_high"])


def test_outputs_and_one_mlflow_run_per_experiment_and_day(spark, ab_world, tmp_path):
    from offline_eval.jobs import ab_readout

    settings, sc = ab_world
    settings = dataclasses.replace(settings, reports_dir=tmp_path / "reports",
                                   mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for _ in range(2):  # a rerun replaces the files and finds the same run
        ab_readout.run("2026-06-11", settings)
        ab_readout.publish("2026-06-11", settings, dag_run_id="manual__test")
    day = tmp_path / "reports" / "ab" / sc.experiment_id / "2026-06-11"
    assert sorted(p.name for p in day.iterdir()) == ["readout.html", "readout.json", "readout.md"]
    readout = json.loads((day / "readout.json").read_text())
    client = MlflowClient(settings.mlflow_tracking_uri)
    exp = client.get_experiment_by_name(sc.model_name)
    runs = client.search_runs([exp.experiment_id], f"tags.`offline_eval.ab_experiment` = '{sc.experiment_id}'")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["offline_eval.control_version"] == "v1"
    assert run.data.tags["offline_eval.treatment_version"] == "v2"
    row = next(r for r in readout["metrics"] if r["metric"] == "ctr")
    assert run.data.metrics["ctr/treatment/rel_lift"] == pytest.approx(row["rel_lift"], rel=1e-12)
    assert len(client.get_metric_history(run.info.run_id, "ctr/treatment/rel_lift")) == 1
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "ab_readout")}
    assert "ab_readout/readout.html" in artifacts
