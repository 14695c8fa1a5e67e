"""The pages people open, in headless Chromium, served as the Airflow plugin serves them (its
reports app, with its sandboxing headers): they render without console errors and show the
numbers they were built from."""
from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from offline_eval.config import Settings
from offline_eval.io.paths import ab_report_dir, write_text_atomic
from offline_eval.reporting.ab import to_html

pytestmark = pytest.mark.browser


def _readout() -> dict:
    def row(metric, **kw):
        return {"metric": metric, "variant": "treatment", "control": "control", "n_control": 44252,
                "n_variant": 44407, "variance_reduction": None, "guardrail": False, "mde": 0.0021, **kw}

    return {"srm": {"chi2": 0.27, "p_value": 0.6027, "counts": {"control": 44252, "treatment": 44407},
                    "expected": {}, "flag": False},
            "alpha": 0.05, "correction": "holm", "metrics": [
                row("ctr", kind="ratio", mean_control=0.0631, mean_variant=0.06716, abs_diff=0.00406,
                    ci_low=0.00295, ci_high=0.00518, rel_lift=0.0644, rel_ci_low=0.0467, rel_ci_high=0.0821,
                    p_value=1e-10, p_value_adjusted=3e-10, significant=True, method="delta method"),
                row("gmv_per_user", kind="mean", mean_control=31.2, mean_variant=34.19, abs_diff=2.99, ci_low=1.2,
                    ci_high=4.8, rel_lift=0.0959, rel_ci_low=0.038, rel_ci_high=0.154, p_value=0.0011,
                    p_value_adjusted=0.0022, significant=True, method="CUPED Welch t")]}


@pytest.fixture()
def reports(tmp_path):
    """A reports folder and the plugin's reports app serving it over HTTP (uvicorn)."""
    import uvicorn
    from offline_eval_airflow.reports_app import create_app

    settings = Settings(home=tmp_path / "home", reports_dir=tmp_path / "reports")
    settings.reports_dir.mkdir(parents=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, open_access=True), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the reports app did not start"
        time.sleep(0.05)
    yield settings, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_ab_readout_page(reports, page):
    settings, url = reports
    folder = ab_report_dir(settings, "exp_home_feed_v2", "2026-06-21")
    folder.mkdir(parents=True)
    write_text_atomic(folder / "readout.html", to_html(_readout(), title="A/B readout exp_home_feed_v2"))
    response = page.page.goto(f"{url}/reports/ab/exp_home_feed_v2/2026-06-21/readout.html")
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"].startswith("sandbox")
    body = page.page.inner_text("body")
    assert "Sample ratio OK: p = 0.6027" in body
    assert "+6.44% [+4.67%, +8.21%]" in body and "+9.59% [+3.80%, +15.40%]" in body
    # The plot is drawn: one marker per metric, labelled with its lift.
    svg = page.page.locator("svg").first
    assert svg.bounding_box()["width"] > 300
    labels = svg.text_content()
    assert "+6.4%" in labels and "+9.6%" in labels
    page.screenshot("ab_readout")
    assert page.errors == [], page.failed_requests


def test_day_page_links_what_the_day_published(reports, page):
    settings, url = reports
    folder = ab_report_dir(settings, "exp_home_feed_v2", "2026-06-21")
    folder.mkdir(parents=True)
    write_text_atomic(folder / "readout.html", to_html(_readout(), title="A/B readout exp_home_feed_v2"))
    page.page.goto(f"{url}/day/2026-06-21")
    page.page.get_by_role("link", name="readout.html").click()
    page.page.wait_for_load_state()
    assert page.page.url.endswith("/reports/ab/exp_home_feed_v2/2026-06-21/readout.html")
    assert "+6.44%" in page.page.inner_text("body")
    assert page.errors == [], page.failed_requests


