"""Crash safety: the evaluation of a day is killed (kill -9 of its whole process tree, and of the
engine when the engine is the one writing) at several moments; after each kill, readers of
every result table and of the report folder see the previous complete day or nothing, never
a mix; the next run clears the debris; a final rerun converges to exactly the rows, MLflow runs
and metric points of the uninterrupted run.

Runs on its own engine (it kills one) and its own state dir, through the real command line
(`offline-eval run-day`, and the one command of the task being killed, as Airflow runs it),
with tiny data. The moments are reached through the failpoints of
``offline_eval.failpoints`` (the process waits there to be killed), except the kill during a
table write, which is timed from the outside: the engine's ``.spark-staging-*`` folder has
appeared in a result table.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
D1, D2 = "2026-06-17", "2026-06-18"
DB = "offline_eval_crash"
RESULT_TABLES = ("metrics_daily", "profiles_daily", "samples_daily", "drift_daily", "concept_drift_daily",
                 "alerts_daily", "baselines")
MODEL = "home_feed_ctr"


def _norm(value):
    if isinstance(value, float):
        return "nan" if math.isnan(value) else float(f"{value:.12g}")
    if isinstance(value, dict):
        return tuple(sorted((k, _norm(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v) for v in value)
    return value


class Day:
    """What a reader sees of day D2, and the commands of one state dir."""

    def __init__(self, tmp: Path) -> None:
        self.home, self.reports, self.marks = tmp / "home", tmp / "reports", tmp / "failpoints"
        self.marks.mkdir(parents=True)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("OFFLINE_EVAL", "SPARK_REMOTE", "MLFLOW_TRACKING", "AIRFLOW"))}
        self.env.update(
            OFFLINE_EVAL_HOME=str(self.home),
            OFFLINE_EVAL_REPORTS=str(self.reports),
            OFFLINE_EVAL_DATABASE=DB,
            SPARK_REMOTE=f"sc://127.0.0.1:{free_port()}",
            OFFLINE_EVAL_SPARK_MASTER="local[2]",
            OFFLINE_EVAL_ENGINE_MEMORY="2g",
            OFFLINE_EVAL_SPARK_UI_PORT="0",
            OFFLINE_EVAL_SHUFFLE_PARTITIONS="2",
            SPARK_CONF_DIR=str(ROOT / "conf" / "spark"),
            MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}",
            OFFLINE_EVAL_FAILPOINT_DIR=str(self.marks),
        )
        self.warehouse = self.home / "warehouse" / f"{DB}.db"

    def cli(self, *args: str, timeout: float = 600) -> str:
        proc = subprocess.run([sys.executable, "-m", "offline_eval.cli", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"offline-eval {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        return proc.stderr

    def start(self, command: str, failpoint: str = "") -> subprocess.Popen:
        env = {**self.env, "OFFLINE_EVAL_FAILPOINT": failpoint} if failpoint else self.env
        return subprocess.Popen([sys.executable, "-m", "offline_eval.cli", command, "--ds", D2], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def kill_at(self, command: str, failpoint: str) -> None:
        """Run the day's ``command`` (as its Airflow task would) until it waits at ``failpoint``,
        then kill -9 its whole process tree."""
        proc = self.start(command, failpoint)
        marker = self.marks / failpoint
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None, f"run-day ended ({proc.returncode}) before reaching {failpoint}"
            assert time.monotonic() < deadline, f"run-day did not reach {failpoint} in 300 s"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        marker.unlink()

    def engine_pid(self) -> int:
        return int(next((self.home / "engine").glob("spark-*.pid")).read_text().split()[0])

    def staging(self) -> list[Path]:
        return sorted(self.warehouse.glob("*/.spark-staging-*"))

    def tables(self) -> dict[str, tuple]:
        """Every result table's rows of D2 as a reader sees them: the non-hidden files of the
        partition folders (what Spark reads at the locations the metastore lists)."""
        import pyarrow.parquet as pq

        seen = {}
        for table in RESULT_TABLES:
            root = self.warehouse / table
            rows = []
            for part in sorted(root.rglob(f"ds={D2}")):
                if any(p.startswith((".", "_")) for p in part.relative_to(root).parts):
                    continue
                files = [f for f in sorted(part.iterdir()) if f.is_file() and not f.name.startswith((".", "_"))]
                for f in files:
                    rows += [_norm(r) for r in pq.read_table(f).to_pylist()]
            seen[table] = tuple(sorted(rows, key=repr))
        return seen

    def report_dirs(self) -> list[Path]:
        return sorted((self.reports / MODEL).glob(f"*/{D2}"))

    def reports_seen(self) -> dict[str, dict[str, bytes]]:
        """The report folder of each version: its files, and the content of those that do not
        record when they were made (Evidently's snapshot ids, GX's load times). The pointer to
        the MLflow run (mlflow_run.json) is added once the run is logged, so it is left out."""
        return {d.parent.name: {f: (d / f).read_bytes() for f in ("metrics.json", "drift.json", "alerts.json")
                                if (d / f).exists()}
                | {"files": sorted(p.name for p in d.iterdir() if p.name != "mlflow_run.json")}
                for d in self.report_dirs()}

    def hidden_report_debris(self) -> list[Path]:
        return sorted((self.reports / MODEL).glob(f"*/.{D2}.*"))

    def mlflow(self) -> dict[str, object]:
        """Per version: the number of live runs of D2, every metric's full history, the artifacts."""
        from mlflow import MlflowClient

        client = MlflowClient(self.env["MLFLOW_TRACKING_URI"])
        exp = client.get_experiment_by_name(MODEL)
        out = {}
        for run in client.search_runs([exp.experiment_id], f"params.ds = '{D2}'"):
            version = run.data.params["model_version"]
            history = {k: sorted((m.value, m.step, m.timestamp) for m in client.get_metric_history(run.info.run_id, k))
                       for k in run.data.metrics}
            artifacts = sorted(a.path for a in client.list_artifacts(run.info.run_id, "evidently"))
            out.setdefault(version, []).append({"history": history, "artifacts": artifacts,
                                                "status": run.info.status})
        return out

    def delete_runs(self) -> None:
        from mlflow import MlflowClient

        client = MlflowClient(self.env["MLFLOW_TRACKING_URI"])
        exp = client.get_experiment_by_name(MODEL)
        for run in client.search_runs([exp.experiment_id], f"params.ds = '{D2}'"):
            client.delete_run(run.info.run_id)


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    d = Day(tmp_path_factory.mktemp("crash"))
    d.cli("engine", "start")
    try:
        d.cli("generate", "--start", D1, "--days", "2", "--promo-date", D2, "--experiment-start", D1,
              "--impressions-per-day", "3000", "--base-users", "500", "--base-items", "200", "--force")
        yield d
    finally:
        subprocess.run([sys.executable, "-m", "offline_eval.cli", "engine", "stop"], cwd=ROOT, env=d.env,
                       capture_output=True, timeout=120)


