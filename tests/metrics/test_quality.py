"""Ranking and score-bin aggregates in Spark, against sklearn and numpy on the same rows."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import ndcg_score, roc_auc_score

from offline_eval.metrics.quality import NDCG_K, PRECISION_K, ranking_sums, score_bins
from offline_eval.stats.quality import ScoreBins, auc

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def requests():
    rng = np.random.default_rng(11)
    rows = []
    for r in range(300):
        scores = rng.permutation(np.round(rng.uniform(0.01, 0.5, 12), 6))  # distinct within a request
        clicks = (rng.uniform(size=12) < scores).astype(int)
        seg = "new_users" if r % 3 == 0 else "returning_users"
        rows += [
            ("m", "v1", "control", seg, f"r{r}", i + 1, float(s), int(c))
            for i, (s, c) in enumerate(zip(scores, clicks, strict=True))
        ]
    return rows


@pytest.mark.parametrize("few_clicks", [False, True], ids=["join-by-spark", "broadcast-clicked-requests"])
def test_ranking_sums_equal_sklearn_and_hand_formulas(spark, requests, few_clicks):
    # Some requests have no click (their rows are left out before ranking).
    df = spark.createDataFrame(
        requests,
        "model_name string, model_version string, variant string, user_segment string, "
        "request_id string, position int, score double, clicked int",
    )
    got = {r["user_segment"]: r.asDict() for r in ranking_sums(df, ["model_name", "model_version", "variant",
                                                                      "user_segment"],
                                                                 few_clicks=few_clicks).collect()}
    for seg in ("new_users", "returning_users"):
        by_req: dict[str, list] = {}
        for row in requests:
            if row[3] == seg:
                by_req.setdefault(row[4], []).append(row)
        clicked = [rs for rs in by_req.values() if any(r[7] for r in rs)]
        y = np.array([[r[7] for r in rs] for rs in clicked])
        s = np.array([[r[6] for r in rs] for rs in clicked])
        order = np.argsort(-s, axis=1)
        ranked = np.take_along_axis(y, order, axis=1)
        precision = ranked[:, :PRECISION_K].sum(axis=1) / PRECISION_K
        rr = 1 / (ranked.argmax(axis=1) + 1)
        g = got[seg]
        assert len(by_req) - len(clicked) >= 5  # requests without a click are in the data
        assert g["requests"] == len(clicked)
        assert g["ndcg_sum"] / g["requests"] == pytest.approx(ndcg_score(y, s, k=NDCG_K), abs=1e-12)
        assert g["precision_sum"] == pytest.approx(precision.sum(), abs=1e-9)
        assert g["rr_sum"] == pytest.approx(rr.sum(), abs=1e-9)


def test_score_bins_give_sklearn_auc_within_the_bound(spark, requests):
    df = spark.createDataFrame([(r[0], r[6], r[7]) for r in requests], "model_name string, score double, clicked int")
    cells = score_bins(df, ["model_name"]).collect()
    bins = ScoreBins.from_rows(
        [(c["bin"], c["impressions"], c["clicks"], c["score_sum"], c["logloss_sum"]) for c in cells]
    )
    y = np.array([r[7] for r in requests])
    s = np.array([r[6] for r in requests])
    assert bins.n == len(requests) and bins.clicks.sum() == y.sum()
    a = auc(bins)
    assert abs(a.value - roc_auc_score(y, s)) <= a.tie_bound + 1e-12
