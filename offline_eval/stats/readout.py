"""Assemble an A/B readout from per-arm moments: SRM first, then every metric of every
variant against control, with the chosen multiple-testing correction across the family."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from offline_eval.stats.ab import (
    SRM_ALPHA,
    Comparison,
    Moments,
    adjust_pvalues,
    cuped,
    means,
    ratios,
    srm,
    two_proportions,
)

CORRECTIONS = ("none", "holm", "bh")


def _compare(kind: str, has_covariate: bool, c: Moments, v: Moments, alpha: float, equal_var: bool) -> Comparison:
    if kind == "ratio":
        return ratios(c, v, alpha)
    if has_covariate:
        return cuped(c, v, alpha)
    if kind == "proportion":
        return two_proportions(c, v, alpha)
    return means(c, v, alpha, equal_var=equal_var)


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def build_readout(
    arms: Mapping[str, Mapping[str, Moments]],
    counts: Mapping[str, int],
    metrics: Sequence[tuple[str, str, bool]],
    control: str,
    *,
    alpha: float = 0.05,
    correction: str = "none",
    equal_var: bool = False,
    weights: Mapping[str, float] | None = None,
    guardrails: Sequence[str] = (),
    srm_alpha: float = SRM_ALPHA,
) -> dict[str, Any]:
    """``arms[variant][metric]`` moments; ``metrics`` = (name, kind, has_covariate)."""
    if control not in counts:
        raise ValueError(f"control arm {control!r} not found; arms are {sorted(counts)}")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}")
    s = srm(dict(counts), dict(weights) if weights else None, alpha=srm_alpha)
    rows: list[dict[str, Any]] = []
    for variant in sorted(v for v in counts if v != control):
        for name, kind, has_cov in metrics:
            cmp_ = _compare(kind, has_cov, arms[control][name], arms[variant][name], alpha, equal_var)
            row = {"metric": name, "variant": variant, "control": control, "kind": kind,
                   "n_control": counts[control], "n_variant": counts[variant], **asdict(cmp_),
                   "guardrail": name in guardrails}
            rows.append({k: _finite(v) if isinstance(v, float) else v for k, v in row.items()})
    adjusted = adjust_pvalues([r["p_value"] for r in rows], correction)
    for r, p in zip(rows, adjusted, strict=True):
        r["p_value_adjusted"] = p
        r["significant"] = p < alpha
    return {
        "srm": {"chi2": s.chi2, "p_value": s.p_value, "counts": s.counts, "expected": s.expected, "flag": s.flag},
        "alpha": alpha,
        "correction": correction,
        "metrics": rows,
    }
