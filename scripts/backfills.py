"""Backfills of a DAG, through Airflow's own models (one process, no CLI call per poll):

  backfills.py wait --dag-id D --start S --end E   progress of the runs over S..E until all have
      finished and the scheduler has closed the backfill; exit 0 if every run succeeded, 1 if
      any failed, 2 on timeout.
  backfills.py close-unfinished --dag-id D          before the components start: close a backfill
      left open by an interrupted `make demo` / `make backfill` (Airflow allows one open backfill
      per DAG), failing its unfinished runs, so the next backfill can reprocess them.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections import Counter

FINISHED = {"success", "failed"}


def latest_runs(dag_id: str, start: dt.date, end: dt.date) -> dict[str, str]:
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    hi = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)
    with create_session() as session:
        rows = session.execute(
            select(DagRun.logical_date, DagRun.state, DagRun.id)
            .where(DagRun.dag_id == dag_id, DagRun.logical_date >= lo, DagRun.logical_date <= hi)
            .order_by(DagRun.id)
        ).all()
    out: dict[str, str] = {}
    for logical_date, state, _ in rows:  # later runs of a day override earlier ones
        out[logical_date.date().isoformat()] = str(getattr(state, "value", state))
    return out


def open_backfills(dag_id: str) -> list:
    from airflow.models.backfill import Backfill
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(select(Backfill).where(Backfill.dag_id == dag_id,
                                                            Backfill.completed_at.is_(None))))


def close_unfinished(dag_id: str) -> int:
    """Close the open backfills of ``dag_id`` (no scheduler may be running: their runs were
    interrupted), failing their queued and running runs."""
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select, update

    with create_session() as session:
        for b in session.scalars(select(Backfill).where(Backfill.dag_id == dag_id, Backfill.completed_at.is_(None))):
            runs = select(BackfillDagRun.dag_run_id).where(BackfillDagRun.backfill_id == b.id)
            failed = session.execute(
                update(DagRun).where(DagRun.id.in_(runs), DagRun.state.in_((DagRunState.QUEUED, DagRunState.RUNNING)))
                .values(state=DagRunState.FAILED).execution_options(synchronize_session=False)).rowcount
            b.is_paused = True
            b.completed_at = timezone.utcnow()
            print(f"-> closed backfill {b.id} of {dag_id} ({b.from_date:%Y-%m-%d}..{b.to_date:%Y-%m-%d}, created "
                  f"{b.created_at:%Y-%m-%d %H:%M} UTC), left open by an interrupted run; {failed} unfinished run(s) "
                  "marked failed, to be reprocessed", flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--dag-id", required=True)
    w.add_argument("--start", required=True)
    w.add_argument("--end", required=True)
    w.add_argument("--timeout", type=int, default=5400)
    w.add_argument("--interval", type=float, default=10.0)
    c = sub.add_parser("close-unfinished")
    c.add_argument("--dag-id", required=True)
    a = p.parse_args()
    if a.command == "close-unfinished":
        return close_unfinished(a.dag_id)
    return wait(a)


def wait(a: argparse.Namespace) -> int:
    start, end = dt.date.fromisoformat(a.start), dt.date.fromisoformat(a.end)
    expected = (end - start).days + 1
    t0 = time.monotonic()
    last = ""
    while True:
        runs = latest_runs(a.dag_id, start, end)
        counts = Counter(runs.values())
        elapsed = int(time.monotonic() - t0)
        line = (
            f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {a.dag_id} {a.start}..{a.end}: "
            f"{counts.get('success', 0)}/{expected} success, {counts.get('failed', 0)} failed, "
            f"{counts.get('running', 0)} running, {counts.get('queued', 0)} queued"
        )
        if line[8:] != last[8:]:
            print(line, flush=True)
            last = line
        done = sum(counts.get(s, 0) for s in FINISHED)
        if len(runs) >= expected and done == len(runs):
            closing = time.monotonic()
            while open_backfills(a.dag_id) and time.monotonic() - closing < 60:
                time.sleep(2)  # the scheduler closes a backfill a few seconds after its last run
            failed = sorted(d for d, s in runs.items() if s == "failed")
            if failed:
                print(f"failed days: {', '.join(failed)} (task logs under $AIRFLOW_HOME/logs)")
                return 1
            print(f"all {expected} runs succeeded in {elapsed} s")
            return 0
        if elapsed > a.timeout:
            print(f"timeout after {elapsed} s: {runs}")
            return 2
        time.sleep(a.interval)


if __name__ == "__main__":
    sys.exit(main())
