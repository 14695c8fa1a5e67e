"""Model quality and concept drift from small aggregates (pure numpy, no IO).

The Spark side (``offline_eval.metrics.quality``) reduces a day to score bins per group: for
each bin of width ``1 / SCORE_BINS`` on [0, 1], the impressions, clicks, sum of scores and sum
of per-row log loss. Everything pointwise follows from those bins (formulas in
docs/quality.md):

* AUC: the Mann-Whitney statistic with the scores rounded to their bin. Pairs of a click and
  a non-click in the same bin count one half, so the exact AUC of the unrounded scores lies
  within ``tie_bound = 0.5 * sum_b pos_b * neg_b / (P * N)`` of it (about 1e-4 here).
* Log loss: exact, the sum of per-row losses (scores clipped to [1e-15, 1 - 1e-15]) over rows.
* Calibration: ten groups of bins holding a tenth of the impressions each (score deciles at
  bin resolution): expected CTR (mean score) against observed CTR. ECE is the impression-
  weighted mean of |observed - expected| over the groups. ``calibration_ratio`` is
  clicks / sum of scores (1 = calibrated on average).
* Concept drift: P(click | score bucket) on buckets fixed by the reference (its score deciles),
  current against reference, per bucket and as an impression-weighted mean absolute change.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SCORE_BINS = 10_000
CALIBRATION_GROUPS = 10
LOGLOSS_EPS = 1e-15


@dataclass(frozen=True)
class ScoreBins:
    """Aggregates per score bin, ascending; ``bins`` are the bin ids (floor(score * SCORE_BINS))."""

    bins: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    score_sum: np.ndarray
    logloss_sum: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[int, float, float, float, float]]) -> ScoreBins:
        """(bin, impressions, clicks, score_sum, logloss_sum) rows in any order; bins may repeat."""
        if not rows:
            return cls(*(np.zeros(0) for _ in range(5)))
        a = np.asarray(rows, dtype=float)
        ids, inverse = np.unique(a[:, 0].astype(np.int64), return_inverse=True)
        sums = [np.bincount(inverse, weights=a[:, k], minlength=len(ids)) for k in range(1, 5)]
        return cls(ids, *sums)

    @property
    def n(self) -> float:
        return float(self.impressions.sum())

    def merged(self, other: ScoreBins) -> ScoreBins:
        rows = [*self.rows(), *other.rows()]
        return ScoreBins.from_rows(rows)

    def rows(self) -> list[tuple[int, float, float, float, float]]:
        return [(int(b), float(i), float(c), float(s), float(ll)) for b, i, c, s, ll in
                zip(self.bins, self.impressions, self.clicks, self.score_sum, self.logloss_sum, strict=True)]


@dataclass(frozen=True)
class Auc:
    value: float | None
    tie_bound: float | None  # |exact AUC - value| <= tie_bound


def auc(bins: ScoreBins) -> Auc:
    pos = bins.clicks
    neg = bins.impressions - bins.clicks
    p, n = pos.sum(), neg.sum()
    if p == 0 or n == 0:
        return Auc(None, None)
    neg_below = np.cumsum(neg) - neg
    ties = float(np.sum(pos * neg))
    return Auc(float((np.sum(pos * neg_below) + 0.5 * ties) / (p * n)), 0.5 * ties / (p * n))


def logloss(bins: ScoreBins) -> float | None:
    return float(bins.logloss_sum.sum() / bins.n) if bins.n else None


def calibration_groups(bins: ScoreBins, groups: int = CALIBRATION_GROUPS) -> np.ndarray:
    """Group index of each bin: bins in score order, cut where the cumulative impressions pass
    k / groups of the total (a bin is never split, so groups hold roughly a tenth each)."""
    if bins.n == 0:
        return np.zeros(0, dtype=int)
    cum_before = (np.cumsum(bins.impressions) - bins.impressions) / bins.n
    return np.minimum((cum_before * groups).astype(int), groups - 1)


def calibration_table(bins: ScoreBins, groups: int = CALIBRATION_GROUPS) -> list[dict]:
    g = calibration_groups(bins, groups)
    out = []
    for k in np.unique(g):
        m = g == k
        n = float(bins.impressions[m].sum())
        out.append(
            {
                "group": int(k),
                "score_from": float(bins.bins[m][0]) / SCORE_BINS,
                "score_to": float(bins.bins[m][-1] + 1) / SCORE_BINS,
                "impressions": n,
                "expected_ctr": float(bins.score_sum[m].sum()) / n,
                "observed_ctr": float(bins.clicks[m].sum()) / n,
            }
        )
    return out


def ece(bins: ScoreBins, groups: int = CALIBRATION_GROUPS) -> float | None:
    if bins.n == 0:
        return None
    table = calibration_table(bins, groups)
    return float(sum(t["impressions"] * abs(t["observed_ctr"] - t["expected_ctr"]) for t in table) / bins.n)


def calibration_ratio(bins: ScoreBins) -> float | None:
    expected = float(bins.score_sum.sum())
    return float(bins.clicks.sum()) / expected if expected > 0 else None


def bucket_edges(reference: ScoreBins, groups: int = CALIBRATION_GROUPS) -> list[int]:
    """Bin ids where the reference's score deciles start (the first is always 0)."""
    g = calibration_groups(reference, groups)
    starts = [0]
    for k in range(1, len(g)):
        if g[k] != g[k - 1]:
            starts.append(int(reference.bins[k]))
    return starts


