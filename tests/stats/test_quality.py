"""Quality and concept-drift statistics from score bins, against sklearn and by hand."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from offline_eval.stats.quality import (
    SCORE_BINS,
    ScoreBins,
    auc,
    calibration_groups,
    calibration_ratio,
    concept_drift,
    ece,
    logloss,
)


def _bins(score: np.ndarray, y: np.ndarray) -> ScoreBins:
    """What the Spark job computes, in numpy: per floor(score * SCORE_BINS) bin."""
    b = np.minimum(np.floor(score * SCORE_BINS), SCORE_BINS - 1).astype(int)
    p = np.clip(score, 1e-15, 1 - 1e-15)
    loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    rows = [(int(k), 1.0, float(c), float(s), float(ll)) for k, c, s, ll in zip(b, y, score, loss, strict=True)]
    return ScoreBins.from_rows(rows)


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(7)
    score = rng.beta(1.2, 12, size=20_000)
    y = (rng.uniform(size=score.size) < score).astype(float)
    return score, y


def test_auc_within_its_tie_bound_of_sklearn(sample):
    score, y = sample
    got = auc(_bins(score, y))
    exact = roc_auc_score(y, score)
    assert got.tie_bound < 2e-3
    assert abs(got.value - exact) <= got.tie_bound
    # scores already on the bin grid: no ties inside a bin other than true ties, so exact
    rounded = np.floor(score * SCORE_BINS) / SCORE_BINS + 0.5 / SCORE_BINS
    assert auc(_bins(rounded, y)).value == pytest.approx(roc_auc_score(y, rounded), abs=1e-12)


def test_auc_by_hand():
    # scores 0.1 (no click), 0.2 (click), 0.2 (no click), 0.9 (click): pairs (pos, neg):
    # (0.2c, 0.1) win, (0.2c, 0.2) tie, (0.9, 0.1) win, (0.9, 0.2) win -> 3.5 / 4
    got = auc(_bins(np.array([0.1, 0.2, 0.2, 0.9]), np.array([0.0, 1.0, 0.0, 1.0])))
    assert got.value == pytest.approx(0.875)
    assert got.tie_bound == pytest.approx(0.125)


def test_logloss_is_exact(sample):
    score, y = sample
    assert logloss(_bins(score, y)) == pytest.approx(log_loss(y, score), rel=1e-12)


def test_ece_and_calibration(sample):
    score, y = sample
    bins = _bins(score, y)
    # reference: the same ten groups of bins, computed on the raw rows
    group_of_bin = dict(zip(bins.bins.tolist(), calibration_groups(bins).tolist(), strict=True))
    g = np.array([group_of_bin[int(k)] for k in np.minimum(np.floor(score * SCORE_BINS), SCORE_BINS - 1)])
    want = sum((g == k).sum() * abs(y[g == k].mean() - score[g == k].mean()) for k in np.unique(g)) / y.size
    assert ece(bins) == pytest.approx(want, rel=1e-12)
    assert len(np.unique(g)) == 10 and all(0.08 < (g == k).mean() < 0.12 for k in range(10))
    assert ece(bins) < 0.01  # calibrated by construction
    assert calibration_ratio(bins) == pytest.approx(y.sum() / score.sum())
    # a model that doubles every probability: ECE near the mean score, ratio near 1/2
    doubled = _bins(np.minimum(score * 2, 1.0), y)
    assert ece(doubled) == pytest.approx(score.mean(), rel=0.1)
    assert calibration_ratio(doubled) == pytest.approx(0.5, rel=0.05)


def test_concept_drift_sees_clicks_fall_at_equal_scores(sample):
    score, y = sample
    rng = np.random.default_rng(8)
    same = (rng.uniform(size=score.size) < score).astype(float)
    halved = (rng.uniform(size=score.size) < score / 2).astype(float)
    ref = _bins(score, y)
    steady = concept_drift(ref, _bins(score, same))
    drop = concept_drift(ref, _bins(score, halved))
    assert len(drop["buckets"]) == 10
    assert abs(steady["mean_rel_change"]) < 0.05
    assert drop["mean_rel_change"] == pytest.approx(-0.5, abs=0.05)
    # by hand on the buckets: impression-weighted |CTR now - CTR then|
    w = np.array([b["impressions_current"] for b in drop["buckets"]])
    d = np.array([abs(b["ctr_current"] - b["ctr_reference"]) for b in drop["buckets"]])
    assert drop["mean_abs_change"] == pytest.approx(float((w * d).sum() / w.sum()))