def test_daily_evidently_report(reports, page):
    """The day's report with the shared viewer, as publish writes it: the headline numbers, and
    Evidently's widgets drawn by the viewer from reports/_assets (sandboxed like every report)."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from offline_eval.io.evidently_report import LABEL, build_report
    from offline_eval.io.paths import day_report_dir, report_assets_dir
    from offline_eval.reporting.day import DayHeadline

    settings, url = reports

    def sample(seed: int, shift: float) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        n = 2_000
        df = pd.DataFrame({"f_user_tenure_days": rng.exponential(100 * shift, n), "score": rng.uniform(0, 1, n),
                           "c_device": rng.choice(["ios", "android", "web"], n)})
        df[LABEL] = (rng.uniform(0, 1, n) < df["score"] * 0.2).astype(int)
        return df

    current, reference = sample(1, 0.5), sample(2, 1.0)
    edges = [float(x) for x in np.quantile(reference["f_user_tenure_days"], np.linspace(0.1, 0.9, 9))]

    def metric(name: str, value: float) -> dict:
        return {"variant": "all", "segment": "all", "metric": name, "value": value}

    headline = DayHeadline(
        metrics=[metric("ctr", 0.0523), metric("cvr", 0.0311), metric("auc", 0.7312)],
        lifts=[{"variant": "all", "metric": "ctr", "reference": "previous_day", "reference_label": "2026-06-17",
                "value": 0.0523, "reference_value": 0.0793, "rel_lift": -0.3405, "rel_ci_low": -0.37,
                "rel_ci_high": -0.31, "p_value": 1e-9, "method": "delta"}],
        drift=[{"column": "f_user_tenure_days", "reference": "previous_day", "psi": 0.36, "verdict": "severe",
                "type": "numeric"}])
    out = day_report_dir(settings, "home_feed_ctr", "v1", "2026-06-18")
    build_report(current, reference, out, "home_feed_ctr v1 2026-06-18 vs 2026-06-17",
                 {"f_user_tenure_days": edges}, ds="2026-06-18", headline=headline,
                 assets_dir=report_assets_dir(settings))
    response = page.page.goto(f"{url}/reports/home_feed_ctr/v1/2026-06-18/report.html")
    assert response is not None and response.status == 200
    body = page.page.locator("body")
    assert "5.23%" in body.inner_text() and "7.93%" in body.inner_text()
    # The viewer (a relative <script src>) loaded and drew the sample's ROC AUC.
    page.page.get_by_text("RocAuc", exact=False).first.wait_for(timeout=30_000)
    assert page.page.locator("#viewer-missing").is_hidden()
    auc = f"{roc_auc_score(current[LABEL], current['score']):.3f}"
    page.page.get_by_text(auc, exact=True).first.wait_for(timeout=10_000)
    assert "f_user_tenure_days" in body.inner_text()
    page.screenshot("daily_report")
    assert page.errors == [], page.failed_requests


@pytest.mark.spark
def test_data_docs_of_a_rejected_day(spark, settings, small_world, page, serve):
    """A day whose orders fail the gate: its Data Docs index lists the two tables' pages, and
    the failing page shows the failed check with the count of the rows put in, all from the
    shared local assets (no network)."""
    import json

    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from offline_eval.config import DayConfig
    from offline_eval.io.paths import validation_file
    from offline_eval.io.tables import Tables
    from offline_eval.io.validation import ValidationFailed
    from offline_eval.jobs import validate
    from tests.conftest import SMALL_START

    ds = "2026-09-21"
    tables = Tables(spark, settings)
    for table in ("clicks", "orders"):
        df = tables.read(table, SMALL_START).withColumn("ds", F.lit(ds))
        if table == "orders":  # three orders with a negative price: the suite wants price > 0
            df = (df.withColumn("_i", F.row_number().over(Window.orderBy("order_id")))
                  .withColumn("price", F.when(F.col("_i") <= 3, F.lit(-2.5)).otherwise(F.col("price"))).drop("_i"))
        tables.overwrite(spark.createDataFrame(df.collect(), df.schema), table, expected_ds=[ds])
    with pytest.raises(ValidationFailed):
        validate.run(DayConfig(ds=ds), settings, tables_to_check=("clicks", "orders"))
    result = json.loads(validation_file(settings, ds).read_text())
    url = serve(settings.reports_dir)

    page.page.goto(f"{url}/{result['data_docs']}")
    page.page.get_by_role("link", name=re.compile("orders")).first.wait_for(timeout=30_000)
    assert page.page.get_by_role("link", name=re.compile("clicks")).count() >= 1
    page.screenshot("data_docs_index")
    assert page.errors == [], page.failed_requests

    page.page.goto(f"{url}/{result['tables']['orders']['data_docs_page']}")
    body = page.page.locator("body")
    body.get_by_text("3 unexpected values found", exact=False).first.wait_for(timeout=30_000)
    assert "price" in body.inner_text()
    page.screenshot("data_docs_orders")
    assert page.errors == [], page.failed_requests
    assert not [r for r in page.failed_requests if not r.startswith("2")]
