"""The day's profile, the references merged from profiles, drift_daily, quality metrics and the
Evidently report on a generated world: every number recomputed here with numpy, scipy and
sklearn from the raw Hive partitions."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from offline_eval.stats import grid
from tests.conftest import SMALL_START

pytestmark = pytest.mark.spark

PREV = SMALL_START  # 2026-06-17
DS = "2026-06-18"  # the promotion day of the small world


@pytest.fixture(scope="module")
def evaluated(spark, settings, small_world):
    """validate -> compute -> baselines -> drift of DS, as the daily DAG runs them."""
    from offline_eval.config import DayConfig
    from offline_eval.jobs import baselines, compute, drift, validate

    day = DayConfig(ds=DS)
    validate.run(day, settings)
    compute.run(day, settings)
    refs = baselines.run(day, settings)
    drift.run(day, settings)
    return refs


def _table(spark, settings, table, ds):
    return spark.table(f"{settings.database}.{table}").where(f"ds = '{ds}'").toPandas()


def _psi(r, c):
    r, c = r / r.sum(), c / c.sum()
    nz = np.concatenate([r[r > 0], c[c > 0]])
    fill = 1e-4 if nz.min() > 1e-4 else nz.min() / 1e6  # Evidently's rule for empty bins
    r, c = np.where(r == 0, fill, r), np.where(c == 0, fill, c)
    return float(np.sum((c - r) * np.log(c / r)))


def test_the_previous_day_was_profiled_from_its_raw_partitions(spark, settings, evaluated):
    """PREV was never evaluated: the baselines task profiled it; its profile equals numpy on the rows."""
    assert evaluated["references"]["previous_day"] == {"home_feed_ctr/v1": [PREV], "home_feed_ctr/v2": [PREV]}
    prof = _table(spark, settings, "profiles_daily", PREV)
    imps = _table(spark, settings, "impressions", PREV)
    for version in ("v1", "v2"):
        row = prof[(prof.model_version == version) & (prof.kind == "numeric") & (prof.name == "f_item_price")].iloc[0]
        payload = json.loads(row.payload)
        x = imps.loc[imps.model_version == version, "f_item_price"].to_numpy(float)
        assert row.n == x.size == sum(payload["counts"])
        assert row["mean"] == pytest.approx(x.mean(), rel=1e-12) and row["std"] == pytest.approx(
            x.std(ddof=1), rel=1e-12
        )
        # each value in its grid bucket, counted exactly
        ids, n = np.unique(np.digitize(x, grid.BOUNDARIES, right=True), return_counts=True)
        assert payload["buckets"] == ids.tolist() and payload["counts"] == n.tolist()
        for k, e in enumerate(payload["decile_edges"], 1):  # the edge closes the bucket of the k-th decile
            assert (x <= e).mean() >= k / 10 > (x <= grid.lower(grid.bucket_index(np.array([e])))[0]).mean()


def test_drift_daily_equals_numpy_and_scipy_on_the_raw_rows(spark, settings, evaluated):
    drift = _table(spark, settings, "drift_daily", DS)
    ref, cur = _table(spark, settings, "impressions", PREV), _table(spark, settings, "impressions", DS)
    assert set(drift.reference) == {"previous_day"}  # the small world has no week before it
    for version in ("v1", "v2"):
        r, c = ref[ref.model_version == version], cur[cur.model_version == version]
        for column in ("f_user_tenure_days", "f_item_price", "score"):
            row = drift[(drift.model_version == version) & (drift.column == column)].iloc[0]
            e = np.asarray(row.psi_edges)
            rv, cv = r[column].dropna().to_numpy(float), c[column].dropna().to_numpy(float)
            rb = np.bincount((rv[:, None] > e[None, :]).sum(axis=1), minlength=e.size + 1)
            cb = np.bincount((cv[:, None] > e[None, :]).sum(axis=1), minlength=e.size + 1)
            assert row.psi == pytest.approx(_psi(rb, cb), abs=1e-9)
            exact = stats.ks_2samp(rv, cv).statistic
            assert row.ks - 1e-12 <= exact <= row.ks + row.ks_error_bound + 1e-12
            assert row.n_reference == rv.size and row.n_current == cv.size
        row = drift[(drift.model_version == version) & (drift.column == "c_device")].iloc[0]
        keys = sorted(set(r.c_device) | set(c.c_device))
        table = np.vstack([r.c_device.value_counts().reindex(keys, fill_value=0),
                           c.c_device.value_counts().reindex(keys, fill_value=0)])
        assert row.chi2_p == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9, abs=1e-300)
    # the promotion brings new users: tenure drifts severely against the previous day
    tenure = drift[drift.column == "f_user_tenure_days"]
    assert (tenure.psi > 0.2).all() and set(tenure.verdict) == {"severe"}


def test_quality_metrics_equal_sklearn(spark, settings, evaluated):
    metrics = _table(spark, settings, "metrics_daily", DS)
    imps = _table(spark, settings, "impressions", DS)
    clicks = _table(spark, settings, "clicks", DS)[["request_id", "item_id"]].drop_duplicates().assign(y=1)
    rows = imps.merge(clicks, on=["request_id", "item_id"], how="left").fillna({"y": 0})
    for version in ("v1", "v2"):
        part = rows[rows.model_version == version]
        got = metrics[(metrics.model_version == version) & (metrics.segment == "all")].set_index("metric")
        exact = roc_auc_score(part.y, part.score)
        bound = 2e-3  # scores at 6 decimals, bins of 1e-4: a few ties per bin at this size
        assert abs(got.loc["auc", "value"] - exact) < bound
        p = np.clip(part.score.to_numpy(), 1e-15, 1 - 1e-15)
        ll = -(part.y * np.log(p) + (1 - part.y) * np.log(1 - p)).mean()
        assert got.loc["logloss", "value"] == pytest.approx(ll, rel=1e-9)
        assert got.loc["calibration_ratio", "value"] == pytest.approx(part.y.sum() / part.score.sum(), rel=1e-9)
        assert 0 < got.loc["ndcg_at_10", "value"] <= 1 and 0 < got.loc["mrr", "value"] <= 1


def test_evidently_report_shows_the_same_psi_and_mlflow_has_the_drift(spark, settings, evaluated):
    from mlflow import MlflowClient

    from offline_eval.config import DayConfig
    from offline_eval.io.evidently_report import binned_psi
    from offline_eval.jobs import publish

    published = publish.run(DayConfig(ds=DS), settings)
    drift = _table(spark, settings, "drift_daily", DS)
    client = MlflowClient(settings.mlflow_tracking_uri)
    for p in published:
        report = json.loads(
            (settings.reports_dir / "home_feed_ctr" / p["model_version"] / DS / "report.json").read_text()
        )
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


def test_rerun_writes_identical_tables(spark, settings, evaluated):
    from offline_eval.config import DayConfig
    from offline_eval.jobs import baselines, compute, drift, validate

    keys = {"metrics_daily": ["model_version", "variant", "segment", "metric"],
            "profiles_daily": ["model_version", "kind", "name", "variant", "segment"],
            "drift_daily": ["model_version", "reference", "column"],
            "alerts_daily": ["alert_id"], "concept_drift_daily": ["model_version", "reference", "segment"]}

    def snapshot():
        return {t: _table(spark, settings, t, DS).sort_values(k).reset_index(drop=True) for t, k in keys.items()}

    before = snapshot()
    day = DayConfig(ds=DS)
    validate.run(day, settings)
    compute.run(day, settings)
    baselines.run(day, settings)
    drift.run(day, settings)
    after = snapshot()
    for t in keys:
        assert len(before[t]) > 0 and before[t].equals(after[t]), t