def ctr_by_bucket(bins: ScoreBins, starts: Sequence[int]) -> list[dict]:
    idx = np.searchsorted(np.asarray(starts), bins.bins, side="right") - 1
    out = []
    for k, start in enumerate(starts):
        m = idx == k
        n = float(bins.impressions[m].sum())
        end = starts[k + 1] if k + 1 < len(starts) else SCORE_BINS
        out.append({"bucket": k, "score_from": start / SCORE_BINS, "score_to": end / SCORE_BINS, "impressions": n,
                    "ctr": float(bins.clicks[m].sum()) / n if n else None,
                    "expected_ctr": float(bins.score_sum[m].sum()) / n if n else None})
    return out


def concept_drift(reference: ScoreBins, current: ScoreBins, groups: int = CALIBRATION_GROUPS) -> dict:
    """P(click | score bucket) now vs in the reference, on the reference's score deciles.

    ``mean_abs_change``: sum over buckets of (current impressions share) x |CTR now - CTR then|;
    ``mean_rel_change``: the same weights on (CTR now / CTR then - 1), signed.
    """
    if reference.n == 0 or current.n == 0:
        return {"buckets": [], "mean_abs_change": None, "mean_rel_change": None}
    starts = bucket_edges(reference, groups)
    ref, cur = ctr_by_bucket(reference, starts), ctr_by_bucket(current, starts)
    buckets, abs_sum, rel_sum, weight = [], 0.0, 0.0, 0.0
    for r, c in zip(ref, cur, strict=True):
        row = {"bucket": r["bucket"], "score_from": r["score_from"], "score_to": r["score_to"],
               "ctr_reference": r["ctr"], "ctr_current": c["ctr"], "impressions_current": c["impressions"]}
        buckets.append(row)
        if r["ctr"] and c["ctr"] is not None:
            abs_sum += c["impressions"] * abs(c["ctr"] - r["ctr"])
            rel_sum += c["impressions"] * (c["ctr"] / r["ctr"] - 1)
            weight += c["impressions"]
    return {"buckets": buckets, "mean_abs_change": abs_sum / weight if weight else None,
            "mean_rel_change": rel_sum / weight if weight else None}


def pointwise(bins: ScoreBins) -> dict[str, float | None]:
    a = auc(bins)
    return {"auc": a.value, "auc_tie_bound": a.tie_bound, "logloss": logloss(bins), "ece": ece(bins),
            "calibration_ratio": calibration_ratio(bins)}


def ideal_dcg(relevant: int, k: int) -> float:
    return float(sum(1 / np.log2(i + 1) for i in range(1, min(relevant, k) + 1)))
