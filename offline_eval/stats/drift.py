"""Drift statistics from binned counts (pure numpy/scipy, no IO).

Every statistic here takes the counts of the reference and the current data on the *same*
bins: the Spark side (``offline_eval.metrics.drift``) bins the full data in one pass against
edges taken once from the reference, so nothing here ever sees a row.

Conventions (docs/drift.md):
* PSI = sum (c - r) ln(c / r) over bins, with proportions r, c. An empty bin gets a small
  proportion instead of 0, by Evidently's rule (1e-4, or the smallest non-zero proportion
  / 1e6 if that is smaller), so that our PSI equals Evidently's on the same bins.
* Jensen-Shannon *distance* (the square root of the divergence), base 2, in [0, 1], on the
  PSI bins: ``scipy.spatial.distance.jensenshannon``.
* KS on the fine grid: the supremum of |F_ref - F_cur| over the grid edges, with a rigorous
  upper bound on the exact two-sample statistic (the CDFs are monotone between edges).
* Wasserstein-1 on the fine grid (the integral of |F_ref - F_cur|, trapezoid rule between
  edges), divided by the reference standard deviation.
* Chi-square test of homogeneity on the 2 x k table of category counts, no continuity
  correction (``scipy.stats.chi2_contingency``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from offline_eval.stats import grid
from offline_eval.stats.profile import OTHER, NumericProfile
from offline_eval.thresholds import DEFAULT, Thresholds

# Statistical significance is necessary but not sufficient: with a million rows a PSI of
# 0.001 is "significant". A column drifts when the shift is both real (p below
# ``Thresholds.p_value``) and large enough to matter (the PSI bands ``psi_minor``/``psi_severe``).


def proportions(counts: np.ndarray) -> np.ndarray:
    """Counts -> proportions with Evidently's rule for empty bins."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total <= 0:
        raise ValueError("no data in any bin")
    p = counts / total
    nonzero = p[p > 0]
    fill = nonzero.min() / 1e6 if nonzero.min() <= 1e-4 else 1e-4
    return np.where(p == 0, fill, p)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    r, c = proportions(reference), proportions(current)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    return float(jensenshannon(r / r.sum(), c / c.sum(), base=2))


@dataclass(frozen=True)
class KsOnGrid:
    statistic: float  # sup over grid edges of |F_ref - F_cur|: a lower bound of the exact value
    upper_bound: float  # the exact two-sample statistic is at most this
    p_value: float  # asymptotic, from the grid statistic

    @property
    def error_bound(self) -> float:
        return self.upper_bound - self.statistic


def ks_on_grid(reference: np.ndarray, current: np.ndarray) -> KsOnGrid:
    """Counts on bins (-inf, e0], (e0, e1], ..., (e_last, inf) -> KS with its error bound.

    F(e_k) is exact at every edge. Between e_{k-1} and e_k both CDFs are non-decreasing, so for
    x there F_ref(x) - F_cur(x) <= F_ref(e_k) - F_cur(e_{k-1}) and symmetrically. Hence
    D_grid <= D_exact <= max_k max(F_ref(e_k) - F_cur(e_{k-1}), F_cur(e_k) - F_ref(e_{k-1})),
    a gap of at most the larger of the two samples' mass in one bin (about 1/1000 of the
    reference on the default grid).
    """
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    n, m = r.sum(), c.sum()
    fr = np.concatenate([[0.0], np.cumsum(r) / n])  # F at -inf, e0, e1, ..., +inf
    fc = np.concatenate([[0.0], np.cumsum(c) / m])
    d = float(np.max(np.abs(fr - fc)))
    upper = float(max(np.max(fr[1:] - fc[:-1]), np.max(fc[1:] - fr[:-1]), d))
    en = n * m / (n + m)
    p = float(stats.kstwo.sf(d, int(round(en)))) if en >= 1 else 1.0
    return KsOnGrid(d, upper, p)


