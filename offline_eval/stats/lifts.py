"""Business lifts of a day (pure, no IO); docs/metrics.md.

Per model version and arm, today's CTR, CVR and GMV per user against three references: the
previous day, the weekly baseline (its 7 days pooled: units are user-days) and, on experiment
days, the control arm of the same day. The comparison is the A/B readout's own code
(``stats.ab``): CTR and CVR as ratios of per-user sums with a delta-method interval, GMV per
user as a difference of means (Welch); the relative lift's interval is Fieller-free delta
method as in the readout. Days are treated as independent samples (a user active on both days
counts in both), so a day-over-day interval is slightly too narrow for heavy repeat users.

Total GMV gets its relative change as a point estimate (a total has no per-unit variance
without a model of the number of users).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from offline_eval.stats.ab import Comparison, Moments, means, ratios

LIFTED: dict[str, Callable[[Moments, Moments], Comparison]] = {"ctr": ratios, "cvr": ratios, "gmv_per_user": means}
MIN_UNITS = 2


def compare(metric: str, reference: Moments, current: Moments) -> Comparison | None:
    if reference.n < MIN_UNITS or current.n < MIN_UNITS:
        return None
    if LIFTED[metric] is ratios and (reference.sum_x <= 0 or current.sum_x <= 0):
        return None
    return LIFTED[metric](reference, current)


def _row(variant: str, metric: str, reference: str, reference_label: str, c: Comparison) -> dict[str, Any]:
    return {"variant": variant, "metric": metric, "reference": reference, "reference_label": reference_label,
            "value": c.mean_variant, "reference_value": c.mean_control, "rel_lift": c.rel_lift,
            "rel_ci_low": c.rel_ci_low, "rel_ci_high": c.rel_ci_high, "p_value": c.p_value, "method": c.method}


def day_lifts(current: Mapping[tuple[str, str], Moments], references: Mapping[str, tuple[str, Mapping]],
              control: Mapping[tuple[str, str], Moments] | None = None, control_label: str = "",
              gmv: Mapping[tuple[str, str], tuple[float | None, float | None]] | None = None) -> list[dict[str, Any]]:
    """Lift rows of one model version. ``current``: its moments per (variant, metric);
    ``references``: name -> (label, moments) of the previous day and the weekly baseline;
    ``control``: the control arm's moments of the day (another version) for a treatment arm;
    ``gmv``: per (variant, reference), today's GMV and the reference's mean daily GMV."""
    out = []
    for (variant, metric), now in sorted(current.items()):
        if metric not in LIFTED:
            continue
        for name, (label, moments) in references.items():
            before = moments.get((variant, metric))
            c = compare(metric, before, now) if before is not None else None
            if c is not None:
                out.append(_row(variant, metric, name, label, c))
        base = (control or {}).get(("control", metric))
        if variant != "control" and base is not None:
            c = compare(metric, base, now)
            if c is not None:
                out.append(_row(variant, metric, "control_arm", control_label, c))
    for (variant, name), (today, mean) in sorted((gmv or {}).items()):
        if today is not None and mean:
            label = references[name][0] if name in references else ""
            out.append({"variant": variant, "metric": "gmv", "reference": name, "reference_label": label,
                        "value": today, "reference_value": mean, "rel_lift": today / mean - 1, "rel_ci_low": None,
                        "rel_ci_high": None, "p_value": None, "method": "point estimate (a total)"})
    return out
