"""Shared fixtures. One Hive-enabled local SparkSession per test process, with its warehouse,
Derby metastore and reports in a temporary directory (never the developer's .local/)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


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
        spark_master="local[2]",
        shuffle_partitions=2,
        # C1 only starts fastest; its default 48 MB code cache can fill in a long session, which
        # kills the JVM ("Out of space in CodeCache for adapters"), so give it room.
        driver_java_opts="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=256m",
        mlflow_tracking_uri=f"sqlite:///{state_dir / 'mlflow.db'}",
    )


@pytest.fixture(scope="session")
def spark(settings):
    from offline_eval.io.spark import get_spark

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_CONF_DIR", str(ROOT / "conf" / "spark"))
    session = get_spark("offline-eval-tests", settings)
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
