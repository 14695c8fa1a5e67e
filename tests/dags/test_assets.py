"""The DAGs' assets: what each task reads and emits, what the readout and weekly DAGs are
scheduled on, how a run finds its day; and, with real Airflow (SQLite, `dag.test`, the engine
left out), that a day the gate rejects emits no asset event and queues no readout while an
accepted day does."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
DB = os.environ.get("OFFLINE_EVAL_DATABASE", "offline_eval")


def uri(table: str) -> str:
    return f"hive://{DB}/{table}"


VALIDATED = f"offline-eval://{DB}/inputs_validated"
INPUTS = [uri(t) for t in ("impressions", "clicks", "add_to_cart", "orders", "users", "items", "sessions",
                           "requests")]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag


def _uris(assets) -> list[str]:
    return sorted(a.uri for a in assets)


def test_every_task_declares_what_it_reads_and_writes(dagbag):
    expected = {
        ("offline_eval_daily", "validate"): (INPUTS, [VALIDATED]),
        ("offline_eval_daily", "compute"): ([VALIDATED], [uri("metrics_daily"), uri("profiles_daily"),
                                                          uri("samples_daily")]),
        ("offline_eval_daily", "baselines"): ([uri("profiles_daily")], [uri("baselines")]),
        ("offline_eval_daily", "drift"): ([uri("baselines"), uri("profiles_daily")],
                                          [uri("alerts_daily"), uri("concept_drift_daily"), uri("drift_daily")]),
        ("offline_eval_daily", "publish"): ([], []),
        ("offline_eval_daily", "notify"): ([], []),
        ("offline_eval_daily", "watcher"): ([], []),
        ("offline_eval_ab_readout", "readout"): ([uri("add_to_cart"), uri("clicks"), uri("impressions"),
                                                  uri("metrics_daily"), uri("orders")], []),
        ("offline_eval_ab_readout", "log_to_mlflow"): ([], []),
        ("offline_eval_baseline_weekly", "build"): ([uri("profiles_daily")], [uri("baselines")]),
        ("offline_eval_baseline_weekly", "evaluate_week"): ([uri("baselines"), uri("metrics_daily")],
                                                            [uri("metrics_weekly")]),
    }
    got = {(d.dag_id, t.task_id): (_uris(t.inlets), _uris(t.outlets)) for d in dagbag.dags.values() for t in d.tasks}
    assert got == {k: (sorted(i), sorted(o)) for k, (i, o) in expected.items()}
    names = {a.uri: a.name for d in dagbag.dags.values() for t in d.tasks for a in [*t.inlets, *t.outlets]}
    assert names[uri("metrics_daily")] == f"{DB}.metrics_daily" and names[VALIDATED] == f"{DB}.inputs_validated"


def test_the_inputs_are_the_contracts_input_tables():
    from offline_eval_airflow.assets import input_assets

    from offline_eval.contract import INPUT_TABLES

    assert len(INPUT_TABLES) == 8
    assert _uris(input_assets()) == sorted(INPUTS)


def test_the_asset_names_follow_the_configured_database():
    from offline_eval_airflow.assets import DATABASE, table_asset

    from offline_eval.config import Settings

    assert DATABASE == Settings.from_env().database
    asset = table_asset("metrics_daily", "offline_eval_e2e")
    assert (asset.name, asset.uri) == ("offline_eval_e2e.metrics_daily", "hive://offline_eval_e2e/metrics_daily")


def test_schedules(dagbag):
    from airflow.sdk import Asset, PartitionedAssetTimetable
    from airflow.sdk.definitions.partition_mappers.base import RollupMapper
    from airflow.sdk.definitions.partition_mappers.identity import IdentityMapper

    daily = dagbag.dags["offline_eval_daily"].timetable
    assert type(daily).__name__ == "CronDataIntervalTimetable" and daily.expression == "0 0 * * *"

    readout = dagbag.dags["offline_eval_ab_readout"].timetable
    assert isinstance(readout, PartitionedAssetTimetable)
    assert isinstance(readout.asset_condition, Asset) and readout.asset_condition.uri == uri("metrics_daily")
    assert isinstance(readout.default_partition_mapper, IdentityMapper) and readout.partition_mapper_config == {}

    weekly = dagbag.dags["offline_eval_baseline_weekly"].timetable
    assert isinstance(weekly, PartitionedAssetTimetable)
    assert isinstance(weekly.asset_condition, Asset) and weekly.asset_condition.uri == uri("metrics_daily")
    assert isinstance(weekly.default_partition_mapper, RollupMapper)


def test_the_weekly_schedule_waits_for_the_seven_days_of_its_iso_week(dagbag):
    """What the scheduler does with the weekly DAG's mapper (the serialized DAG, decoded as the
    scheduler decodes it): each evaluated day maps to its week's Monday, and the week's run waits
    for exactly the seven days Monday..Sunday."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dagbag.dags["offline_eval_baseline_weekly"]))
    mapper = dag.timetable.get_partition_mapper(name=f"{DB}.metrics_daily", uri=uri("metrics_daily"))
    # 2026-06-08 is a Monday, 2026-06-14 a Sunday
    assert {mapper.to_downstream(f"2026-06-{d:02d}") for d in range(8, 15)} == {"2026-06-08"}
    assert mapper.to_downstream("2026-06-15") == "2026-06-15"
    assert sorted(mapper.to_upstream("2026-06-08")) == [f"2026-06-{d:02d}" for d in range(8, 15)]
    readout = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dagbag.dags["offline_eval_ab_readout"]))
    assert readout.timetable.partitioned
    assert readout.timetable.get_partition_mapper(name=f"{DB}.metrics_daily", uri=uri("metrics_daily")) \
        .to_downstream("2026-06-21") == "2026-06-21"


