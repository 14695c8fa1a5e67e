"""`offline-eval readout` end to end through Spark: CSV/Parquet in, JSON/HTML/Markdown out,
figures equal to scipy/statsmodels on the raw rows and to the published Hillstrom figures."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from offline_eval.cli import main
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.spark
TOL = 1e-9
HILLSTROM = SHARED_DATA / "hillstrom.csv"
Z = stats.norm.ppf(0.975)


def _readout(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "readout.json"
    assert main(["readout", *args, "--out", str(out)]) == 0
    return json.loads(out.read_text())


def _row(result: dict, metric: str, variant: str) -> dict:
    return next(r for r in result["metrics"] if r["metric"] == metric and r["variant"] == variant)


@pytest.mark.skipif(not HILLSTROM.exists(), reason="needs ../shared/data/hillstrom.csv")
def test_hillstrom_published_figures_and_statsmodels(spark, tmp_path):
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    got = _readout(tmp_path, "--input", str(HILLSTROM), "--variant-col", "segment", "--control", "No E-Mail",
                   "--metric", "visit:proportion", "--metric", "conversion:proportion", "--metric", "spend:mean",
                   "--correction", "holm", "--html", str(html), "--markdown", str(md))
    df = pd.read_csv(HILLSTROM)
    # Published (../shared/data/README.md): three-way SRM p = 0.90369; arm sizes; Welch p of spend.
    assert got["srm"]["p_value"] == pytest.approx(0.90369, abs=5e-6) and got["srm"]["flag"] is False
    assert got["srm"]["counts"] == {"Mens E-Mail": 21_307, "No E-Mail": 21_306, "Womens E-Mail": 21_387}
    spend = _row(got, "spend", "Mens E-Mail")
    assert spend["p_value"] == pytest.approx(1.163814968225482e-07, rel=1e-9)
    assert spend["mean_control"] == pytest.approx(0.652789, abs=5e-7)
    assert spend["mean_variant"] == pytest.approx(1.422617, abs=5e-7)
    # Every proportion row equals statsmodels' pooled z-test and the unpooled Wald interval.
    control = df[df.segment == "No E-Mail"]
    for variant in ("Mens E-Mail", "Womens E-Mail"):
        arm = df[df.segment == variant]
        for metric in ("visit", "conversion"):
            row = _row(got, metric, variant)
            c, v = control[metric].to_numpy(float), arm[metric].to_numpy(float)
            _, p = proportions_ztest([v.sum(), c.sum()], [len(v), len(c)])
            se = np.sqrt(c.mean() * (1 - c.mean()) / len(c) + v.mean() * (1 - v.mean()) / len(v))
            assert row["p_value"] == pytest.approx(p, rel=TOL, abs=1e-300)
            assert row["abs_diff"] == pytest.approx(v.mean() - c.mean(), abs=TOL)
            assert row["ci_low"] == pytest.approx(v.mean() - c.mean() - Z * se, abs=TOL)
            assert row["ci_high"] == pytest.approx(v.mean() - c.mean() + Z * se, abs=TOL)
            assert (row["n_control"], row["n_variant"]) == (len(c), len(v))
    # Holm across the six comparisons, as statsmodels does it.
    raw = [r["p_value"] for r in got["metrics"]]
    assert [r["p_value_adjusted"] for r in got["metrics"]] == pytest.approx(
        multipletests(raw, method="holm")[1].tolist(), rel=TOL)
    keys = {"metric", "variant", "control", "n_control", "n_variant", "mean_control", "mean_variant",
            "abs_diff", "rel_lift", "ci_low", "ci_high", "p_value", "p_value_adjusted", "method"}
    assert all(keys <= set(r) for r in got["metrics"])
    page = html.read_text()
    assert "Sample ratio OK" in page and "<svg" in page and "Mens E-Mail" in page
    assert "| spend | Mens E-Mail |" in md.read_text()


def test_ratio_booleans_cuped_and_three_arms_equal_references(spark, tmp_path):
    rng = np.random.default_rng(618)
    n = 6_000
    arm = rng.choice(["ctl", "a", "b"], n)
    lift = np.select([arm == "a", arm == "b"], [1.10, 0.97], 1.0)
    impressions = rng.poisson(12, n) + 1
    clicks = rng.binomial(impressions, np.clip(0.07 * lift, 0, 1))
    pre = rng.gamma(2.0, 20.0, n)
    gmv = np.maximum(0, 0.6 * pre + rng.normal(10 * lift, 15, n))
    bought = np.where(rng.random(n) < 0.1 * lift, "true", "false")
    path = tmp_path / "units.parquet"
    pd.DataFrame({"arm": arm, "impressions": impressions, "clicks": clicks, "gmv": gmv, "gmv_pre": pre,
                  "bought": bought}).to_parquet(path)

    got = _readout(tmp_path, "--input", str(path), "--variant-col", "arm", "--control", "ctl",
                   "--ratio", "clicks/impressions", "--metric", "bought:proportion", "--metric", "gmv:mean",
                   "--covariate", "gmv=gmv_pre", "--correction", "bh")
    assert {r["variant"] for r in got["metrics"]} == {"a", "b"}
    assert chi2_p(arm) == pytest.approx(got["srm"]["p_value"], abs=TOL)
    c = arm == "ctl"
    for variant in ("a", "b"):
        v = arm == variant
        # Ratio of sums with the delta-method variance, written out on the raw rows.
        row = _row(got, "clicks/impressions", variant)
        r_c, var_c = delta(clicks[c], impressions[c])
        r_v, var_v = delta(clicks[v], impressions[v])
        assert row["abs_diff"] == pytest.approx(r_v - r_c, abs=TOL)
        assert row["ci_high"] - row["abs_diff"] == pytest.approx(Z * np.sqrt(var_c + var_v), abs=TOL)
        # "true"/"false" strings are read as 1/0.
        row = _row(got, "bought", variant)
        y = bought == "true"
        _, p = proportions_ztest([y[v].sum(), y[c].sum()], [v.sum(), c.sum()])
        assert row["p_value"] == pytest.approx(p, rel=TOL)
        # CUPED with the pooled theta = cov(y, x) / var(x) equals an OLS of the adjusted outcome.
        row = _row(got, "gmv", variant)
        both = c | v
        theta = np.cov(gmv[both], pre[both])[0, 1] / np.var(pre[both], ddof=1)
        adj = gmv - theta * (pre - pre[both].mean())
        ref = stats.ttest_ind(adj[v], adj[c], equal_var=False)
        assert row["abs_diff"] == pytest.approx(adj[v].mean() - adj[c].mean(), abs=TOL)
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-6)
        assert row["variance_reduction"] > 0.3  # gmv is driven by its pre-period value
    raw = [r["p_value"] for r in got["metrics"]]
    assert [r["p_value_adjusted"] for r in got["metrics"]] == pytest.approx(
        multipletests(raw, method="fdr_bh")[1].tolist(), rel=TOL)


def chi2_p(arm: np.ndarray) -> float:
    _, counts = np.unique(arm, return_counts=True)
    return stats.chisquare(counts).pvalue


def delta(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    n, mx, my = len(num), den.mean(), num.mean()
    vy, vx, cxy = num.var(ddof=1), den.var(ddof=1), np.cov(num, den)[0, 1]
    r = my / mx
    return r, (vy - 2 * r * cxy + r * r * vx) / (n * mx * mx)


def test_srm_banner_and_escaped_html(spark, tmp_path):
    path = tmp_path / "units.csv"
    rows = (
        ["variant,clicked"]
        + ["control,1"] * 300
        + ["control,0"] * 4700
        + ["<b>v2</b>,1"] * 380
        + ["<b>v2</b>,0"] * 5220
    )
    path.write_text("\n".join(rows) + "\n")
    html = tmp_path / "r.html"
    got = _readout(tmp_path, "--input", str(path), "--variant-col", "variant", "--control", "control",
                   "--metric", "clicked:proportion", "--html", str(html))
    assert got["srm"]["flag"] is True  # 5000 vs 5600
    assert got["srm"]["chi2"] == pytest.approx(2 * 300**2 / 5300, rel=1e-12)  # expected 5300 each
    page = html.read_text()
    assert "Sample ratio mismatch" in page
    assert "<b>v2</b>" not in page and "&lt;b&gt;v2&lt;/b&gt;" in page


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--metric", "nope:proportion"], 3, "columns ['nope'] not found"),
        (["--metric", "clicked:median"], 2, "expected COLUMN:proportion or COLUMN:mean"),
        (["--metric", "clicked:proportion", "--covariate", "other=x"], 2, "unknown metrics ['other']"),
        (["--metric", "label:mean"], 3, "neither numbers nor true/false"),
    ],
)
def test_bad_input_fails_with_a_message_that_names_it(spark, tmp_path, caplog, args, code, message):
    path = tmp_path / "units.csv"
    path.write_text("variant,clicked,label\ncontrol,1,x\ntreatment,0,y\n")
    assert main(["readout", "--input", str(path), "--variant-col", "variant", "--control", "control", *args]) == code
    assert message in caplog.text


def test_unknown_control_arm(spark, tmp_path, caplog):
    path = tmp_path / "units.csv"
    path.write_text("variant,clicked\nA,1\nB,0\n")
    assert main(["readout", "--input", str(path), "--variant-col", "variant", "--control", "control",
                 "--metric", "clicked:proportion"]) == 3
    assert "control arm 'control' not found in column variant" in caplog.text
