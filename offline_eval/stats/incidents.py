"""Alerts with their context and cause, grouped into incidents (pure, no IO); docs/alerting.md.

For one model version and day, ``explain`` gives every alert the evidence an on-call engineer
needs without opening anything else:

* the counts behind the value (numerator and denominator of the metric, or the rows compared
  for a drift), and the reference's;
* for a business metric (CTR, CVR, GMV per user) the exact mix/rate split of its move against
  the alert's own reference (``stats.decompose``): did the new/returning users' shares move, or
  the metric within each segment;
* the most drifted features against that reference, with their PSI;
* the concept drift (P(click | score)) of the alert's user segment against that reference.

``diagnose`` names the day's cause once, from the same evidence, and every alert of the
version and day that it explains carries it: they form one incident (``incident_id``), so the
on-call receives one message listing the symptoms, not one message per symptom.

Causes, first match wins:

* ``bot_traffic``: flagged traffic (burst sources, automated sessions; ``metrics.serving``) is at
  least ``bot_share`` of the version's impressions: named by source, with the CTR without it;
* ``population_shift``: the new users' share of impressions moved by at least
  ``SHIFT_POINTS`` and the mix effect carries at least half of the CTR move;
* ``feature_drift``: a feature drifted severely;
* ``concept_drift``: P(click | score) moved by at least ``CONCEPT_MOVE`` (relative) in a segment;
* ``metric_move``: none of the above (the metrics moved within segments, inputs stable).

Serving alerts (error rate, latency) have a cause of their own, ``serving``: a slow or failing
service is a different incident from what the users did, even on the same day.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from offline_eval.stats.decompose import DECOMPOSED, USER_SEGMENTS, mix_rate, pooled_totals, segment_totals

SHIFT_POINTS = 0.05
CONCEPT_MOVE = 0.10
TOP_FEATURES = 3
TIER_ORDER = {"severe": 0, "medium": 1, "minor": 2}
SERVING_RULES = ("serving_error_rate", "latency_p95_up")
CAUSE_TITLES = {
    "bot_traffic": "bot traffic",
    "serving": "serving degradation",
    "population_shift": "population shift",
    "feature_drift": "input feature drift",
    "concept_drift": "concept drift",
    "metric_move": "metric move within segments",
    "day_failed": "the day's evaluation failed",
}


@dataclass(frozen=True)
class DayEvidence:
    """What the day's tables say about one model version: metrics_daily rows of the day, of the
    previous day and of the weekly baseline's days; drift_daily and concept_drift_daily rows."""

    today: list[Mapping[str, Any]]
    previous_day: list[Mapping[str, Any]] = field(default_factory=list)
    week: list[list[Mapping[str, Any]]] = field(default_factory=list)
    drift: list[Mapping[str, Any]] = field(default_factory=list)
    concept: list[Mapping[str, Any]] = field(default_factory=list)
    security: list[Mapping[str, Any]] = field(default_factory=list)  # security_daily rows of the day

    def reference_rows(self, reference: str) -> list[list[Mapping[str, Any]]]:
        if reference == "baseline_7d":
            return [d for d in self.week if d]
        return [self.previous_day] if self.previous_day else []


def reference_name(label: str) -> str:
    """``previous_day (2026-06-17)`` -> ``previous_day``; an absolute floor compares with the
    previous day for its context."""
    name = label.split(" ", 1)[0]
    return name if name in ("previous_day", "baseline_7d") else "previous_day"


def _counts(rows: list[Mapping[str, Any]], variant: str | None, segment: str, metric: str
            ) -> tuple[float | None, float | None]:
    for r in rows:
        if r["metric"] == metric and r["segment"] == segment and (variant is None or r["variant"] == variant):
            return r["numerator"], r["denominator"]
    return None, None


def _split(before: list[list[Mapping]], after: list[Mapping], metric: str, variant: str | None
           ) -> dict[str, Any] | None:
    b, a = pooled_totals(before, metric, variant), segment_totals(after, metric, variant)
    if not b or not a:
        return None
    try:
        d = mix_rate(b, a)
    except ValueError:
        return None
    return {"metric": metric, "denominator": DECOMPOSED[metric], "before": d.before, "after": d.after,
            "change": d.change, "mix": d.mix, "rate": d.rate,
            "new_user_share": [d.shares_before.get("new_users", 0.0), d.shares_after.get("new_users", 0.0)],
            "rates": {s: [d.rates_before.get(s, 0.0), d.rates_after.get(s, 0.0)] for s in USER_SEGMENTS}}


