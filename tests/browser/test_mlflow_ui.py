"""The MLflow UI, served by a real `mlflow server`, shows a day's run as publish logs it: the
run page with its metrics, its dataset inputs, and the version's LoggedModel."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from offline_eval.config import Settings
from offline_eval.io.mlflow_log import InputPartition, RunKey, log_day, source_tags

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server over a SQLite store holding one published day."""
    tmp = tmp_path_factory.mktemp("mlflow_ui")
    settings = Settings(home=tmp / "home", reports_dir=tmp / "reports",
                        mlflow_tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    runs = {}
    for version, ctr in (("v1", 0.052314), ("v2", 0.055682)):
        key = RunKey("home_feed_ctr", version, "2026-06-18")
        runs[version] = log_day(settings, key, metrics={"all/ctr": ctr, "all/impressions": 300120.0},
                                params={"ds": key.ds, "model_version": version, "cadence": "daily"},
                                tags=source_tags("offline_eval.jobs.publish"), artifacts={},
                                inputs=[InputPartition("offline_eval.impressions", key.ds, 300120)])
    port = _free_port()
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", settings.mlflow_tracking_uri,
         "--default-artifact-root", (tmp / "artifacts").as_uri(), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_TRACKING_URI": ""},
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {(tmp / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield url, runs
    os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


# The UI asks whether the server runs MLflow's basic-auth app; a server without it answers 404,
# which Chromium logs as a console error although the page is whole.
EXPECTED_404 = ("/ajax-api/2.0/mlflow/users/current",)


def _unexpected(page) -> list[str]:
    failed = [r for r in page.failed_requests if not r.endswith(EXPECTED_404)]
    errors = [e for e in page.errors if not (e.endswith("(Not Found)") and not failed)]
    return errors + failed


def test_run_page_shows_the_days_metrics_and_inputs(mlflow_server, page):
    url, runs = mlflow_server
    run = runs["v2"]
    page.page.goto(f"{url}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}")
    page.page.get_by_text("v2 2026-06-18 daily").first.wait_for(timeout=60_000)
    page.page.get_by_text("all/ctr").first.wait_for(timeout=30_000)
    text = page.page.inner_text("body")
    assert "0.055682" in text  # the value publish logged, as the UI prints it
    assert "offline_eval.impressions" in text  # the day's input partition as a dataset
    page.screenshot("mlflow_run")
    assert _unexpected(page) == []


def test_logged_model_page_lists_the_versions_evaluations(mlflow_server, page):
    url, runs = mlflow_server
    run = runs["v2"]
    page.page.goto(f"{url}/#/experiments/{run['experiment_id']}/models/{run['model_id']}")
    page.page.get_by_text("home_feed_ctr-v2").first.wait_for(timeout=60_000)
    page.page.get_by_text("all/ctr").first.wait_for(timeout=30_000)
    assert "0.055682" in page.page.inner_text("body")
    page.screenshot("mlflow_logged_model")
    assert _unexpected(page) == []
