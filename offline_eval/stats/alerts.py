"""Alert rules on a day's metrics (pure, no IO); docs/drift.md.

* ``baseline_3sd`` (high): a monitored metric outside the baseline's mean +- 3 standard
  deviations of its daily values, as NannyML sets thresholds from a reference period. Needs
  at least ``MIN_DAYS`` days in the baseline, and a non-zero standard deviation.
* ``ctr_drop`` (medium): CTR more than 10% below the previous day, or below the baseline mean
  (the seeds' fixed rule).
"""
from __future__ import annotations

from collections.abc import Mapping

SIGMA = 3.0
MIN_DAYS = 3
CTR_DROP = 0.10
MONITORED = ("ctr", "cvr", "gmv_per_user", "auc", "logloss", "ece", "calibration_ratio", "ndcg_at_10",
             "precision_at_5", "mrr", "new_user_share", "new_user_coverage")

Key = tuple  # (variant, segment, metric)


def threshold_alerts(today: Mapping[Key, float | None], baseline: Mapping[Key, tuple], reference: str,
                     monitored: tuple[str, ...] = MONITORED) -> list[dict]:
    out = []
    for key, value in sorted(today.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        variant, segment, metric = key
        if metric not in monitored or value is None or key not in baseline:
            continue
        mean, std, n = baseline[key]
        if mean is None or std is None or not std > 0 or (n or 0) < MIN_DAYS:
            continue
        lower, upper = mean - SIGMA * std, mean + SIGMA * std
        if not lower <= value <= upper:
            out.append({"rule": "baseline_3sd", "severity": "high", "reference": reference, "variant": variant,
                        "segment": segment, "metric": metric, "value": value, "baseline_mean": mean,
                        "baseline_std": std, "lower": lower, "upper": upper, "z": (value - mean) / std})
    return out


def ctr_drop_alerts(today: Mapping[Key, float | None], reference_values: Mapping[Key, tuple], reference: str,
                    drop: float = CTR_DROP) -> list[dict]:
    """CTR (every variant and segment) more than ``drop`` below the reference mean."""
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
