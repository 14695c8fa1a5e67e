"""`offline-eval drift` through Spark against numpy/scipy/Evidently on the same files, and on
real data where no drift is expected (Hillstrom covariates across randomized arms)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from offline_eval.cli import main
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.spark
HILLSTROM = SHARED_DATA / "hillstrom.csv"


def _drift(tmp_path, ref, cur, *args: str) -> dict:
    out = tmp_path / "drift.json"
    assert main(["drift", "--reference", str(ref), "--current", str(cur), *args, "--out", str(out)]) == 0
    return {c["column"]: c for c in json.loads(out.read_text())["columns"]}


def _bins(x: np.ndarray, edges) -> np.ndarray:
    return (x[:, None] > np.asarray(edges)[None, :]).sum(axis=1)


def _psi(r: np.ndarray, c: np.ndarray) -> float:
    """PSI written out with Evidently's rule for empty bins."""
    out = []
    for counts in (r, c):
        p = counts / counts.sum()
        floor = p[p > 0].min()
        out.append(np.where(p == 0, floor / 1e6 if floor <= 1e-4 else 1e-4, p))
    pr, pc = out
    return float(np.sum((pc - pr) * np.log(pc / pr)))


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    rng = np.random.default_rng(618)
    n_ref, n_cur = 120_000, 100_000
    ref = pd.DataFrame({
        "stable": rng.normal(0, 1, n_ref), "shifted": rng.normal(0, 1, n_ref),
        "tiny": rng.normal(0, 1, n_ref), "tenure": rng.integers(0, 400, n_ref),
        "device": rng.choice(["ios", "android", "web"], n_ref, p=[0.4, 0.4, 0.2]),
    })
    cur = pd.DataFrame({
        "stable": rng.normal(0, 1, n_cur), "shifted": rng.normal(0.8, 1.2, n_cur),
        "tiny": rng.normal(0.02, 1, n_cur), "tenure": rng.integers(0, 400, n_cur),
        "device": rng.choice(["ios", "android", "web", "mini"], n_cur, p=[0.3, 0.3, 0.2, 0.2]),
    })
    ref.loc[::1000, "stable"] = np.nan  # missing values are counted apart
    d = tmp_path_factory.mktemp("drift")
    ref.to_parquet(d / "ref.parquet")
    cur.to_csv(d / "cur.csv", index=False)
    return d, ref, cur


def test_psi_js_chi2_ks_against_references(spark, tmp_path, frames):
    from evidently.legacy.calculations.stattests.psi import _psi as evidently_psi
    from evidently.legacy.core import ColumnType

    d, ref, cur = frames
    got = _drift(tmp_path, d / "ref.parquet", d / "cur.csv", "--categorical", "device")
    assert set(got) == {"stable", "shifted", "tiny", "tenure", "device"}
    for col in ("stable", "shifted", "tiny", "tenure"):
        g = got[col]
        r, c = ref[col].dropna().to_numpy(float), cur[col].dropna().to_numpy(float)
        edges = g["psi_edges"]
        assert 8 <= len(edges) <= 9 and g["psi_bins"] == len(edges) + 1
        rb, cb = _bins(r, edges), _bins(c, edges)
        rc, cc = np.bincount(rb, minlength=len(edges) + 1), np.bincount(cb, minlength=len(edges) + 1)
        assert g["psi"] == pytest.approx(_psi(rc, cc), abs=1e-9)
        want, _ = evidently_psi(pd.Series(rb.astype(str)), pd.Series(cb.astype(str)), ColumnType.Categorical, 0.1)
        assert g["psi"] == pytest.approx(want, abs=1e-9)
        from scipy.spatial.distance import jensenshannon
        assert g["js"] == pytest.approx(jensenshannon(rc / rc.sum(), cc / cc.sum(), base=2), abs=1e-9)
        exact = stats.ks_2samp(r, c).statistic
        assert g["ks"] - 1e-12 <= exact <= g["ks"] + g["ks_error_bound"] + 1e-12
        assert g["ks_error_bound"] < 0.005
        assert (g["n_reference"], g["n_current"]) == (len(r), len(c))
    assert got["stable"]["missing_reference"] == 120
    # device: one bin per category; chi-square of homogeneity.
    dev = got["device"]
    keys = sorted(set(ref.device) | set(cur.device))
    table = np.array([[np.sum(ref.device == k) for k in keys], [np.sum(cur.device == k) for k in keys]])
    assert dev["chi2_p"] == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, abs=1e-9)
    assert dev["psi"] == pytest.approx(_psi(table[0], table[1]), abs=1e-9)
    # Verdicts: the real shifts are severe; the tiny shift is significant on 100k rows but negligible.
    assert got["shifted"]["verdict"] == "severe" and dev["verdict"] == "severe"
    assert got["stable"]["verdict"] == "none" and got["tenure"]["verdict"] == "none"
    assert got["tiny"]["ks_p"] < 0.05 and got["tiny"]["psi"] < 0.01 and got["tiny"]["verdict"] == "none"
    assert got["shifted"]["wasserstein"] == pytest.approx(
        stats.wasserstein_distance(ref.shifted, cur.shifted) / ref.shifted.std(), rel=0.02)


@pytest.mark.skipif(not HILLSTROM.exists(), reason="needs ../shared/data/hillstrom.csv")
def test_randomized_arms_of_hillstrom_show_no_drift(spark, tmp_path):
    df = pd.read_csv(HILLSTROM)
    covariates = ["recency", "history", "mens", "womens", "zip_code", "newbie", "channel"]
    df[df.segment == "No E-Mail"][covariates].to_csv(tmp_path / "control.csv", index=False)
    df[df.segment == "Mens E-Mail"][covariates].to_parquet(tmp_path / "mens.parquet")
    got = _drift(tmp_path, tmp_path / "control.csv", tmp_path / "mens.parquet", "--categorical", "mens,womens,newbie")
    assert {c: g["verdict"] for c, g in got.items()} == dict.fromkeys(covariates, "none")
    assert max(g["psi"] for g in got.values()) < 0.01
    assert got["zip_code"]["type"] == "categorical" and got["history"]["type"] == "numeric"
    counts = df[df.segment == "No E-Mail"].channel.value_counts()
    assert got["channel"]["n_reference"] == counts.sum() == 21_306


def test_missing_column_is_a_data_error(spark, tmp_path, frames, caplog):
    d, _, _ = frames
    code = main(["drift", "--reference", str(d / "ref.parquet"), "--current", str(d / "cur.csv"),
                 "--columns", "stable,nope"])
    assert code == 3 and "columns ['nope'] not in both tables" in caplog.text
