"""Why did a ratio metric move? Mix effect vs rate effect across segments (pure, no IO).

A ratio over segments is R = sum_s w_s r_s, where w_s = d_s / sum(d) is the segment's share of
the denominator (impressions for CTR, clicks for CVR, users for GMV per user) and r_s = n_s / d_s
its rate. Between two periods,

    dR = sum_s (w1_s - w0_s) (r0_s + r1_s) / 2     (mix: the shares moved)
       + sum_s (r1_s - r0_s) (w0_s + w1_s) / 2     (rate: the metric moved within segments)

The midpoint weights make the split exact (no residual) and symmetric in time. The segments
must partition the population (new + returning users).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class MixRate:
    before: float
    after: float
    mix: float
    rate: float
    shares_before: dict[str, float]
    shares_after: dict[str, float]
    rates_before: dict[str, float]
    rates_after: dict[str, float]

    @property
    def change(self) -> float:
        return self.after - self.before

    @property
    def mix_share(self) -> float:
        """Part of the change due to mix (can exceed 1 when rates moved the other way)."""
        return self.mix / self.change if self.change else float("nan")


def mix_rate(before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]) -> MixRate:
    """``{segment: (numerator, denominator)}`` of two periods -> the exact mix/rate split."""
    segments = sorted(set(before) | set(after))
    d0 = sum(before.get(s, (0.0, 0.0))[1] for s in segments)
    d1 = sum(after.get(s, (0.0, 0.0))[1] for s in segments)
    if d0 <= 0 or d1 <= 0:
        raise ValueError("both periods need a positive denominator")

    def parts(period: Mapping[str, tuple[float, float]], total: float) -> tuple[dict, dict]:
        shares, rates = {}, {}
        for s in segments:
            n, d = period.get(s, (0.0, 0.0))
            shares[s] = d / total
            rates[s] = n / d if d else 0.0
        return shares, rates

    w0, r0 = parts(before, d0)
    w1, r1 = parts(after, d1)
    mix = sum((w1[s] - w0[s]) * (r0[s] + r1[s]) / 2 for s in segments)
    rate = sum((r1[s] - r0[s]) * (w0[s] + w1[s]) / 2 for s in segments)
    total0 = sum(w0[s] * r0[s] for s in segments)
    total1 = sum(w1[s] * r1[s] for s in segments)
    return MixRate(total0, total1, mix, rate, w0, w1, r0, r1)


USER_SEGMENTS = ("new_users", "returning_users")  # the partition that mix/rate splits over
# metric -> what its denominator counts
DECOMPOSED = {"ctr": "impressions", "cvr": "clicks", "gmv_per_user": "exposed users"}


def segment_totals(rows: list[Mapping], metric: str, variant: str | None = None) -> dict[str, tuple[float, float]]:
    """``{segment: (numerator, denominator)}`` of ``metric`` over the user segments, from
    metrics_daily rows (of one version; of one variant when given)."""
    return {r["segment"]: (r["numerator"] or 0.0, r["denominator"] or 0.0) for r in rows
            if r["metric"] == metric and r["segment"] in USER_SEGMENTS and r["denominator"]
            and (variant is None or r["variant"] == variant)}


def pooled_totals(days: list[list[Mapping]], metric: str, variant: str | None = None
                  ) -> dict[str, tuple[float, float]]:
    """Segment numerators and denominators summed over several days (a baseline window)."""
    out: dict[str, tuple[float, float]] = {}
    for rows in days:
        for seg, (num, den) in segment_totals(rows, metric, variant).items():
            n0, d0 = out.get(seg, (0.0, 0.0))
            out[seg] = (n0 + num, d0 + den)
    return out
