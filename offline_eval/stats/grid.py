"""The fixed fine grid every numeric profile is counted on (pure numpy, no IO).

A daily profile must merge into a 7- or 28-day reference exactly, and the reference's quantile
edges must be those of the whole window, not of one day. A grid that does not depend on the
data gives both: each day counts its values in the same buckets, a window is the sum of its
days' counts, and any quantile of the window is read off the summed counts.

The grid is logarithmic, as in DDSketch (Masson et al., VLDB 2019): bucket boundaries at
+-gamma**j with gamma = (1 + ALPHA) / (1 - ALPHA), so every bucket spans at most 0.2% of its
values' magnitude (relative accuracy ALPHA = 0.1%). Magnitudes below X_MIN share one bucket
around zero; beyond X_MAX the two outermost buckets are open. Bucket b is (B[b-1], B[b]] on the
sorted boundary array B, with B[-1] = -inf and B[len(B)] = +inf: the same convention as every
histogram in the project, so a value exactly on a boundary belongs to the bucket below it.

Why not a quantile sketch (KLL, t-digest): a sketch gives approximate ranks, so the counts on
the reference's edges, and the KS bound built on them, would carry the sketch's error. On the
grid every count is exact and the only approximation is where an edge can sit (within 0.2% of
the exact quantile value). Integer-valued features lose nothing: below 500 each integer has a
bucket of its own.

This module imports numpy only; the profile pass ships ``BOUNDARIES`` to the engine's Python
workers by value.
"""
from __future__ import annotations

import math

import numpy as np

ALPHA = 1e-3
GAMMA = (1 + ALPHA) / (1 - ALPHA)
X_MIN = 1e-9
X_MAX = 1e15
_J_MIN = math.floor(math.log(X_MIN) / math.log(GAMMA))
_J_MAX = math.ceil(math.log(X_MAX) / math.log(GAMMA))
# Positive boundaries gamma**j, ascending; the negative side mirrors them.
_POSITIVE = GAMMA ** np.arange(_J_MIN, _J_MAX + 1, dtype=float)
BOUNDARIES = np.concatenate([-_POSITIVE[::-1], _POSITIVE])
N_BUCKETS = len(BOUNDARIES) + 1  # bucket ids 0 .. len(BOUNDARIES)


def bucket_index(x: np.ndarray) -> np.ndarray:
    """Bucket id of every value (int64): b with BOUNDARIES[b-1] < x <= BOUNDARIES[b]; NaN gets -1.
    (numpy's vectorised binary search; as fast as computing it from a logarithm, and exact.)"""
    x = np.asarray(x, dtype=float)
    out = np.searchsorted(BOUNDARIES, x, side="left").astype(np.int64)
    out[np.isnan(x)] = -1
    return out


def upper(bucket: np.ndarray | int) -> np.ndarray:
    """The upper boundary of each bucket (+inf for the last)."""
    b = np.asarray(bucket, dtype=np.int64)
    return np.where(b < len(BOUNDARIES), BOUNDARIES[np.minimum(b, len(BOUNDARIES) - 1)], np.inf)


def lower(bucket: np.ndarray | int) -> np.ndarray:
    """The lower boundary of each bucket (-inf for the first)."""
    b = np.asarray(bucket, dtype=np.int64)
    return np.where(b > 0, BOUNDARIES[np.maximum(b - 1, 0)], -np.inf)


def quantile_edges(buckets: np.ndarray, counts: np.ndarray, probabilities: np.ndarray) -> list[float]:
    """For each probability q, the upper boundary of the bucket where the cumulative share of
    the counts first reaches q: F(edge) >= q > F(edge of the bucket below). Repeated edges
    (discrete features) collapse into one; an edge in the open top bucket is dropped."""
    order = np.argsort(buckets)
    b, c = np.asarray(buckets)[order], np.asarray(counts, dtype=float)[order]
    total = c.sum()
    if total <= 0:
        return []
    cum = np.cumsum(c) / total
    at = np.searchsorted(cum, np.asarray(probabilities, dtype=float) - 1e-12, side="left")
    edges = upper(b[np.minimum(at, len(b) - 1)])
    return sorted({float(e) for e in edges if np.isfinite(e)})