def top_drift(drift: Sequence[Mapping[str, Any]], reference: str, n: int = TOP_FEATURES) -> list[dict[str, Any]]:
    rows = [r for r in drift if r["reference"] == reference and r.get("psi") is not None
            and r["verdict"] in ("minor", "severe")]
    return [{"column": r["column"], "psi": r["psi"], "verdict": r["verdict"]}
            for r in sorted(rows, key=lambda r: (-r["psi"], r["column"]))[:n]]


def _concept(concept: Sequence[Mapping[str, Any]], reference: str, segment: str) -> dict[str, Any] | None:
    seg = segment if segment in USER_SEGMENTS else "all"
    for r in concept:
        if r["reference"] == reference and r["segment"] == seg and r.get("mean_rel_change") is not None:
            return {"segment": seg, "mean_rel_change": r["mean_rel_change"], "reference_end": r["reference_end"]}
    return None


def context(alert: Mapping[str, Any], evidence: DayEvidence) -> dict[str, Any]:
    """The evidence behind one alert (see the module's docstring)."""
    ref = reference_name(alert["reference"])
    out: dict[str, Any] = {"reference_name": ref}
    if alert["rule"].startswith("drift_"):
        for r in evidence.drift:
            if r["reference"] == ref and r["column"] == alert["metric"]:
                out["counts"] = {"n_reference": r["n_reference"], "n_current": r["n_current"],
                                 "p_value": r.get("p_value")}
    else:
        num, den = _counts(evidence.today, alert.get("variant"), alert["segment"], alert["metric"])
        out["counts"] = {"numerator": num, "denominator": den}
        before = evidence.reference_rows(ref)
        if before:
            sums = [_counts(rows, alert.get("variant"), alert["segment"], alert["metric"]) for rows in before]
            if all(n is not None and d is not None for n, d in sums):
                out["reference_counts"] = {"numerator": sum(n for n, _ in sums),
                                           "denominator": sum(d for _, d in sums),
                                           "days": len(sums)}
        if alert["metric"] in DECOMPOSED and alert["segment"] == "all":
            out["mix_rate"] = _split(before, evidence.today, alert["metric"], alert.get("variant"))
    out["top_drift"] = top_drift(evidence.drift, ref)
    out["concept_drift"] = _concept(evidence.concept, ref, alert["segment"])
    return out


def _worst(rows: Sequence[Mapping[str, Any]], metric: str) -> Mapping[str, Any] | None:
    """The row of ``metric`` (segment all) with the largest value over the version's arms."""
    found = [r for r in rows if r["metric"] == metric and r["segment"] == "all" and r["value"] is not None]
    return max(found, key=lambda r: r["value"]) if found else None


def _bots(evidence: DayEvidence, bot_share: float) -> str | None:
    share = _worst(evidence.today, "bot_impression_share")
    if share is None or share["value"] < bot_share:
        return None
    sources = [f for f in evidence.security if f["kind"] == "burst_source"]
    sessions = [f for f in evidence.security if f["kind"] == "automated_session"]
    who = ", ".join(f"source {f['key']} ({f['requests']:,} requests)" for f in sources[:2]) or "automated sessions"
    text = (f"automated traffic: {who}; {len(sessions)} session{'s' if len(sessions) != 1 else ''} without a "
            f"click at under 2 s a page; {share['value']:.1%} of the {share['variant']} arm's impressions")
    ctr = [r for r in evidence.today if r["segment"] == "all" and r["variant"] == share["variant"]
           and r["metric"] in ("ctr", "ctr_clean")]
    by = {r["metric"]: r["value"] for r in ctr}
    if by.get("ctr") is not None and by.get("ctr_clean") is not None:
        text += f"; CTR without it {by['ctr_clean']:.2%} vs {by['ctr']:.2%} with it"
    return text


def _serving(evidence: DayEvidence) -> str:
    parts = []
    for metric, fmt in (("error_rate", "error rate {:.2%}"), ("latency_p95_ms", "P95 {:.0f} ms")):
        r = _worst(evidence.today, metric)
        if r is not None:
            parts.append(fmt.format(r["value"]))
    return "serving: " + (", ".join(parts) or "see the symptoms")