def test_killed_runs_leave_whole_days_and_a_rerun_converges(day):
    day.cli("run-day", "--ds", D2)
    tables, reports, runs = day.tables(), day.reports_seen(), day.mlflow()
    assert tables["metrics_daily"] and tables["drift_daily"] and tables["samples_daily"]
    assert sorted(reports) == ["v1", "v2"] and all(len(r) == 1 for r in runs.values())

    def whole(now: dict[str, tuple]) -> None:
        for table, rows in now.items():
            assert rows in (tables[table], ()), f"{table} of {D2} is neither the complete day nor empty"

    # 1. The engine dies while it writes a result table (its staging folder is there).
    proc = day.start("run-day")
    deadline = time.monotonic() + 300
    while not day.staging():
        assert proc.poll() is None and time.monotonic() < deadline, "no result-table write was seen"
        time.sleep(0.001)
    os.kill(day.engine_pid(), signal.SIGKILL)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    debris = day.staging()
    assert debris, "the killed write left no staging folder: the kill came too late to test anything"
    whole(day.tables())
    day.cli("engine", "start")

    # 2. Between two table writes of compute, then of drift; the first run clears the debris.
    day.kill_at("compute", "results.between_writes")
    assert not any(p.exists() for p in debris) and not day.staging()
    whole(day.tables())
    day.kill_at("drift", "drift.between_writes")
    whole(day.tables())

    # 3. Half-way through the report: the folder readers see is the previous one, whole.
    day.kill_at("publish", "publish.report_half_written")
    assert day.reports_seen() == reports
    assert day.hidden_report_debris(), "the half-built report should be in its hidden folder"

    # 4. A first publish killed after MLflow took the metrics, before the artifacts.
    day.delete_runs()
    day.kill_at("publish", "publish.mlflow_half_logged")
    half = day.mlflow()
    assert {v: [r["artifacts"] for r in rs] for v, rs in half.items()} == {"v1": [[]]}
    assert day.reports_seen() == reports and not day.hidden_report_debris()

    # The rerun converges: the same rows, one run per version with the same metric points
    # (no duplicates) and artifacts, the same report files.
    day.cli("run-day", "--ds", D2)
    assert day.tables() == tables
    assert day.reports_seen() == reports
    final = day.mlflow()
    assert {v: [(r["history"], r["artifacts"]) for r in rs] for v, rs in final.items()} == \
        {v: [(r["history"], r["artifacts"]) for r in rs] for v, rs in runs.items()}
    assert all(r["status"] == "FINISHED" for rs in final.values() for r in rs)
    assert not day.staging() and not day.hidden_report_debris()
    assert all((d / "mlflow_run.json").exists() for d in day.report_dirs())
