"""A day's drift, concept drift and alerts, from its profile and its references' profiles (no
rows are read): the rows of ``drift_daily``, ``concept_drift_daily`` and ``alerts_daily``."""
from __future__ import annotations

from typing import Any

from offline_eval.alerting import BUILT_IN, AlertingConfig
from offline_eval.dates import Window
from offline_eval.errors import DataError
from offline_eval.stats.alerts import (
    absolute_alerts,
    coverage_alerts,
    ctr_drop_alerts,
    drift_alerts,
    latency_alerts,
    threshold_alerts,
)
from offline_eval.stats.drift import compare_categorical, compare_numeric
from offline_eval.stats.incidents import DayEvidence, explain
from offline_eval.stats.lifts import day_lifts
from offline_eval.stats.profile import Profile
from offline_eval.stats.quality import concept_drift
from offline_eval.stats.records import AlertRow, ConceptDriftRow, DriftRow
from offline_eval.thresholds import DEFAULT, ThresholdConfig, Thresholds

ALERT_THRESHOLDS = "baseline_7d"  # the window whose mean +- 3 sd bound the metrics
CONCEPT_SEGMENTS = ("all", "new_users", "returning_users")
References = dict[str, tuple[Window, dict[tuple, Profile]]]


def compare(reference: Profile, current: Profile, thresholds: Thresholds = DEFAULT) -> list[dict[str, Any]]:
    """Every column of the reference: drift of the current profile against it."""
    out = []
    for c, ref_numeric in reference.numeric.items():
        cur = current.numeric.get(c)
        if cur is None:
            raise DataError(f"column {c}: in the reference but not profiled today (check: monitored columns)")
        out.append(compare_numeric(c, ref_numeric, cur, thresholds))
    for c, ref_counts in reference.categorical.items():
        out.append(compare_categorical(c, ref_counts, current.categorical.get(c, {}), thresholds))
    return out


def drift_rows(current: dict[tuple, Profile], refs: References, config: ThresholdConfig | None = None
               ) -> tuple[list[DriftRow], list[str]]:
    """drift_daily rows (without ds) of every version against every reference, and notes on
    versions without one."""
    rows: list[DriftRow] = []
    notes: list[str] = []
    for name, (window, parsed) in refs.items():
        for key, cur in sorted(current.items()):
            ref = parsed.get(key)
            if ref is None or not any(p.n for p in ref.numeric.values()):
                notes.append(f"{key[0]} {key[1]}: no {name} reference (no traffic in the window ending {window.end})")
                continue
            for res in compare(ref, cur, (config or ThresholdConfig()).for_model(key[0])):
                rows.append(DriftRow.of(key, name, window.end, res))
    return rows, notes


def concept_rows(current: dict[tuple, Profile], refs: References) -> list[ConceptDriftRow]:
    """P(click | score bucket) per version and user segment against each reference."""
    out = []
    for name, (window, parsed) in refs.items():
        for key, cur in sorted(current.items()):
            ref = parsed.get(key)
            for segment in CONCEPT_SEGMENTS:
                base = ref.score_bins.get(segment) if ref is not None else None
                now = cur.score_bins.get(segment)
                if base is None or now is None or base.n == 0 or now.n == 0:
                    continue
                out.append(ConceptDriftRow.of(key, segment, name, window.end, concept_drift(base, now)))
    return out


def alert_rows(current: dict[tuple, Profile], refs: References, ds: str, config: ThresholdConfig | None = None,
               routing: AlertingConfig = BUILT_IN, evidence: dict[tuple, DayEvidence] | None = None,
               drift: list[DriftRow] | None = None) -> list[AlertRow]:
    """The day's alerts per version (rules of ``stats.alerts``), each with its tier (routing),
    its context and its incident (``stats.incidents``). ``evidence``: per version, the
    metrics_daily rows of the day and its references, and the drift and concept drift rows
    just computed; ``drift``: the day's drift rows (the drift rules)."""
    out = []
    for key, cur in sorted(current.items()):
        today = {k: s.values[ds] for k, s in cur.metrics.items() if ds in s.values}
        limits = (config or ThresholdConfig()).for_model(key[0])
        route = routing.for_model(key[0])
        found = []
        for name, (window, parsed) in refs.items():
            ref = parsed.get(key)
            base = {k: (s.mean, s.std, s.n) for k, s in ref.metrics.items()} if ref else {}
            found += ctr_drop_alerts(today, base, window.label, limits, widen=route.ctr_drop_widen(ds))
            found += latency_alerts(today, base, window.label, limits)
            if name == ALERT_THRESHOLDS:
                found += threshold_alerts(today, base, window.label, thresholds=limits)
            found += drift_alerts([r.to_row() for r in drift or () if (r.model_name, r.model_version) == key
                                   and r.reference == name], window.label, limits)
        found += coverage_alerts(today, limits) + absolute_alerts(today, limits)
        for a in found:
            a["tier"] = route.tier(a["rule"], a["metric"], a["segment"])
        explained = explain(found, (evidence or {}).get(key) or DayEvidence([]), key, ds, limits.bot_share_alert)
        out += [AlertRow.of(key, ds, a) for a in explained]
    return out


def lift_rows(current: dict[tuple, Profile], refs: References, ds: str) -> list[dict[str, Any]]:
    """lifts_daily rows (without ds): every version against its previous day and weekly
    baseline, and a treatment arm against the day's control arm (``stats.lifts``)."""
    out = []
    for key, cur in sorted(current.items()):
        same_model = {k: p for k, p in current.items() if k[0] == key[0]}
        control = {(v, m): mom for p in same_model.values() for (v, m), mom in p.moments.items() if v == "control"}
        control_versions = sorted({k[1] for k, p in same_model.items() if any(v == "control" for v, _ in p.moments)})
        references = {name: (window.label, parsed[key].moments) for name, (window, parsed) in refs.items()
                      if key in parsed}
        gmv = {}
        for (variant, segment, metric), stats in cur.metrics.items():
            if metric == "gmv" and segment == "all":
                for name, (_, parsed) in refs.items():
                    before = parsed[key].metrics.get((variant, segment, metric)) if key in parsed else None
                    gmv[(variant, name)] = (stats.values.get(ds), before.mean if before else None)
        label = f"control {', '.join(control_versions)}"
        for r in day_lifts(cur.moments, references, control, label, gmv):
            out.append({"model_name": key[0], "model_version": key[1], **r})
    return out
