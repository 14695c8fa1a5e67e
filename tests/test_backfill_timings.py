"""The timing line `make backfill` prints when its runs have finished (scripts/backfills.py),
on hand-made REST records: three runs of 30, 40 and 65 s, so the median is 40 s."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _backfills():
    spec = importlib.util.spec_from_file_location("backfills", ROOT / "scripts" / "backfills.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(run_id: str, start: str, end: str | None) -> dict:
    return {"dag_run_id": run_id, "start_date": f"2026-06-08T10:{start}Z", "end_date": end and f"2026-06-08T10:{end}Z"}


def _ti(run_id: str, task: str, start: str, duration: float | None, state: str = "success") -> dict:
    return {"dag_run_id": run_id, "task_id": task, "state": state, "duration": duration,
            "start_date": f"2026-06-08T10:{start}Z"}


def test_median_range_and_task_means_in_start_order():
    runs = [_run("a", "00:00", "00:30"), _run("b", "01:00", "01:40"), _run("c", "02:00", "03:05.5"),
            _run("d", "04:00", None)]  # still running: not counted
    tis = [
        # compute starts after validate in every run, so it is listed second whatever the input order
        _ti("a", "compute", "00:10", 12.0), _ti("a", "validate", "00:01", 8.0),
        _ti("b", "compute", "01:12", 15.0), _ti("b", "validate", "01:01", 10.0),
        _ti("c", "validate", "02:01", 9.0), _ti("c", "compute", "02:11", 18.0, state="failed"),  # not a success
        _ti("c", "watcher", "03:05", None, state="skipped"),
        _ti("x", "validate", "00:00", 99.0),  # a run not among the finished ones (an older run of the day)
    ]
    line = _backfills().timings(runs, tis)
    # runs: 30 s, 40 s, 65.5 s; validate (8 + 10 + 9) / 3 = 9.0; compute (12 + 15) / 2 = 13.5
    assert line == ("a run from start to end: median 40.0 s (30.0 to 65.5 s, 3 runs); "
                    "task means: validate 9.0, compute 13.5 s")


def test_nothing_to_say_without_a_finished_run():
    backfills = _backfills()
    assert backfills.timings([_run("d", "04:00", None)], []) is None
    assert backfills.timings([_run("a", "00:00", "00:30")], []) == \
        "a run from start to end: median 30.0 s (30.0 to 30.0 s, 1 run)"


class _Api:
    """Stands in for the REST API: each poll returns the next list of task instances."""

    def __init__(self, polls: list[list[dict]]) -> None:
        self.polls = polls
        self.calls = 0

    def get(self, path: str, **params: object) -> dict:
        tis = self.polls[min(self.calls, len(self.polls) - 1)]
        self.calls += 1
        return {"task_instances": tis, "total_entries": len(tis)}


def test_the_readout_waits_until_every_days_compute_has_finished():
    import datetime as dt

    backfills = _backfills()
    day1, day2 = dt.date(2026, 6, 20), dt.date(2026, 6, 21)
    polls = [
        [_ti("a", "compute", "00:10", 12.0)],  # day 2 has no compute yet
        [_ti("a", "compute", "00:10", 12.0), _ti("b", "compute", "01:10", None, state="running"),
         _ti("b", "validate", "01:01", 8.0)],  # validate's success does not count
        [_ti("a", "compute", "00:10", 12.0), _ti("b", "compute", "01:10", None, state="upstream_failed")],
    ]
    api = _Api(polls)
    # finished whatever the state (an upstream_failed compute ends the wait; readout() then declines)
    assert backfills.await_computes(api, "offline_eval_daily", day1, day2, timeout=60, interval=0) is True
    assert api.calls == 3
    # a compute that never finishes: False once the timeout has passed
    stuck = _Api([[_ti("a", "compute", "00:10", None, state="running")]])
    assert backfills.await_computes(stuck, "offline_eval_daily", day1, day1, timeout=0.05, interval=0.01) is False


def test_a_server_error_is_tried_again_and_a_client_error_is_not():
    """Api.send against a real HTTP server: a 500 (SQLite's lock in the embedded api-server) is
    tried again and the next answer returned; a 404 fails at once with its status; a 500 on every
    try fails after the last one."""
    import http.server
    import json
    import threading

    import pytest

    answers: list[tuple[int, dict]] = []
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PATCH(self):  # noqa: N802 (http.server's naming)
            seen.append(f"{self.command} {self.path} {self.rfile.read(int(self.headers['Content-Length']))!r}")
            code, body = answers.pop(0)
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = _backfills().Api(base_url=f"http://127.0.0.1:{server.server_port}", token="t")
        api.backoff_s = 0.01
        answers[:] = [(500, {"detail": "Internal Server Error"}), (200, {"is_paused": True})]
        assert api.send("PATCH", "/dags/d", {"is_paused": True}) == {"is_paused": True}
        assert seen == ["PATCH /api/v2/dags/d? b'{\"is_paused\": true}'"] * 2

        seen.clear()
        answers[:] = [(404, {"detail": "no such DAG"}), (200, {})]
        with pytest.raises(SystemExit, match="HTTP 404"):
            api.send("PATCH", "/dags/d", {"is_paused": True})
        assert len(seen) == 1

        seen.clear()
        answers[:] = [(503, {})] * 5
        with pytest.raises(SystemExit, match="HTTP 503"):
            api.send("PATCH", "/dags/d", {"is_paused": True})
        assert len(seen) == 5
    finally:
        server.shutdown()


class _BackfillApi:
    """The REST answers wait_closed reads: open backfills, then each day's latest run; a PUT
    cancel closes the backfill (the API's 409 once the scheduler has closed it is the caller's)."""

    def __init__(self, states: list[str]) -> None:
        self.states, self.calls = states, []
        self.open = [{"id": 7, "dag_id": "d", "from_date": "2026-06-08T00:00:00Z", "to_date": "2026-06-09T00:00:00Z",
                      "completed_at": None}]

    def get(self, path: str, **params: object) -> dict:
        if path == "/backfills":
            return {"backfills": self.open}
        runs = [{"logical_date": f"2026-06-{8 + i:02d}T00:00:00Z", "state": s} for i, s in enumerate(self.states)]
        return {"dag_runs": runs, "total_entries": len(runs)}

    def send(self, method: str, path: str, body: dict | None, accept: tuple[int, ...] = (), **params: object) -> dict:
        self.calls.append((method, path, accept))
        self.open = []
        return {}


def test_a_backfill_whose_runs_have_finished_is_closed_without_waiting_for_the_scheduler():
    backfills = _backfills()
    api = _BackfillApi(["success", "failed"])
    assert backfills.wait_closed(api, "d", limit_s=60) == 0
    assert api.calls == [("PUT", "/backfills/7/cancel", (409,))]
    # a run still running: nothing is cancelled (the scheduler closes it once it ends); a warning at the limit
    busy = _BackfillApi(["success", "running"])
    assert backfills.wait_closed(busy, "d", limit_s=0) == 0
    assert busy.calls == [] and busy.open