def wasserstein_normed(lows: np.ndarray, highs: np.ndarray, reference: np.ndarray, current: np.ndarray,
                       ref_std: float) -> float:
    """W1 = integral of |F_ref - F_cur| dx over buckets (lows[k], highs[k]] (ascending, disjoint,
    every value of both samples in one of them), divided by the reference std.

    Both CDFs are exact at every bucket boundary and flat between buckets (no value lies
    there); within a bucket they are taken as linear (the trapezoid rule). On the fine grid a
    bucket spans 0.2% of its values, so the approximation is well below sampling error. The
    open outer buckets must be clipped to the observed min and max by the caller.
    """
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    gap = np.abs(np.cumsum(r) / r.sum() - np.cumsum(c) / c.sum())  # |F_ref - F_cur| at highs[k]
    before = np.concatenate([[0.0], gap[:-1]])  # ... at lows[k], as at highs[k-1]
    inside = np.sum((np.asarray(highs, dtype=float) - np.asarray(lows, dtype=float)) * (before + gap) / 2)
    between = np.sum((np.asarray(lows[1:], dtype=float) - np.asarray(highs[:-1], dtype=float)) * gap[:-1])
    w = float(inside + between)
    return w / ref_std if ref_std > 0 else (0.0 if w == 0 else math.inf)


