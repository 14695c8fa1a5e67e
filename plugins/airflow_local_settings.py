"""Airflow local settings of the offline-eval deployment, imported by every Airflow process
(the plugins folder is on Airflow's sys.path; Airflow looks this module up by name).

In the scheduler only, it preloads the libraries the pipeline's tasks import: the Spark Connect
client, pandas and pyarrow, Great Expectations, Evidently, MLflow, scipy. With the
LocalExecutor every task process is forked from the scheduler's workers, so each task starts
with them loaded instead of importing them again (about 10 s of CPU per evaluated day: GX and
Evidently take about 4 s each). Nothing here opens a connection or starts a thread, so the
forks stay safe. OFFLINE_EVAL_PRELOAD=0 turns it off.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

PRELOAD = ("pandas", "pyarrow", "scipy.stats", "pyspark.sql.connect.session", "great_expectations", "evidently",
           "evidently.presets", "mlflow", "offline_eval.io.gx", "offline_eval.io.evidently_report")


def _preload() -> None:
    if os.environ.get("OFFLINE_EVAL_PRELOAD", "1") == "0" or sys.argv[1:2] != ["scheduler"]:
        return
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a missing optional library only costs speed
            logging.getLogger(__name__).warning("could not preload %s: %s", name, exc)


_preload()
