"""Published figures of the Hillstrom e-mail test (../shared/data/README.md), reproduced from
sufficient statistics."""
from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from offline_eval.stats.ab import Moments, means, srm, two_proportions
from tests.conftest import SHARED_DATA

CSV = SHARED_DATA / "hillstrom.csv"
SHA256 = "ff9e59285e9dc3f5fa3e0975419e6631ea5bdccd65d818991473d2367e02979c"

pytestmark = pytest.mark.skipif(not CSV.exists(), reason="needs ../shared/data/hillstrom.csv")


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    assert hashlib.sha256(CSV.read_bytes()).hexdigest() == SHA256
    return pd.read_csv(CSV)


def arm(df: pd.DataFrame, segment: str, col: str) -> Moments:
    y = df.loc[df.segment == segment, col].to_numpy(dtype=float)
    return Moments(len(y), y.sum(), (y * y).sum())


def test_overall_rates(data):
    assert data.visit.mean() == pytest.approx(0.14678, abs=5e-6)
    assert data.conversion.mean() == pytest.approx(0.00903, abs=5e-6)
    assert data.spend.mean() == pytest.approx(1.05091, abs=5e-6)


def test_arm_figures(data):
    no, mens = arm(data, "No E-Mail", "conversion"), arm(data, "Mens E-Mail", "conversion")
    assert (no.n, mens.n) == (21_306, 21_307)
    assert no.mean_y == pytest.approx(0.005726, abs=5e-7)
    assert mens.mean_y == pytest.approx(0.012531, abs=5e-7)
    assert arm(data, "No E-Mail", "spend").mean_y == pytest.approx(0.652789, abs=5e-7)
    assert arm(data, "Mens E-Mail", "spend").mean_y == pytest.approx(1.422617, abs=5e-7)


def test_spend_mens_vs_no_email(data):
    c, v = arm(data, "No E-Mail", "spend"), arm(data, "Mens E-Mail", "spend")
    student = means(c, v, equal_var=True)
    assert student.abs_diff / student.se == pytest.approx(5.300090294465472, abs=1e-9)
    assert student.p_value == pytest.approx(1.163200872605869e-07, rel=1e-9)
    assert means(c, v).p_value == pytest.approx(1.163814968225482e-07, rel=1e-9)


def test_three_way_srm(data):
    counts = data.segment.value_counts().to_dict()
    result = srm(counts)
    assert result.p_value == pytest.approx(0.90369, abs=5e-6)
    assert not result.flag


def test_conversion_lift_is_significant(data):
    got = two_proportions(arm(data, "No E-Mail", "conversion"), arm(data, "Mens E-Mail", "conversion"))
    assert got.ci_low > 0 and got.p_value < 1e-10
    assert got.rel_lift == pytest.approx(0.012531 / 0.005726 - 1, abs=1e-3)
