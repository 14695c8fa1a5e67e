"""Alert rules on a day's metrics and drift (pure, no IO); docs/alerting.md.

Each rule returns plain dicts with the rule's own fields (``rule``, ``reference``, ``variant``,
``segment``, ``metric``, ``value``, ``threshold`` and what the rule measured). Which tier an
alert belongs to (severe, medium, minor) and who hears of it is routing, not statistics: see
``offline_eval.alerting`` and ``conf/alerting.yaml``.

* ``baseline_3sd``: a monitored metric outside the baseline's mean +- ``sigma`` (3) standard
  deviations of its daily values, as NannyML sets thresholds from a reference period. Needs at
  least ``min_days`` (3) days in the baseline, and a non-zero standard deviation.
* ``ctr_drop``: CTR more than ``ctr_drop`` (10%) below the previous day, or below the baseline
  mean; on a promotion day the allowed drop is widened by the calendar's amount.
* ``new_user_coverage``: the share of the day's new users who were shown anything is below
  ``new_user_coverage_min`` (95%).
* ``drift_severe`` / ``drift_minor``: a column of the day drifted against a reference
  (``stats.drift``'s verdict: PSI band and test p-value).
* ``serving_error_rate``: a version's share of failed requests above ``error_rate_max`` (5%).
* ``latency_p95_up``: P95 latency more than ``latency_rise`` (5%) above the reference's.
* ``bot_traffic``: flagged traffic (burst sources, automated sessions) at least
  ``bot_share_alert`` (2%) of a version's impressions.
* ``unknown_item_ids``: impressions, clicks or orders naming an item not in the catalogue.

The numbers are ``offline_eval.thresholds.Thresholds`` fields (docs/thresholds.md).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from offline_eval.thresholds import DEFAULT, Thresholds

MONITORED = ("ctr", "cvr", "gmv_per_user", "auc", "logloss", "ece", "calibration_ratio", "ndcg_at_10",
             "precision_at_5", "mrr", "new_user_share", "new_user_coverage")
RULES = ("baseline_3sd", "ctr_drop", "new_user_coverage", "drift_severe", "drift_minor", "serving_error_rate",
         "latency_p95_up", "bot_traffic", "unknown_item_ids")

Key = tuple  # (variant, segment, metric)


def _sorted(today: Mapping[Key, float | None]) -> list[tuple[Key, float | None]]:
    return sorted(today.items(), key=lambda kv: tuple(str(x) for x in kv[0]))


def threshold_alerts(today: Mapping[Key, float | None], baseline: Mapping[Key, tuple], reference: str,
                     monitored: tuple[str, ...] = MONITORED, thresholds: Thresholds = DEFAULT) -> list[dict]:
    out = []
    for key, value in _sorted(today):
        variant, segment, metric = key
        if metric not in monitored or value is None or key not in baseline:
            continue
        mean, std, n = baseline[key]
        if mean is None or std is None or not std > 0 or (n or 0) < thresholds.min_days:
            continue
        lower, upper = mean - thresholds.sigma * std, mean + thresholds.sigma * std
        if not lower <= value <= upper:
            out.append({"rule": "baseline_3sd", "reference": reference, "variant": variant, "segment": segment,
                        "metric": metric, "value": value, "threshold": thresholds.sigma, "baseline_mean": mean,
                        "baseline_std": std, "lower": lower, "upper": upper, "z": (value - mean) / std})
    return out


def ctr_drop_alerts(today: Mapping[Key, float | None], reference_values: Mapping[Key, tuple], reference: str,
                    thresholds: Thresholds = DEFAULT, widen: float = 0.0) -> list[dict]:
    """CTR (every variant and segment) more than ``thresholds.ctr_drop + widen`` below the
    reference mean (``widen``: a promotion day's allowance, from the alerting calendar)."""
    drop = thresholds.ctr_drop + widen
    out = []
    for key, value in _sorted(today):
        variant, segment, metric = key
        if metric != "ctr" or value is None or key not in reference_values:
            continue
        mean = reference_values[key][0]
        if mean and value / mean - 1 < -drop:
            out.append({"rule": "ctr_drop", "reference": reference, "variant": variant, "segment": segment,
                        "metric": metric, "value": value, "threshold": -drop, "baseline_mean": mean,
                        "lower": mean * (1 - drop), "relative_change": value / mean - 1})
    return out


def coverage_alerts(today: Mapping[Key, float | None], thresholds: Thresholds = DEFAULT) -> list[dict]:
    """New-user coverage (segment ``all``, every variant) below ``new_user_coverage_min``: an
    absolute floor, so its reference is the threshold itself."""
    floor = thresholds.new_user_coverage_min
    return [{"rule": "new_user_coverage", "reference": f"floor {floor:g}", "variant": variant, "segment": segment,
             "metric": metric, "value": value, "threshold": floor, "lower": floor}
            for (variant, segment, metric), value in _sorted(today)
            if metric == "new_user_coverage" and segment == "all" and value is not None and value < floor]


def drift_alerts(drift: Iterable[Mapping[str, Any]], reference: str, thresholds: Thresholds = DEFAULT) -> list[dict]:
    """A column whose drift verdict against ``reference`` is minor or severe (drift_daily rows of
    one version and one reference)."""
    out = []
    for r in sorted(drift, key=lambda r: r["column"]):
        if r["verdict"] not in ("minor", "severe"):
            continue
        band = thresholds.psi_severe if r["verdict"] == "severe" else thresholds.psi_minor
        out.append({"rule": f"drift_{r['verdict']}", "reference": reference, "variant": None, "segment": "all",
                    "metric": r["column"], "value": r["psi"], "threshold": band})
    return out


def absolute_alerts(today: Mapping[Key, float | None], thresholds: Thresholds = DEFAULT) -> list[dict]:
    """The rules with a fixed threshold (no reference): serving errors, bot traffic, unknown
    item ids; on segment ``all`` of every variant."""
    rules = (("serving_error_rate", "error_rate", thresholds.error_rate_max, lambda v, t: v > t),
             ("bot_traffic", "bot_impression_share", thresholds.bot_share_alert, lambda v, t: v >= t),
             ("unknown_item_ids", "unknown_item_ids", 0.0, lambda v, t: v > t))
    out = []
    for (variant, segment, metric), value in _sorted(today):
        for rule, name, threshold, fires in rules:
            if metric == name and segment == "all" and value is not None and fires(value, threshold):
                out.append({"rule": rule, "reference": f"threshold {threshold:g}", "variant": variant,
                            "segment": segment, "metric": metric, "value": value, "threshold": threshold,
                            "upper": threshold})
    return out


def latency_alerts(today: Mapping[Key, float | None], reference_values: Mapping[Key, tuple], reference: str,
                   thresholds: Thresholds = DEFAULT) -> list[dict]:
    """P95 latency more than ``latency_rise`` above the reference mean."""
    out = []
    for key, value in _sorted(today):
        variant, segment, metric = key
        if metric != "latency_p95_ms" or value is None or key not in reference_values:
            continue
        mean = reference_values[key][0]
        if mean and value / mean - 1 > thresholds.latency_rise:
            out.append({"rule": "latency_p95_up", "reference": reference, "variant": variant, "segment": segment,
                        "metric": metric, "value": value, "threshold": thresholds.latency_rise, "baseline_mean": mean,
                        "upper": mean * (1 + thresholds.latency_rise), "relative_change": value / mean - 1})
    return out
