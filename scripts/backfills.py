"""Backfills of a DAG:

  backfills.py wait --dag-id D --start S --end E   progress of the runs over S..E until all have
      finished and the scheduler has closed the backfill, then how long a run took (median,
      min, max from its start to its end) and each task's mean duration; exit 0 if every run
      succeeded, 1 if any failed, 2 on timeout. Through Airflow's public REST API (the api-server at
      AIRFLOW__API__BASE_URL), with the token in AIRFLOW_API_TOKEN, or, when the simple auth
      manager runs with all users admins (the embedded stack), the token it hands out.
  backfills.py wait ... --no-await-close             the same, without waiting for the scheduler to
      close the backfill (a readout follows; `wait-closed` afterwards)
  backfills.py wait-closed --dag-id D                until D has no open backfill: one whose runs have
      all finished is closed at once (the scheduler does it within 30 s)
  backfills.py pause --dag-id D                      pause D (unpause: unpause it)
  backfills.py readout --daily D --dag-id R --day X  one run of the asset-scheduled readout DAG R for
      day X, if D's compute of X succeeded: R unpaused, its run of X triggered (or cleared if it
      exists), its progress shown as `wait` does, R paused again. Through the REST API, as `wait`:
      each `airflow` CLI call it replaces cost a few seconds of imports.
  backfills.py readout ... --after-computes-from S   the same, once the compute of every day S..X has
      finished (the readout reads raw logs only: it runs beside the last day's remaining tasks)
  backfills.py await-task --dag-id D --task T --start S --end E   until task T of every day S..E has
      finished, whatever its state (exit 0; 2 on timeout): what depends on those days starts then
  backfills.py close-unfinished --dag-id D          before the components start: close a backfill
      left open by an interrupted `make demo` / `make backfill` (Airflow allows one open backfill
      per DAG), failing its unfinished runs, so the next backfill can reprocess them. No
      api-server runs at that moment, so this one goes through Airflow's models.
  backfills.py close-unfinished --dag-id D --created-since T   only the backfills created at or
      after T (ISO, UTC): what a `backfill create` that failed half-way may have left (airflow_stack.sh
      backfill_create, before it tries again)
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter

FINISHED = {"success", "failed"}


class Api:
    """The few calls of Airflow's public REST API (v2) this script needs."""

    tries = 5  # a server error (5xx) is tried again, backoff_s more seconds each time
    backoff_s = 1.0

    def __init__(self, base_url: str | None = None, token: str | None = None) -> None:
        self.base = (base_url or os.environ.get("AIRFLOW__API__BASE_URL") or "http://127.0.0.1:8080").rstrip("/")
        self.token = token or os.environ.get("AIRFLOW_API_TOKEN") or self._all_admins_token()

    def _all_admins_token(self) -> str:
        try:
            with urllib.request.urlopen(f"{self.base}/auth/token", timeout=30) as r:
                return json.load(r)["access_token"]
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"error: the api-server at {self.base} hands out no token without credentials "
                             f"({exc.code}): set AIRFLOW_API_TOKEN") from None

    def get(self, path: str, **params: object) -> dict:
        return self.send("GET", path, None, **params)

    def send(self, method: str, path: str, body: dict | None, accept: tuple[int, ...] = (), **params: object) -> dict:
        """The call's JSON answer; ``accept``: error statuses answered with {} instead of an exit."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        request = urllib.request.Request(f"{self.base}/api/v2{path}?{query}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/json"})
        for attempt in range(1, self.tries + 1):
            try:
                with urllib.request.urlopen(request, timeout=60) as r:
                    return json.load(r)
            except urllib.error.HTTPError as exc:
                body = exc.read()[:500]
                if exc.code in accept:
                    return {}
                # A 5xx of the embedded stack is mostly SQLite's "database is locked" (the api-server
                # read, then had to write while a scheduler wrote): the transaction was rolled back,
                # so the same call again is safe (pause, unpause, trigger, clear, and reads).
                if exc.code < 500 or attempt == self.tries:
                    raise SystemExit(f"error: {method} {path}: HTTP {exc.code}: {body!r}") from None
                print(f"warning: {method} {path}: HTTP {exc.code} (attempt {attempt} of {self.tries}), trying again",
                      file=sys.stderr, flush=True)
                time.sleep(self.backoff_s * attempt)
        raise AssertionError("unreachable")


def latest_run_records(api: Api, dag_id: str, start: dt.date, end: dt.date) -> dict[str, dict]:
    """{ds: run} of the latest run of each day of start..end, as the REST API gives it."""
    out: dict[str, dict] = {}
    offset = 0
    while True:
        page = api.get(f"/dags/{urllib.parse.quote(dag_id)}/dagRuns", order_by="id", limit=100, offset=offset,
                       logical_date_gte=f"{start.isoformat()}T00:00:00Z",
                       logical_date_lte=f"{end.isoformat()}T00:00:00Z")
        runs = page.get("dag_runs", [])
        for run in runs:  # later runs of a day override earlier ones
            out[run["logical_date"][:10]] = run
        offset += len(runs)
        if not runs or offset >= (page.get("total_entries") or 0):
            return out


def task_instance_records(api: Api, dag_id: str, start: dt.date, end: dt.date) -> list[dict]:
    """Every task instance of the runs of start..end (all tries' latest state), as the REST API gives it."""
    out: list[dict] = []
    while True:
        page = api.get(f"/dags/{urllib.parse.quote(dag_id)}/dagRuns/~/taskInstances", limit=100, offset=len(out),
                       logical_date_gte=f"{start.isoformat()}T00:00:00Z",
                       logical_date_lte=f"{end.isoformat()}T00:00:00Z")
        tis = page.get("task_instances", [])
        out += tis
        if not tis or len(out) >= (page.get("total_entries") or 0):
            return out


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def timings(runs: list[dict], task_instances: list[dict]) -> str | None:
    """How long the finished runs took, one line: a run from its start to its end (median, min and
    max: what a day costs, queueing between tasks included) and the mean duration of each task
    that succeeded in them, in the order the tasks start. None if no run has both ends."""
    took = sorted(t for r in runs if (t := _seconds(r.get("start_date"), r.get("end_date"))) is not None)
    if not took:
        return None
    started = {r["dag_run_id"]: r["start_date"] for r in runs if r.get("start_date")}
    durations: dict[str, list[float]] = {}
    offsets: dict[str, list[float]] = {}
    for ti in task_instances:
        if ti.get("dag_run_id") in started and ti.get("state") == "success" and ti.get("duration") is not None:
            durations.setdefault(ti["task_id"], []).append(float(ti["duration"]))
            offsets.setdefault(ti["task_id"], []).append(_seconds(started[ti["dag_run_id"]], ti["start_date"]) or 0.0)
    order = sorted(durations, key=lambda t: statistics.fmean(offsets[t]))
    means = ", ".join(f"{t} {statistics.fmean(durations[t]):.1f}" for t in order)
    line = (f"a run from start to end: median {statistics.median(took):.1f} s ({took[0]:.1f} to {took[-1]:.1f} s, "
            f"{len(took)} run{'s' if len(took) != 1 else ''})")
    return f"{line}; task means: {means} s" if means else line


def open_backfills(api: Api, dag_id: str) -> list[dict]:
    return [b for b in api.get("/backfills", dag_id=dag_id, limit=100).get("backfills", [])
            if not b.get("completed_at")]


def close_unfinished(dag_id: str, created_since: dt.datetime | None = None) -> int:
    """Close the open backfills of ``dag_id`` (no scheduler may be running: their runs were
    interrupted), failing their queued and running runs. ``created_since``: only those created
    at or after it (a failed `backfill create`'s own, whose runs are queued on a paused DAG)."""
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select, update

    since = [] if created_since is None else [Backfill.created_at >= created_since]
    reason = "left open by an interrupted run" if created_since is None else "left by a failed backfill create"
    with create_session() as session:
        for b in session.scalars(select(Backfill).where(Backfill.dag_id == dag_id, Backfill.completed_at.is_(None),
                                                        *since)):
            runs = select(BackfillDagRun.dag_run_id).where(BackfillDagRun.backfill_id == b.id)
            failed = session.execute(
                update(DagRun).where(DagRun.id.in_(runs), DagRun.state.in_((DagRunState.QUEUED, DagRunState.RUNNING)))
                .values(state=DagRunState.FAILED).execution_options(synchronize_session=False)).rowcount
            b.is_paused = True
            b.completed_at = timezone.utcnow()
            print(f"-> closed backfill {b.id} of {dag_id} ({b.from_date:%Y-%m-%d}..{b.to_date:%Y-%m-%d}, created "
                  f"{b.created_at:%Y-%m-%d %H:%M} UTC), {reason}; {failed} unfinished run(s) "
                  "marked failed, to be reprocessed", flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    polling = argparse.ArgumentParser(add_help=False)  # the progress loop's options, for wait and readout
    polling.add_argument("--dag-id", required=True)
    polling.add_argument("--interval", type=float, default=2.0)
    w = sub.add_parser("wait", parents=[polling])
    w.add_argument("--start", required=True)
    w.add_argument("--end", required=True)
    w.add_argument("--timeout", type=int, default=5400)
    w.add_argument("--no-await-close", dest="await_close", action="store_false")
    for name in ("pause", "unpause"):
        sub.add_parser(name).add_argument("--dag-id", required=True)
    wc = sub.add_parser("wait-closed")
    wc.add_argument("--dag-id", required=True)
    r = sub.add_parser("readout", parents=[polling])
    r.add_argument("--daily", required=True)
    r.add_argument("--day", required=True)
    r.add_argument("--timeout", type=int, default=1800)
    r.add_argument("--after-computes-from", metavar="START",
                   help="first wait until the compute of every day START..--day has finished")
    at = sub.add_parser("await-task", parents=[polling])
    at.add_argument("--task", required=True)
    at.add_argument("--start", required=True)
    at.add_argument("--end", required=True)
    at.add_argument("--timeout", type=int, default=5400)
    c = sub.add_parser("close-unfinished")
    c.add_argument("--dag-id", required=True)
    c.add_argument("--created-since", type=_utc, metavar="ISO", help="only backfills created at or after this time")
    a = p.parse_args()
    if a.command == "close-unfinished":
        return close_unfinished(a.dag_id, a.created_since)
    if a.command in ("pause", "unpause"):
        Api().send("PATCH", f"/dags/{urllib.parse.quote(a.dag_id)}", {"is_paused": a.command == "pause"})
        return 0
    if a.command == "wait-closed":
        return wait_closed(Api(), a.dag_id)
    if a.command == "readout":
        return readout(a)
    if a.command == "await-task":
        return 0 if await_task(Api(), a.dag_id, a.task, dt.date.fromisoformat(a.start), dt.date.fromisoformat(a.end),
                               a.timeout, a.interval) else 2
    return wait(a)


def _utc(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text)
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t


def wait_closed(api: Api, dag_id: str, limit_s: float = 60) -> int:
    """Until ``dag_id`` has no open backfill. The scheduler closes a backfill whose runs have all
    finished on a 30-second timer; a backfill found in that state is closed here at once through
    the API's cancel, which then only pauses it and sets its end (it fails queued runs: it has
    none). One with runs still queued or running is left to the scheduler, up to ``limit_s``."""
    t0 = time.monotonic()
    while True:
        still_open = [b for b in open_backfills(api, dag_id) if not _close_if_finished(api, dag_id, b)]
        if not still_open:
            return 0
        if time.monotonic() - t0 > limit_s:
            print(f"warning: the backfill of {dag_id} is still open after {limit_s:.0f} s", flush=True)
            return 0
        time.sleep(1)


def _close_if_finished(api: Api, dag_id: str, backfill: dict) -> bool:
    start, end = (dt.date.fromisoformat(backfill[k][:10]) for k in ("from_date", "to_date"))
    runs = latest_run_records(api, dag_id, start, end)
    if not runs or any(str(r["state"]) not in FINISHED for r in runs.values()):
        return False
    # 409: the scheduler closed it meanwhile.
    api.send("PUT", f"/backfills/{int(backfill['id'])}/cancel", None, accept=(409,))
    return True


TERMINAL = {"success", "failed", "upstream_failed", "skipped", "removed"}


def await_task(api: Api, dag_id: str, task_id: str, start: dt.date, end: dt.date, timeout: float,
               interval: float) -> bool:
    """Until ``task_id`` of every day of start..end has finished (whatever its state); False on timeout."""
    expected = (end - start).days + 1
    t0 = time.monotonic()
    while True:
        done = sum(1 for ti in task_instance_records(api, dag_id, start, end)
                   if ti.get("task_id") == task_id and ti.get("state") in TERMINAL)
        if done >= expected:
            return True
        if time.monotonic() - t0 > timeout:
            print(f"timeout after {timeout:.0f} s: {task_id} finished for {done} of the {expected} days of {dag_id}",
                  flush=True)
            return False
        time.sleep(interval)


def await_computes(api: Api, daily: str, start: dt.date, end: dt.date, timeout: float, interval: float) -> bool:
    """Until the compute task of every day of start..end has finished (whatever its state); False on
    timeout. Every day's, not only the last one's: once the readout DAG is unpaused, a compute
    finishing later would emit an evaluated-day event and start a readout of its own."""
    return await_task(api, daily, "compute", start, end, timeout, interval)


def readout(a: argparse.Namespace) -> int:
    """One run of the readout DAG for ``a.day``, if the daily DAG's compute of that day succeeded."""
    api = Api()
    day = dt.date.fromisoformat(a.day)
    if a.after_computes_from and not await_computes(api, a.daily, dt.date.fromisoformat(a.after_computes_from), day,
                                                    a.timeout, a.interval):
        return 2
    daily = latest_run_records(api, a.daily, day, day).get(a.day)
    computed = "no run"
    if daily is not None:
        path = (f"/dags/{urllib.parse.quote(a.daily)}/dagRuns/{urllib.parse.quote(daily['dag_run_id'], safe='')}"
                "/taskInstances/compute")
        computed = str(api.get(path).get("state"))
    if computed != "success":
        print(f"-> no A/B readout of {a.day}: its compute did not succeed ({computed})", flush=True)
        return 1
    dag = urllib.parse.quote(a.dag_id)
    api.send("PATCH", f"/dags/{dag}", {"is_paused": False})
    try:
        existing = latest_run_records(api, a.dag_id, day, day).get(a.day)
        if existing is None:
            print(f"-> trigger {a.dag_id} for {a.day}", flush=True)
            api.send("POST", f"/dags/{dag}/dagRuns", {"logical_date": f"{a.day}T00:00:00+00:00"})
        else:  # a run of that day exists (an earlier demo): run it again
            print(f"-> clear {a.dag_id} {existing['dag_run_id']} (a run of {a.day} exists: run again)", flush=True)
            api.send("POST", f"/dags/{dag}/dagRuns/{urllib.parse.quote(existing['dag_run_id'], safe='')}/clear",
                     {"dry_run": False})
        return wait(argparse.Namespace(dag_id=a.dag_id, start=a.day, end=a.day, timeout=a.timeout,
                                       interval=a.interval, await_close=False))
    finally:
        api.send("PATCH", f"/dags/{dag}", {"is_paused": True})


def wait(a: argparse.Namespace) -> int:
    start, end = dt.date.fromisoformat(a.start), dt.date.fromisoformat(a.end)
    api = Api()
    expected = (end - start).days + 1
    t0 = time.monotonic()
    last = ""
    while True:
        records = latest_run_records(api, a.dag_id, start, end)
        runs = {ds: str(run["state"]) for ds, run in records.items()}
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
            if a.await_close:
                wait_closed(api, a.dag_id)
            summary = timings(list(records.values()), task_instance_records(api, a.dag_id, start, end))
            if summary:
                print(summary, flush=True)
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
