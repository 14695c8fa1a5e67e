"""A week's metrics from its days (pure, no IO); docs/weekly.md.

For every (model, version, variant, segment, metric) of ``metrics_daily`` over the 7 days:

* a ratio (the days carry numerator and denominator): sum of numerators / sum of
  denominators, the week's own ratio (not a mean of daily ratios);
* a count (numerator, no denominator): the sum;
* ``peak_rps``: the largest day's;
* model quality (AUC, log loss, ECE, calibration ratio) of a version that serves one arm:
  recomputed from the week's merged score bins (``stats.quality``), the same estimator as a
  day's on the week's impressions;
* anything else (ranking metrics, latency percentiles, entropy): the mean of the days' values,
  weighted by nothing; a percentile of the week would need the week's raw distribution.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from offline_eval.stats.quality import ScoreBins, pointwise

POOLED_QUALITY = ("auc", "logloss", "ece", "calibration_ratio")
MAX_OF_DAYS = ("peak_rps",)
Key = tuple[str, str, str, str, str]  # model, version, variant, segment, metric


def week_metrics(days: Mapping[str, Sequence[Mapping[str, Any]]],
                 bins: Mapping[tuple[str, str], Mapping[str, ScoreBins]] | None = None) -> list[dict[str, Any]]:
    """``days``: ds -> metrics_daily rows; ``bins``: (model, version) -> user segment -> the
    week's merged score bins. Returns metrics_weekly rows (without ds), with ``days`` (how many
    days had the metric)."""
    grouped: dict[Key, list[Mapping[str, Any]]] = defaultdict(list)
    for rows in days.values():
        for r in rows:
            grouped[(r["model_name"], r["model_version"], r["variant"], r["segment"], r["metric"])].append(r)
    arms: dict[tuple[str, str], set[str]] = defaultdict(set)
    for name, version, variant, _, _ in grouped:
        arms[(name, version)].add(variant)
    out = []
    for key in sorted(grouped, key=lambda k: tuple(map(str, k))):
        rows = grouped[key]
        name, version, variant, segment, metric = key
        value, num, den = _aggregate(metric, rows)
        seg_bins = (bins or {}).get((name, version), {}).get(segment)
        if metric in POOLED_QUALITY and seg_bins is not None and seg_bins.n and len(arms[(name, version)]) == 1:
            value = pointwise(seg_bins)[metric]
            num = den = None
        out.append({"model_name": name, "model_version": version, "variant": variant, "segment": segment,
                    "metric": metric, "value": value, "numerator": num, "denominator": den, "days": len(rows)})
    return out


def _aggregate(metric: str, rows: Sequence[Mapping[str, Any]]) -> tuple[float | None, float | None, float | None]:
    values = [r["value"] for r in rows if r["value"] is not None]
    if metric in MAX_OF_DAYS:
        return (max(values) if values else None), None, None
    if all(r["numerator"] is not None and r["denominator"] is not None for r in rows):
        num = sum(r["numerator"] for r in rows)
        den = sum(r["denominator"] for r in rows)
        return (num / den if den else None), num, den
    if all(r["numerator"] is not None and r["denominator"] is None for r in rows) and all(
            r["value"] == r["numerator"] for r in rows):
        total = sum(r["numerator"] for r in rows)
        return total, total, None
    return (sum(values) / len(values) if values else None), None, None
