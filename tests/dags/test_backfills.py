"""An interrupted backfill does not block the next one: with real Airflow (SQLite metadata,
no scheduler, as after Ctrl-C in `make demo`), a backfill left open makes `airflow backfill
create` fail with AlreadyRunningBackfill; `scripts/backfills.py close-unfinished` (what
scripts/backfill.sh runs when no scheduler is up) closes it, fails its unfinished runs and
says so; the next backfill is created."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DAG = "offline_eval_daily"


def _sh(env: dict, command: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-c", f". scripts/env.sh && {command}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{command} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OFFLINE_EVAL", "MLFLOW_TRACKING"))}
    env.update(OFFLINE_EVAL_HOME=str(tmp_path / "home"), OFFLINE_EVAL_REPORTS=str(tmp_path / "reports"))
    return env


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    """An Airflow home with its database migrated and the DAGs serialized, copied by each test."""
    base = tmp_path_factory.mktemp("airflow-db")
    _sh(_env(base), "airflow db migrate > /dev/null && airflow dags reserialize > /dev/null")
    return base / "home" / "airflow"


def _home_from(migrated: Path, tmp_path: Path) -> dict:
    shutil.copytree(migrated, tmp_path / "home" / "airflow", ignore=shutil.ignore_patterns("logs"))
    return _env(tmp_path)


def _runs(env: dict) -> list[tuple[str, str, str]]:
    """(day, state, run type) of each run of the daily DAG."""
    runs = [line.split() for line in _sh(env, f"airflow dags list-runs {DAG} -o plain").stdout.splitlines()
            if line.strip().startswith(DAG)]
    # columns: dag id, run id, state, run after, logical date (the day evaluated: ds)
    return sorted((r[4][:10], r[2], r[1].split("__")[0]) for r in runs)


def test_an_interrupted_backfill_is_closed_and_the_next_one_starts(tmp_path, migrated):
    env = _home_from(migrated, tmp_path)
    create = f"airflow backfill create --dag-id {DAG} --from-date 2026-06-08 --to-date 2026-06-10 " \
             "--reprocess-behavior completed"
    _sh(env, create)  # ... and the scheduler that would run it is gone (Ctrl-C)
    blocked = _sh(env, create, check=False)
    assert blocked.returncode != 0 and "AlreadyRunningBackfill" in blocked.stdout + blocked.stderr

    closed = _sh(env, f"python scripts/backfills.py close-unfinished --dag-id {DAG}")
    assert f"closed backfill 1 of {DAG} (2026-06-08..2026-06-10" in closed.stdout
    assert "3 unfinished run(s) marked failed, to be reprocessed" in closed.stdout

    _sh(env, create)  # the next backfill is accepted, and takes the three failed days again
    assert _runs(env) == [(f"2026-06-{d:02d}", "queued", "backfill") for d in (8, 9, 10)]


# On `backfill create`, the first call runs the real command (the backfill and its runs are
# committed), then fails as SQLite does when another component's write takes the lock first;
# every call is counted.
LOCKED_ONCE = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
if [ "$1 $2" = "backfill create" ] && [ ! -f "$CALLS.locked" ]; then
  touch "$CALLS.locked"
  "$REAL_AIRFLOW" "$@" || exit $?
  echo "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked" >&2
  exit 1
fi
exec "$REAL_AIRFLOW" "$@"
"""


def test_backfill_create_tries_again_when_sqlite_is_locked(tmp_path, migrated):
    """airflow_stack.sh's backfill_create: a "database is locked" failure (a scheduler writing
    meanwhile, in make demo) closes what the failed attempt left and creates the backfill again;
    any other failure (here: a backfill already open) is reported at once, not tried again."""
    env = _home_from(migrated, tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "airflow").write_text(LOCKED_ONCE)
    (bin_dir / "airflow").chmod(0o755)
    calls = tmp_path / "calls"
    env.update(REAL_AIRFLOW=str(Path(sys.executable).parent / "airflow"), CALLS=str(calls))
    # After scripts/env.sh (which puts the virtualenv first on PATH), so that the wrapper is found.
    create = f'export PATH="{bin_dir}:$PATH" && . scripts/airflow_stack.sh && ' \
             f"backfill_create {DAG} 2026-06-08 2026-06-10 completed"

    out = _sh(env, create).stdout
    assert "database was locked by another component's write (attempt 1 of 5): trying again" in out
    assert f"closed backfill 1 of {DAG} (2026-06-08..2026-06-10" in out
    assert "left by a failed backfill create; 3 unfinished run(s) marked failed" in out
    assert [c.split()[:2] for c in calls.read_text().splitlines()] == [["backfill", "create"]] * 2
    assert _runs(env) == [(f"2026-06-{d:02d}", "queued", "backfill") for d in (8, 9, 10)]
    with sqlite3.connect(tmp_path / "home" / "airflow" / "airflow.db") as db:
        assert db.execute("SELECT id, completed_at IS NULL FROM backfill ORDER BY id").fetchall() == [(1, 0), (2, 1)]

    again = _sh(env, create, check=False)
    assert again.returncode == 1
    assert "error: airflow backfill create failed" in again.stdout and "AlreadyRunningBackfill" in again.stdout
    assert "trying again" not in again.stdout
    assert len(calls.read_text().splitlines()) == 3


def test_a_backfill_schedules_no_run_after_its_last_day(tmp_path):
    """scripts/backfill.sh unpauses the DAG while it runs; the scheduler would then also start the
    run of the latest interval (yesterday), which has no partitions and fails. With the backfill's
    `schedule_until END` the serialized DAG has no next scheduled run, so the scheduler (which
    creates runs only for a DAG whose next run is due) starts none; without it, it has one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OFFLINE_EVAL", "MLFLOW_TRACKING"))}
    env.update(OFFLINE_EVAL_HOME=str(tmp_path / "home"), OFFLINE_EVAL_REPORTS=str(tmp_path / "reports"))
    next_run = ("python -c \"from airflow.models import DagModel; from airflow.utils.session import create_session\n"
                f"with create_session() as s: print('NEXT', s.get(DagModel, '{DAG}').next_dagrun_create_after)\"")

    def reserialized(prefix: str) -> str:
        out = _sh(env, f"{prefix}airflow dags reserialize > /dev/null && {next_run}").stdout
        return next(line for line in out.splitlines() if line.startswith("NEXT ")).removeprefix("NEXT ")

    _sh(env, "airflow db migrate > /dev/null")
    # Without it (the DAG as any scheduler parses it): the latest interval's run is due.
    assert reserialized("") != "None"
    assert reserialized(". scripts/airflow_stack.sh && schedule_until 2026-06-10 && ") == "None"
    # A day the caller exported wins (make demo exports its own last day).
    assert reserialized(". scripts/airflow_stack.sh && export OFFLINE_EVAL_DAILY_END_DATE=2026-06-10 && "
                        "schedule_until 2099-01-01 && ") == "None"
