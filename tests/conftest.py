"""Shared fixtures. One Spark engine (a Spark Connect server, exactly as `make demo` runs it) per
test session, with its warehouse, Derby metastore and reports in a temporary directory (never
the developer's .local/), on a free port; every test talks to it as a thin client, and so do
the Airflow tasks the end-to-end tests run."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
# Airflow puts the plugins folder on sys.path; the DAGs import their glue from there.
sys.path.insert(0, str(ROOT / "plugins"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("offline_eval_state")


@pytest.fixture(scope="session")
def settings(state_dir: Path):
    from offline_eval.config import Settings

    return Settings(
        home=state_dir / "home",
        reports_dir=state_dir / "reports",
        database="offline_eval_test",
        spark_remote=f"sc://127.0.0.1:{free_port()}",
        spark_master="local[2]",
        engine_memory="3g",
        spark_ui_port=0,
        shuffle_partitions=2,
        mlflow_tracking_uri=f"sqlite:///{state_dir / 'mlflow.db'}",
    )


@pytest.fixture(scope="session")
def engine(settings):
    """The session's Spark engine; commands run by the tests (the CLI, Airflow tasks) find it
    through SPARK_REMOTE."""
    from offline_eval.io.engine import Engine

    os.environ.setdefault("SPARK_CONF_DIR", str(ROOT / "conf" / "spark"))
    eng = Engine(settings)
    eng.start()
    saved = {k: os.environ.get(k) for k in ("SPARK_REMOTE", "OFFLINE_EVAL_HOME", "OFFLINE_EVAL_REPORTS")}
    os.environ.update(SPARK_REMOTE=settings.spark_remote, OFFLINE_EVAL_HOME=str(settings.home),
                      OFFLINE_EVAL_REPORTS=str(settings.reports_dir))
    yield eng
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    eng.stop()


@pytest.fixture(scope="session")
def spark(engine, settings):
    from offline_eval.io.spark import get_spark

    session = get_spark(settings, tag="offline-eval-tests")
    yield session
    session.stop()


SMALL_START = "2026-06-17"


@pytest.fixture(scope="session")
def small_world(spark, settings):
    """Two days of the scenario at a tiny scale, written to the test database."""
    from offline_eval.generator import Scenario
    from offline_eval.jobs import generate

    scenario = Scenario(
        start=SMALL_START, days=2, impressions_per_day=2_000, base_users=500, signups_per_day=50,
        promo_signups_per_day=100, base_items=200, new_items_per_day=20, promo_day=1,
    )
    generate.run(scenario, settings, force=True)
    return scenario