def chi2_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    table = np.vstack([np.asarray(reference, dtype=float), np.asarray(current, dtype=float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def psi_band(value: float, thresholds: Thresholds = DEFAULT) -> str:
    return ("severe" if value >= thresholds.psi_severe else "minor" if value >= thresholds.psi_minor
            else "none")


def verdict(psi_value: float, p_value: float, thresholds: Thresholds = DEFAULT) -> str:
    """PSI band (none < psi_minor <= minor < psi_severe <= severe: 0.1 and 0.2 by default), but
    "none" unless p < p_value (0.01)."""
    return psi_band(psi_value, thresholds) if p_value < thresholds.p_value else "none"


def coarse_counts(buckets: np.ndarray, counts: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Grid counts summed onto the bins (-inf, e0], ..., (e_last, inf) of ``edges`` (grid
    boundaries): a grid bucket lies in the bin of its upper boundary."""
    target = np.searchsorted(np.asarray(edges, dtype=float), grid.upper(buckets), side="left")
    return np.bincount(target, weights=np.asarray(counts, dtype=float),
                       minlength=len(edges) + 1).astype(int).tolist()


@dataclass(frozen=True)
class Bins:
    """What every drift statistic of one column sees. ``reference``/``current``: counts per fine
    grid bucket occupied by either sample (numeric) or per category; ``coarse_*``: the counts
    on the reference's decile bins (numeric; the categories again for categorical columns);
    for numeric columns the buckets' bounds clipped to the observed range and the reference's
    standard deviation."""

    reference: np.ndarray
    current: np.ndarray
    coarse_reference: np.ndarray
    coarse_current: np.ndarray
    lows: np.ndarray | None = None
    highs: np.ndarray | None = None
    ref_std: float = 0.0


Statistic = Callable[[Bins], dict[str, float]]
# The drift statistics, by column type: name -> function of the bins returning its fields. A new
# statistic is one function registered here (its fields reach `offline-eval drift` output and the
# day's drift.json; its headline field reaches MLflow as drift/<reference>/<column>/<field>), one
# test and one line in docs/drift.md. drift_daily keeps the contract's columns.
NUMERIC_STATISTICS: dict[str, Statistic] = {}
CATEGORICAL_STATISTICS: dict[str, Statistic] = {}
HEADLINE: dict[str, str] = {}  # statistic -> the field logged to MLflow


def statistic(name: str, headline: str, *, numeric: bool = False, categorical: bool = False
              ) -> Callable[[Statistic], Statistic]:
    def register(fn: Statistic) -> Statistic:
        for wanted, registry in ((numeric, NUMERIC_STATISTICS), (categorical, CATEGORICAL_STATISTICS)):
            if wanted:
                registry[name] = fn
        HEADLINE[name] = headline
        return fn
    return register


@statistic("psi", "psi", numeric=True, categorical=True)
def _psi(b: Bins) -> dict[str, float]:
    return {"psi": psi(b.coarse_reference, b.coarse_current)}


@statistic("ks", "ks", numeric=True)
def _ks(b: Bins) -> dict[str, float]:
    ks = ks_on_grid(b.reference, b.current)
    return {"ks": ks.statistic, "ks_error_bound": ks.error_bound, "ks_p": ks.p_value}


@statistic("js", "js", numeric=True, categorical=True)
def _js(b: Bins) -> dict[str, float]:
    return {"js": js_distance(b.coarse_reference, b.coarse_current)}


@statistic("wasserstein", "wasserstein", numeric=True)
def _wasserstein(b: Bins) -> dict[str, float]:
    assert b.lows is not None and b.highs is not None
    return {"wasserstein": wasserstein_normed(b.lows, b.highs, b.reference, b.current, b.ref_std)}


@statistic("chi2", "chi2_p", categorical=True)
def _chi2(b: Bins) -> dict[str, float]:
    return {"chi2_p": chi2_p_value(b.reference, b.current)}


def _measure(registry: dict[str, Statistic], bins: Bins) -> dict[str, float]:
    out: dict[str, float] = {}
    for fn in registry.values():
        out.update(fn(bins))
    return out


def compare_numeric(column: str, ref: NumericProfile, cur: NumericProfile, thresholds: Thresholds = DEFAULT) -> dict:
    """One numeric column, reference profile against the current one, both on the fine grid.

    PSI and JS on the reference's deciles; KS and Wasserstein on every grid bucket either
    sample occupies (NUMERIC_STATISTICS). The verdict reads PSI and the KS p-value."""
    out = {"column": column, "type": "numeric", "n_reference": ref.n, "n_current": cur.n,
           "missing_reference": ref.missing, "missing_current": cur.missing}
    if ref.n == 0 or cur.n == 0:
        return {**out, "psi": None, "ks": None, "js": None, "wasserstein": None, "verdict": "no data"}
    union = np.union1d(ref.buckets, cur.buckets)
    r = np.zeros(len(union), dtype=np.int64)
    c = np.zeros(len(union), dtype=np.int64)
    r[np.searchsorted(union, ref.buckets)] = ref.counts
    c[np.searchsorted(union, cur.buckets)] = cur.counts
    edges = ref.decile_edges
    r10, c10 = coarse_counts(union, r, edges), coarse_counts(union, c, edges)
    observed = [v for v in (ref.min, cur.min, ref.max, cur.max) if v is not None]
    lo, hi = min(observed), max(observed)
    bins = Bins(r, c, r10, c10, np.clip(grid.lower(union), lo, hi), np.clip(grid.upper(union), lo, hi),
                ref.std or 0.0)
    found = _measure(NUMERIC_STATISTICS, bins)
    value = found["psi"]
    return {**out, **found, "psi_band": psi_band(value, thresholds), "psi_edges": edges, "psi_bins": len(r10),
            "verdict": verdict(value, found["ks_p"], thresholds)}


def compare_categorical(column: str, ref_counts: dict[str, int], current_counts: dict[str, int],
                        thresholds: Thresholds = DEFAULT) -> dict:
    """One bin per category seen in either sample. When the reference has folded rare values
    into OTHER, current values it does not list are folded into OTHER too. PSI, JS and the
    chi-square test (CATEGORICAL_STATISTICS); the verdict reads PSI and the chi-square p-value."""
    if OTHER in ref_counts:
        folded: dict[str, int] = {}
        for k, n in current_counts.items():
            key = k if k in ref_counts else OTHER
            folded[key] = folded.get(key, 0) + n
        current_counts = folded
    keys = sorted(set(ref_counts) | set(current_counts))
    r = np.array([ref_counts.get(k, 0) for k in keys], dtype=float)
    c = np.array([current_counts.get(k, 0) for k in keys], dtype=float)
    out = {"column": column, "type": "categorical", "n_reference": int(r.sum()), "n_current": int(c.sum()),
           "categories": len(keys)}
    if r.sum() == 0 or c.sum() == 0:
        return {**out, "psi": None, "js": None, "chi2_p": None, "verdict": "no data"}
    found = _measure(CATEGORICAL_STATISTICS, Bins(r, c, r, c))
    return {**out, **found, "psi_band": psi_band(found["psi"], thresholds),
            "verdict": verdict(found["psi"], found["chi2_p"], thresholds)}


def headline_fields() -> list[str]:
    """The field of each registered statistic that is logged to MLflow per drift row."""
    return list(dict.fromkeys(HEADLINE.values()))
