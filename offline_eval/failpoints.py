"""Named points where a crash test stops a command so that it can be killed there.

The crash-safety test (tests/e2e/test_crash_safety.py) needs a process to be at a precise
moment (between two table writes, half-way through a report, after MLflow has some of the
day's metrics) when it sends ``kill -9`` to the whole process tree. With
``OFFLINE_EVAL_FAILPOINT=<name>[,<name>...]`` set, a command that reaches one of those names
writes ``$OFFLINE_EVAL_FAILPOINT_DIR/<name>`` (its PID) and waits there to be killed.

Unset, as in every real run, ``reach`` is one environment lookup. The names are listed here so
that a test cannot ask for a point the code no longer has.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

POINTS = {
    "results.between_writes": "compute: metrics_daily written, profiles_daily and samples_daily not yet",
    "drift.between_writes": "drift: drift_daily written, concept_drift_daily and alerts_daily not yet",
    "publish.report_half_written": "publish: the report's HTML built in its hidden folder, not yet swapped in",
    "publish.mlflow_half_logged": "publish: the run's metrics logged to MLflow, its artifacts not yet",
}


def reach(name: str) -> None:
    """Stop here for good if a crash test asked for ``name``."""
    wanted = os.environ.get("OFFLINE_EVAL_FAILPOINT")
    if not wanted:
        return
    if name not in POINTS:
        raise KeyError(f"unknown failpoint {name!r}")
    if name not in wanted.split(","):
        return
    marker = Path(os.environ.get("OFFLINE_EVAL_FAILPOINT_DIR", ".")) / name
    marker.write_text(str(os.getpid()))
    while True:  # until the test's kill -9
        time.sleep(3600)
