"""The benchmarks' own Spark engine: its own state dir and port, whatever else runs here."""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def private_engine(home: Path, port: int, memory: str, ui_port: int = 0) -> Iterator[float]:
    """Start an engine under ``home`` on ``port`` (SPARK_REMOTE of this process and the steps it
    starts), yield its start-up time in seconds, stop it at the end. ``ui_port`` 0: no Spark UI."""
    from offline_eval.config import Settings
    from offline_eval.io.engine import Engine

    os.environ.update(OFFLINE_EVAL_HOME=str(home), SPARK_REMOTE=f"sc://127.0.0.1:{port}",
                      OFFLINE_EVAL_ENGINE_MEMORY=memory, OFFLINE_EVAL_SPARK_UI_PORT=str(ui_port))
    engine = Engine(Settings.from_env())
    engine.stop()
    t0 = time.monotonic()
    engine.start()
    try:
        yield time.monotonic() - t0
    finally:
        engine.stop()
