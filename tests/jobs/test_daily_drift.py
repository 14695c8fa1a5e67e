"""Baselines, drift_daily, quality metrics and the Evidently report on a generated world:
every number recomputed here with numpy, scipy and sklearn from the raw Hive partitions."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from tests.conftest import SMALL_START

pytestmark = pytest.mark.spark

PREV = SMALL_START  # 2026-06-17
DS = "2026-06-18"  # the promotion day of the small world


@pytest.fixture(scope="module")
def computed(spark, settings, small_world):
    from offline_eval.config import DayConfig
    from offline_eval.jobs import compute

    return compute.run(DayConfig(ds=DS), settings)


def _table(spark, settings, table, ds):
    return spark.table(f"{settings.database}.{table}").where(f"ds = '{ds}'").toPandas()


def _psi(r, c):
    r, c = r / r.sum(), c / c.sum()
    nz = np.concatenate([r[r > 0], c[c > 0]])
    fill = 1e-4 if nz.min() > 1e-4 else nz.min() / 1e6  # Evidently's rule for empty bins
    r, c = np.where(r == 0, fill, r), np.where(c == 0, fill, c)
    return float(np.sum((c - r) * np.log(c / r)))


def test_previous_day_baseline_edges_are_quantiles_of_that_day(spark, settings, computed):
    base = spark.table(f"{settings.database}.baselines").where(f"window_days = 1 AND ds = '{PREV}'").toPandas()
    imps = _table(spark, settings, "impressions", PREV)
    for version in ("v1", "v2"):
        row = base[(base.model_version == version) & (base.kind == "numeric") & (base.name == "f_item_price")].iloc[0]
        prof = json.loads(row.payload)
        x = imps.loc[imps.model_version == version, "f_item_price"].to_numpy(float)
        assert prof["n"] == x.size and sum(prof["counts"]) == x.size
        assert prof["mean"] == pytest.approx(x.mean()) and prof["std"] == pytest.approx(x.std(ddof=1))
        for k, e in enumerate(prof["decile_edges"], 1):  # rank error of percentile_approx: 1e-4
            assert (x < e).mean() - 1e-3 <= k / 10 <= (x <= e).mean() + 1e-3


def test_drift_daily_equals_numpy_and_scipy_on_the_raw_rows(spark, settings, computed):
    drift = _table(spark, settings, "drift_daily", DS)
    base = spark.table(f"{settings.database}.baselines").where(f"window_days = 1 AND ds = '{PREV}'").toPandas()
    ref, cur = _table(spark, settings, "impressions", PREV), _table(spark, settings, "impressions", DS)
    assert set(drift.reference) == {"previous_day", "baseline_7d"} or set(drift.reference) == {"previous_day"}
    prev = drift[drift.reference == "previous_day"]
    for version in ("v1", "v2"):
        r, c = ref[ref.model_version == version], cur[cur.model_version == version]
        for column in ("f_user_tenure_days", "f_item_price", "score"):
            row = prev[(prev.model_version == version) & (prev.column == column)].iloc[0]
            prof = json.loads(base[(base.model_version == version) & (base.name == column)].iloc[0].payload)
            e = np.asarray(prof["decile_edges"])
            rb = np.bincount(np.searchsorted(e, r[column].dropna().to_numpy(float), side="left"), minlength=e.size + 1)
            cb = np.bincount(np.searchsorted(e, c[column].dropna().to_numpy(float), side="left"), minlength=e.size + 1)
            assert row.psi == pytest.approx(_psi(rb, cb), abs=1e-9)
            exact = stats.ks_2samp(r[column].dropna(), c[column].dropna()).statistic
            assert row.ks - 1e-12 <= exact <= row.ks + row.ks_error_bound + 1e-12
            assert row.n_reference == r[column].notna().sum() and row.n_current == c[column].notna().sum()
        row = prev[(prev.model_version == version) & (prev.column == "c_device")].iloc[0]
        table = np.vstack([r.c_device.value_counts().reindex(sorted(set(r.c_device) | set(c.c_device)), fill_value=0),
                           c.c_device.value_counts().reindex(sorted(set(r.c_device) | set(c.c_device)), fill_value=0)])
        assert row.chi2_p == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9, abs=1e-300)
    # the promotion brings new users: tenure drifts severely against the previous day
    tenure = prev[prev.column == "f_user_tenure_days"]
    assert (tenure.psi > 0.2).all() and set(tenure.verdict) == {"severe"}


def test_quality_metrics_equal_sklearn(spark, settings, computed):
    metrics = _table(spark, settings, "metrics_daily", DS)
    imps = _table(spark, settings, "impressions", DS)
    clicks = _table(spark, settings, "clicks", DS)[["request_id", "item_id"]].drop_duplicates().assign(y=1)
    rows = imps.merge(clicks, on=["request_id", "item_id"], how="left").fillna({"y": 0})
    for version in ("v1", "v2"):
        part = rows[rows.model_version == version]
        got = metrics[(metrics.model_version == version) & (metrics.segment == "all")].set_index("metric")
        auc_value = got.loc["auc", "value"]
        exact = roc_auc_score(part.y, part.score)
        bound = 2e-3  # scores at 6 decimals, bins of 1e-4: a few ties per bin at this size
        assert abs(auc_value - exact) < bound
        p = np.clip(part.score.to_numpy(), 1e-15, 1 - 1e-15)
        ll = -(part.y * np.log(p) + (1 - part.y) * np.log(1 - p)).mean()
        assert got.loc["logloss", "value"] == pytest.approx(ll, rel=1e-9)
        assert got.loc["calibration_ratio", "value"] == pytest.approx(part.y.sum() / part.score.sum(), rel=1e-9)
        assert 0 < got.loc["ndcg_at_10", "value"] <= 1 and 0 < got.loc["mrr", "value"] <= 1


def test_evidently_report_shows_the_same_psi_and_mlflow_has_the_drift(spark, settings, computed):
    from mlflow import MlflowClient

    from offline_eval.config import DayConfig
    from offline_eval.io.evidently_report import binned_psi
    from offline_eval.jobs import publish

    published = publish.run(DayConfig(ds=DS), settings)
    drift = _table(spark, settings, "drift_daily", DS)
    client = MlflowClient(settings.mlflow_tracking_uri)
    for p in published:
        report = json.loads((settings.reports_dir / "home_feed_ctr" / p["model_version"] / DS / "report.json").read_text())
        ev = binned_psi(report)
        mine = drift[(drift.model_version == p["model_version"]) & (drift.reference == "previous_day")
                     & (drift.type == "numeric")]
        assert set(ev) == set(mine.column)
        for row in mine.itertuples():  # the sample is the whole day here, so the numbers are equal
            assert ev[row.column] == pytest.approx(row.psi, abs=1e-9)
        logged = client.get_run(p["run_id"]).data.metrics
        assert logged["drift/previous_day/f_user_tenure_days/psi"] == pytest.approx(
            mine.set_index("column").loc["f_user_tenure_days", "psi"])
        assert "all/auc" in logged and "alerts/medium" in logged


def test_rerun_writes_identical_drift_and_baselines(spark, settings, computed):
    from offline_eval.config import DayConfig
    from offline_eval.jobs import compute

    def snapshot():
        d = _table(spark, settings, "drift_daily", DS).sort_values(["model_version", "reference", "column"])
        b = spark.table(f"{settings.database}.baselines").where(f"ds = '{PREV}'").toPandas().sort_values(
            ["model_version", "kind", "name", "variant", "segment"])
        return d.reset_index(drop=True), b.reset_index(drop=True)

    before = snapshot()
    compute.run(DayConfig(ds=DS), settings)
    after = snapshot()
    for x, y in zip(before, after):
        assert x.equals(y)