def diagnose(evidence: DayEvidence, bot_share: float = 0.02) -> tuple[str, str]:
    """The day's cause for one version: ``(kind, one-line explanation)`` (see the module)."""
    bots = _bots(evidence, bot_share)
    if bots:
        return "bot_traffic", bots
    # The previous day when it has what the step needs (its metrics for the split; its drift
    # rows for drift), else the weekly baseline: a day whose previous day was only profiled
    # has drift against it but no metrics_daily counts.
    ref = "previous_day" if evidence.previous_day else "baseline_7d"
    split = _split(evidence.reference_rows(ref), evidence.today, "ctr", None)
    drift_ref = "previous_day" if any(r["reference"] == "previous_day" for r in evidence.drift) else "baseline_7d"
    drifted = [d for d in top_drift(evidence.drift, drift_ref, n=10) if d["verdict"] == "severe"]
    feats = ", ".join(f"{d['column']} PSI {d['psi']:.2f}" for d in drifted[:TOP_FEATURES])
    concept = [r for r in evidence.concept if r["reference"] == drift_ref and r.get("mean_rel_change") is not None
               and abs(r["mean_rel_change"]) >= CONCEPT_MOVE]
    where = f"vs {ref.replace('_', ' ')}"
    if split:
        s0, s1 = split["new_user_share"]
        if abs(s1 - s0) >= SHIFT_POINTS and split["change"] and split["mix"] / split["change"] >= 0.5:
            text = (f"new users went from {s0:.0%} to {s1:.0%} of impressions ({where}); the mix carries "
                    f"{split['mix'] / split['change']:.0%} of the CTR move {split['before']:.2%} -> "
                    f"{split['after']:.2%}")
            return "population_shift", text + (f"; drifted with it: {feats}" if feats else "")
    where = f"vs {drift_ref.replace('_', ' ')}"
    if drifted:
        return "feature_drift", f"input features drifted ({where}): {feats}"
    if concept:
        worst = max(concept, key=lambda r: abs(r["mean_rel_change"]))
        return "concept_drift", (f"P(click | score) moved {worst['mean_rel_change']:+.0%} for {worst['segment']} "
                                 f"at the same scores ({where})")
    return "metric_move", f"metrics moved within segments with stable inputs ({where})"


def incident_id(model: str, version: str, ds: str, cause: str) -> str:
    return hashlib.sha1(f"{model}|{version}|{ds}|{cause}".encode()).hexdigest()[:16]


def explain(alerts: list[dict[str, Any]], evidence: DayEvidence, key: tuple[str, str], ds: str,
            bot_share: float = 0.02) -> list[dict[str, Any]]:
    """The alerts of one version and day with ``context`` (JSON), ``cause`` and ``incident_id``;
    the counts behind each value as ``numerator``/``denominator``."""
    if not alerts:
        return []
    day_kind, day_text = diagnose(evidence, bot_share)
    out = []
    for a in alerts:
        kind, text = ("serving", _serving(evidence)) if a["rule"] in SERVING_RULES else (day_kind, day_text)
        ctx = context(a, evidence)
        counts = ctx.get("counts", {})
        out.append({**a, "numerator": counts.get("numerator"), "denominator": counts.get("denominator"),
                    "cause": text, "incident_id": incident_id(key[0], key[1], ds, kind),
                    "context": json.dumps({"cause_kind": kind, **ctx}, sort_keys=True, allow_nan=False,
                                          default=_none)})
    return out


def _none(value: Any) -> None:
    return None


@dataclass(frozen=True)
class Incident:
    """The alerts of one model version and day that share a cause."""

    incident_id: str
    model_name: str
    model_version: str
    ds: str
    tier: str  # the most urgent of its alerts
    cause_kind: str
    cause: str
    alerts: tuple[Mapping[str, Any], ...]

    @property
    def title(self) -> str:
        return (f"[{self.tier}] {self.model_name} {self.model_version} {self.ds}: "
                f"{CAUSE_TITLES.get(self.cause_kind, self.cause_kind)}, {len(self.alerts)} alert"
                f"{'s' if len(self.alerts) != 1 else ''}")

    def alerts_of(self, tiers: Sequence[str]) -> list[Mapping[str, Any]]:
        return [a for a in self.alerts if a["tier"] in tiers]


def group(rows: Sequence[Mapping[str, Any]], ds: str) -> list[Incident]:
    """alerts_daily rows of a day -> incidents, most urgent first; alerts inside an incident are
    ordered by tier, then by rule, reference, segment and metric."""
    by_id: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_id.setdefault(r["incident_id"], []).append(r)
    out = []
    for iid, alerts in by_id.items():
        alerts.sort(key=lambda a: (TIER_ORDER[a["tier"]], a["rule"], a["reference"], str(a["variant"]),
                                   a["segment"], a["metric"]))
        kind = json.loads(alerts[0]["context"] or "{}").get("cause_kind", "metric_move")
        out.append(Incident(iid, alerts[0]["model_name"], alerts[0]["model_version"], ds, alerts[0]["tier"], kind,
                            alerts[0]["cause"] or "", tuple(alerts)))
    return sorted(out, key=lambda i: (TIER_ORDER[i.tier], i.model_name, i.model_version, i.incident_id))
