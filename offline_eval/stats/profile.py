"""Daily profiles and the references merged from them (pure numpy, no IO).

A profile is everything drift, concept drift and the alert thresholds need from one day of
one model version, small and mergeable:

* every numeric feature and the score: counts on the fixed grid of ``stats.grid`` (exact),
  missing values, and the moments n, mean, sample std, min, max;
* every categorical feature: value counts;
* score bins per user segment (``ScoreBins``: impressions, clicks, score and log-loss sums);
* the day's value of every metric per (variant, segment).

A reference (previous day, 7 or 28 days) is the merge of the profiles of its days: counts are
summed, moments merged with Chan et al.'s pairwise formulas, metric values kept per day (the
alert thresholds are the mean and sample std of the daily values). Merging never needs a row.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from offline_eval.stats import grid
from offline_eval.stats.ab import Moments
from offline_eval.stats.quality import ScoreBins

OTHER = "__other__"  # rare categories folded together in references
NULL = "__null__"  # a null category value
RARE_SHARE = 0.001  # references fold values rarer than this into OTHER ...
MAX_CATEGORIES = 100  # ... or beyond the most frequent 100
MAX_DAILY_CATEGORIES = 1000  # a daily profile keeps the 1000 most frequent values exactly
DECILES = tuple(k / 10 for k in range(1, 10))

MetricKey = tuple  # (variant, segment, metric)


@dataclass(frozen=True)
class NumericProfile:
    """One numeric column: sparse grid counts (ascending bucket ids) and moments."""

    buckets: np.ndarray  # int64 grid bucket ids with a non-zero count, ascending
    counts: np.ndarray  # int64 counts of those buckets
    missing: int = 0  # nulls and NaN, left out of everything else
    mean: float | None = None
    std: float | None = None  # sample standard deviation
    min: float | None = None
    max: float | None = None

    @classmethod
    def from_counts(cls, counts: Mapping[int, int], *, missing: int = 0, mean: float | None = None,
                    std: float | None = None, min: float | None = None, max: float | None = None) -> NumericProfile:
        items = sorted((int(b), int(n)) for b, n in counts.items() if n)
        b = np.array([i for i, _ in items], dtype=np.int64)
        n = np.array([c for _, c in items], dtype=np.int64)
        return cls(b, n, int(missing), mean, std, min, max)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def quantile_edges(self, probabilities: Sequence[float]) -> list[float]:
        return grid.quantile_edges(self.buckets, self.counts, np.asarray(probabilities))

    @property
    def decile_edges(self) -> list[float]:
        """The PSI bins: the grid boundaries at the reference's deciles (repeats collapse)."""
        return self.quantile_edges(DECILES)


def merge_numeric(parts: Sequence[NumericProfile]) -> NumericProfile:
    """Sum of the grid counts; mean and std by the pairwise update of Chan, Golub and LeVeque
    (exact in exact arithmetic, numerically stable), min of mins, max of maxes."""
    parts = [p for p in parts if p.n or p.missing]
    if not parts:
        return NumericProfile(np.zeros(0, np.int64), np.zeros(0, np.int64))
    buckets = np.concatenate([p.buckets for p in parts])
    weights = np.concatenate([p.counts for p in parts])
    ids, inverse = np.unique(buckets, return_inverse=True)
    counts = np.bincount(inverse, weights=weights, minlength=len(ids)).astype(np.int64)
    n, mean, m2 = 0, 0.0, 0.0
    for p in parts:
        if not p.n or p.mean is None:
            continue
        pm2 = (p.std or 0.0) ** 2 * (p.n - 1)
        total = n + p.n
        delta = p.mean - mean
        mean += delta * p.n / total
        m2 += pm2 + delta * delta * n * p.n / total
        n = total
    mins = [p.min for p in parts if p.min is not None]
    maxs = [p.max for p in parts if p.max is not None]
    return NumericProfile(ids, counts, sum(p.missing for p in parts), mean if n else None,
                          math.sqrt(m2 / (n - 1)) if n > 1 else None, min(mins) if mins else None,
                          max(maxs) if maxs else None)


def fold_rare(counts: Mapping[str, int], rare_share: float = RARE_SHARE, keep: int = MAX_CATEGORIES) -> dict[str, int]:
    """Keep the ``keep`` most frequent values with at least ``rare_share`` of the rows; the
    rest become OTHER (so that a reference stays small and a long tail cannot dominate
    chi-square)."""
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    out: dict[str, int] = {}
    for i, (value, n) in enumerate(ranked):
        if i < keep and total and n / total >= rare_share and value != OTHER:
            out[value] = n
        else:
            out[OTHER] = out.get(OTHER, 0) + n
    return out


def merge_counts(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in parts:
        for k, v in p.items():
            out[k] = out.get(k, 0) + int(v)
    return out


@dataclass(frozen=True)
class MetricStats:
    """A metric's daily values over a window and what the alert thresholds use."""

    values: dict[str, float]  # ds -> value

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        xs = list(self.values.values())
        return sum(xs) / len(xs)

    @property
    def std(self) -> float | None:
        xs = list(self.values.values())
        if len(xs) < 2:
            return None
        m = self.mean
        return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


@dataclass
class Profile:
    """One model version over one day (a daily profile) or over a window (a reference)."""

    model_name: str
    model_version: str
    days: tuple[str, ...]
    numeric: dict[str, NumericProfile] = field(default_factory=dict)
    categorical: dict[str, dict[str, int]] = field(default_factory=dict)
    score_bins: dict[str, ScoreBins] = field(default_factory=dict)  # user segment -> bins
    metrics: dict[MetricKey, MetricStats] = field(default_factory=dict)
    # Per-user sums of the lifted metrics, per (variant, metric): additive over days, so a
    # window's are the sum of its days' (units are then user-days); stats.lifts compares them.
    moments: dict[tuple[str, str], Moments] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.model_name, self.model_version)


def merge(parts: Sequence[Profile], *, fold: bool = True) -> Profile:
    """A reference from daily profiles of one model version; categories folded by default."""
    if not parts:
        raise ValueError("no profiles to merge")
    keys = {p.key for p in parts}
    if len(keys) != 1:
        raise ValueError(f"profiles of several model versions: {sorted(keys)}")
    days = tuple(sorted({d for p in parts for d in p.days}))
    numeric = {c: merge_numeric([p.numeric[c] for p in parts if c in p.numeric])
               for c in sorted({c for p in parts for c in p.numeric})}
    categorical = {}
    for c in sorted({c for p in parts for c in p.categorical}):
        counts = merge_counts(p.categorical[c] for p in parts if c in p.categorical)
        categorical[c] = fold_rare(counts) if fold else counts
    bins: dict[str, ScoreBins] = {}
    for p in parts:
        for seg, b in p.score_bins.items():
            bins[seg] = bins[seg].merged(b) if seg in bins else b
    metrics: dict[MetricKey, MetricStats] = {}
    for p in parts:
        for k, s in p.metrics.items():
            metrics[k] = MetricStats({**(metrics[k].values if k in metrics else {}), **s.values})
    moments: dict[tuple[str, str], Moments] = {}
    for p in parts:
        for k, m in p.moments.items():
            moments[k] = add_moments(moments[k], m) if k in moments else m
    return Profile(parts[0].model_name, parts[0].model_version, days, numeric, categorical, bins, metrics, moments)


def add_moments(a: Moments, b: Moments) -> Moments:
    return Moments(a.n + b.n, a.sum_y + b.sum_y, a.sum_y2 + b.sum_y2, a.sum_x + b.sum_x, a.sum_x2 + b.sum_x2,
                   a.sum_xy + b.sum_xy)
