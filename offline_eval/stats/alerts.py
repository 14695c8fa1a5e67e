"""Alert rules on a day's metrics (pure, no IO); docs/drift.md.

* ``baseline_3sd`` (high): a monitored metric outside the baseline's mean +- ``sigma`` (3)
  standard deviations of its daily values, as NannyML sets thresholds from a reference period.
  Needs at least ``min_days`` (3) days in the baseline, and a non-zero standard deviation.
* ``ctr_drop`` (medium): CTR more than ``ctr_drop`` (10%) below the previous day, or below the
  baseline mean.

The numbers are ``offline_eval.thresholds.Thresholds`` fields (docs/thresholds.md).
"""
from __future__ import annotations

from collections.abc import Mapping

from offline_eval.thresholds import DEFAULT, Thresholds

MONITORED = ("ctr", "cvr", "gmv_per_user", "auc", "logloss", "ece", "calibration_ratio", "ndcg_at_10",
             "precision_at_5", "mrr", "new_user_share", "new_user_coverage")

Key = tuple  # (variant, segment, metric)


def threshold_alerts(today: Mapping[Key, float | None], baseline: Mapping[Key, tuple], reference: str,
                     monitored: tuple[str, ...] = MONITORED, thresholds: Thresholds = DEFAULT) -> list[dict]:
    out = []
    for key, value in sorted(today.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        variant, segment, metric = key
        if metric not in monitored or value is None or key not in baseline:
            continue
        mean, std, n = baseline[key]
        if mean is None or std is None or not std > 0 or (n or 0) < thresholds.min_days:
            continue
        lower, upper = mean - thresholds.sigma * std, mean + thresholds.sigma * std
        if not lower <= value <= upper:
            out.append({"rule": "baseline_3sd", "severity": "high", "reference": reference, "variant": variant,
                        "segment": segment, "metric": metric, "value": value, "baseline_mean": mean,
                        "baseline_std": std, "lower": lower, "upper": upper, "z": (value - mean) / std})
    return out


def ctr_drop_alerts(today: Mapping[Key, float | None], reference_values: Mapping[Key, tuple], reference: str,
                    thresholds: Thresholds = DEFAULT) -> list[dict]:
    """CTR (every variant and segment) more than ``thresholds.ctr_drop`` below the reference mean."""
    drop = thresholds.ctr_drop
    out = []
    for key, value in sorted(today.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        variant, segment, metric = key
        if metric != "ctr" or value is None or key not in reference_values:
            continue
        mean = reference_values[key][0]
        if mean and value / mean - 1 < -drop:
            out.append({"rule": "ctr_drop", "severity": "medium", "reference": reference, "variant": variant,
                        "segment": segment, "metric": metric, "value": value, "baseline_mean": mean,
                        "relative_change": value / mean - 1})
    return out