def _event(ds: str | None, minute: int, partition_key: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(extra={"ds": ds} if ds else {}, partition_key=partition_key,
                           timestamp=dt.datetime(2026, 6, 22, 0, minute, tzinfo=dt.UTC))


def test_a_run_finds_its_day():
    from offline_eval_airflow.assets import METRICS_DAILY, run_day, triggering_day

    events = {METRICS_DAILY: [_event("2026-06-20", 5), _event("2026-06-21", 9), _event("2026-06-19", 1)]}
    assert triggering_day(events, METRICS_DAILY) == "2026-06-21"  # the latest event, not the latest day
    assert triggering_day({METRICS_DAILY: [_event(None, 1, partition_key="2026-06-18")]}, METRICS_DAILY) == "2026-06-18"
    assert triggering_day({}, METRICS_DAILY) is None and triggering_day(None, METRICS_DAILY) is None
    run = SimpleNamespace(partition_key="2026-06-17")
    assert run_day({"end": "2026-06-10"}, events, METRICS_DAILY, run, "2026-06-01") == "2026-06-10"
    assert run_day({"end": ""}, events, METRICS_DAILY, run, "2026-06-01") == "2026-06-21"
    assert run_day({}, {}, METRICS_DAILY, run, None) == "2026-06-17"
    assert run_day({}, {}, METRICS_DAILY, SimpleNamespace(partition_key=None), "2026-06-01") == "2026-06-01"
    with pytest.raises(ValueError, match="no day for this run"):
        run_day({}, {}, METRICS_DAILY, None, None)


def test_the_events_carry_the_day_as_partition_key_and_extra():
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from airflow.sdk.execution_time.task_runner import _serialize_outlet_events
    from offline_eval_airflow.assets import BASELINES, METRICS_DAILY, emit_day

    events = OutletEventAccessors()
    emit_day(events, [METRICS_DAILY, BASELINES], "2026-06-14", models=[["m", "v1"]])
    assert sorted(_serialize_outlet_events(events), key=lambda e: e["dest_asset_key"]["uri"]) == [
        {"dest_asset_key": {"name": f"{DB}.baselines", "uri": uri("baselines")},
         "extra": {"ds": "2026-06-14", "models": [["m", "v1"]]}, "partition_key": "2026-06-14"},
        {"dest_asset_key": {"name": f"{DB}.metrics_daily", "uri": uri("metrics_daily")},
         "extra": {"ds": "2026-06-14", "models": [["m", "v1"]]}, "partition_key": "2026-06-14"},
    ]


def test_the_readout_reads_out_the_day_of_its_triggering_event(dagbag, monkeypatch):
    from offline_eval_airflow.assets import METRICS_DAILY

    from offline_eval.jobs import ab_readout

    calls = []
    monkeypatch.setattr(ab_readout, "run", lambda end, **kw: calls.append((end, kw["experiment"], kw["correction"])))
    monkeypatch.setattr(ab_readout, "publish", lambda end, **kw: calls.append((end, kw["dag_run_id"])))
    dag = dagbag.dags["offline_eval_ab_readout"]
    events = {METRICS_DAILY: [_event("2026-06-21", 3, partition_key="2026-06-21")]}
    run = SimpleNamespace(partition_key="2026-06-21")
    dag.get_task("readout").python_callable(spark=None, ds=None, params={"correction": "bh"},
                                            triggering_asset_events=events, dag_run=run)
    dag.get_task("log_to_mlflow").python_callable(ds=None, run_id="asset_triggered__x", params={},
                                                  triggering_asset_events=events, dag_run=run)
    # the manual path: Params end wins; without it, the logical date
    dag.get_task("readout").python_callable(spark=None, ds="2026-06-18", params={"end": "2026-06-19"},
                                            triggering_asset_events={}, dag_run=None)
    dag.get_task("readout").python_callable(spark=None, ds="2026-06-18", params={}, triggering_asset_events={},
                                            dag_run=None)
    assert calls == [("2026-06-21", None, "bh"), ("2026-06-21", "asset_triggered__x"),
                     ("2026-06-19", None, "holm"), ("2026-06-18", None, "holm")]


def test_the_weekly_run_evaluates_the_week_of_its_partition_key(dagbag, monkeypatch):
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from airflow.sdk.execution_time.task_runner import _serialize_outlet_events

    from offline_eval.jobs import baselines, weekly

    calls = []
    monkeypatch.setattr(baselines, "run_windows", lambda end, windows, spark=None: calls.append((end, windows)))
    monkeypatch.setattr(weekly, "run", lambda end, spark=None, dag_run_id="": calls.append((end, dag_run_id)))
    dag = dagbag.dags["offline_eval_baseline_weekly"]
    events = OutletEventAccessors()
    # asset-triggered: no logical date, the week's Monday as partition key
    dag.get_task("build").python_callable(spark=None, ds=None, dag_run=SimpleNamespace(partition_key="2026-06-15"),
                                          outlet_events=events)
    dag.get_task("evaluate_week").python_callable(spark=None, ds=None, run_id="r",
                                                  dag_run=SimpleNamespace(partition_key="2026-06-15"),
                                                  outlet_events=events)
    # manual (airflow dags test DAG <Monday>): the logical date names the Monday
    dag.get_task("build").python_callable(spark=None, ds="2026-06-08", dag_run=SimpleNamespace(partition_key=None),
                                          outlet_events=OutletEventAccessors())
    assert calls == [("2026-06-21", (7, 28)), ("2026-06-21", "r"), ("2026-06-14", (7, 28))]
    emitted = {e["dest_asset_key"]["uri"]: (e["partition_key"], e["extra"]) for e in _serialize_outlet_events(events)}
    assert emitted == {uri("baselines"): ("2026-06-21", {"ds": "2026-06-21", "windows": [7, 28]}),
                       uri("metrics_weekly"): ("2026-06-21", {"ds": "2026-06-21"})}


# Runs the real daily DAG with `dag.test()` on a fresh SQLite metadata database, the jobs replaced
# by stubs (validate rejects REJECTED with the DataError a failed suite raises) and the engine
# session left out; prints the asset events and the readout/weekly partitions they queued.
_GATE_SCRIPT = """
import json, sys
import pendulum
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.apache.spark.operators.spark_pyspark import PySparkOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.models.asset import AssetEvent, AssetModel, AssetPartitionDagRun
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from sqlalchemy import select, update

from offline_eval.errors import DataError
from offline_eval.jobs import baselines, compute, drift, notify, publish, validate

ACCEPTED, REJECTED = sys.argv[1], sys.argv[2]

def no_engine(self):
    self.op_kwargs = {**self.op_kwargs, "spark": None}
    return PythonOperator.execute_callable(self)

def gate(day, settings=None, spark=None, tables_to_check=None):
    if day.ds == REJECTED:
        raise DataError(f"expectation suite failed: table orders, partition ds={day.ds}")
    return {"ds": day.ds, "success": True}

PySparkOperator.execute_callable = no_engine
validate.run = gate
compute.run = lambda day, settings=None, spark=None: {"ds": day.ds, "models": [["home_feed_ctr", "v1"]]}
baselines.run = drift.run = lambda day, settings=None, spark=None: {"ds": day.ds}
publish.run = lambda day, settings=None, dag_run_id="", spark=None: []
notify.run = lambda day, send, settings=None, spark=None: {}

dags = DagBag(dag_folder=sys.argv[3]).dags
daily = dags["offline_eval_daily"]
daily.test(logical_date=pendulum.parse(REJECTED))  # registers every DAG of the folder
with create_session() as session:  # consumers listen only while unpaused
    session.execute(update(DagModel).values(is_paused=False))
for ds in (REJECTED, ACCEPTED):
    daily.test(logical_date=pendulum.parse(ds))
with create_session() as session:
    runs = {str(r.logical_date)[:10]: [r.run_id, str(r.state)] for r in session.scalars(select(DagRun))}
    events = [{"uri": uri, "task": e.source_task_id, "run": e.source_run_id, "partition_key": e.partition_key,
               "extra": e.extra} for e, uri in session.execute(
                   select(AssetEvent, AssetModel.uri).join(AssetModel, AssetModel.id == AssetEvent.asset_id))]
    queued = sorted((p.target_dag_id, p.partition_key) for p in session.scalars(select(AssetPartitionDagRun)))
print("RESULT " + json.dumps({"runs": runs, "events": events, "queued": queued}))
"""


@pytest.mark.e2e
def test_a_rejected_day_emits_nothing_and_an_accepted_day_schedules_its_readout(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OFFLINE_EVAL", "MLFLOW_TRACKING"))}
    env.update(OFFLINE_EVAL_HOME=str(tmp_path / "home"), OFFLINE_EVAL_REPORTS=str(tmp_path / "reports"),
               AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False")
    script = tmp_path / "gate.py"
    script.write_text(textwrap.dedent(_GATE_SCRIPT))
    accepted, rejected = "2026-06-09", "2026-06-08"
    command = f". scripts/env.sh && airflow db migrate > /dev/null && {sys.executable} {script} {accepted} " \
              f"{rejected} {DAGS}"
    proc = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    result = json.loads(lines[-1][len("RESULT "):])

    # The gate rejected the first day: its run failed (the watcher) and emitted no event at all.
    runs = result["runs"]
    assert {ds: state for ds, (_, state) in runs.items()} == {rejected: "failed", accepted: "success"}
    assert [e for e in result["events"] if e["run"] == runs[rejected][0] or e["partition_key"] == rejected] == []
    assert {e["run"] for e in result["events"]} == {runs[accepted][0]}
    # The accepted day: one event per outlet of validate, compute, baselines and drift, keyed by the day.
    got = sorted((e["task"], e["uri"], e["partition_key"], e["extra"]["ds"]) for e in result["events"])
    assert got == sorted([("validate", VALIDATED, accepted, accepted),
                          *[("compute", uri(t), accepted, accepted)
                            for t in ("metrics_daily", "profiles_daily", "samples_daily")],
                          ("baselines", uri("baselines"), accepted, accepted),
                          *[("drift", uri(t), accepted, accepted)
                            for t in ("drift_daily", "concept_drift_daily", "alerts_daily")]])
    metrics = next(e for e in result["events"] if e["uri"] == uri("metrics_daily"))
    assert metrics["extra"] == {"ds": accepted, "models": [["home_feed_ctr", "v1"]]}
    # What the events queued: the accepted day's readout, and its week (Monday 06-08), which waits
    # for the six other days; nothing for the rejected day.
    assert sorted(map(tuple, result["queued"])) == [("offline_eval_ab_readout", accepted),
                                                    ("offline_eval_baseline_weekly", "2026-06-08")]
