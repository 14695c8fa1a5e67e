"""Show the progress of a DAG's runs over a date range until all of them have finished.

Reads the Airflow metadata database through Airflow's own models (one process, no CLI call
per poll). Exit code 0 if every run succeeded, 1 if any failed, 2 on timeout.
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

    lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.timezone.utc)
    hi = dt.datetime.combine(end, dt.time(), tzinfo=dt.timezone.utc)
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dag-id", required=True)
    p.add_argument("--start", required=True)
    p.add_argument("--end", required=True)
    p.add_argument("--timeout", type=int, default=5400)
    p.add_argument("--interval", type=float, default=10.0)
    a = p.parse_args()
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
