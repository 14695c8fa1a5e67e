"""Alert context, the day's cause and incidents, on a tiny day worked by hand."""
from __future__ import annotations

import json

import pytest

from offline_eval.stats.incidents import DayEvidence, diagnose, explain, group, incident_id


def rows(new: tuple[int, int], returning: tuple[int, int], variant: str = "control") -> list[dict]:
    """CTR rows of one day: (clicks, impressions) of new and returning users, and their sum."""
    out = []
    for seg, (n, d) in (("new_users", new), ("returning_users", returning),
                        ("all", (new[0] + returning[0], new[1] + returning[1]))):
        out.append({"model_name": "m", "model_version": "v1", "variant": variant, "segment": seg, "metric": "ctr",
                    "value": n / d, "numerator": float(n), "denominator": float(d)})
    return out


# Before: new users 2/100 (2%), returning 36/400 (9%): CTR 7.6%, new users 20% of impressions.
# After:  new users 5/250 (2%), returning 22/250 (8.8%): CTR 5.4%, new users 50%.
# mix  = (0.5 - 0.2)(0.02 + 0.02)/2 + (0.5 - 0.8)(0.09 + 0.088)/2 = 0.006 - 0.0267 = -0.0207
# rate = 0 + (0.088 - 0.09)(0.8 + 0.5)/2 = -0.0013;   mix + rate = -0.022 = 0.054 - 0.076
BEFORE, AFTER = rows((2, 100), (36, 400)), rows((5, 250), (22, 250))
DRIFT = [
    {"reference": "previous_day", "column": "c_traffic_source", "psi": 0.56, "verdict": "severe", "n_reference": 500,
     "n_current": 500, "p_value": 1e-12},
    {"reference": "previous_day", "column": "f_x", "psi": 0.12, "verdict": "minor", "n_reference": 500,
     "n_current": 500, "p_value": 1e-4},
    {"reference": "previous_day", "column": "score", "psi": 0.05, "verdict": "none", "n_reference": 500,
     "n_current": 500, "p_value": 0.3},
]
CONCEPT = [{"reference": "previous_day", "segment": "all", "mean_rel_change": -0.05, "reference_end": "2026-06-17"}]
EVIDENCE = DayEvidence(today=AFTER, previous_day=BEFORE, drift=DRIFT, concept=CONCEPT)
CTR_ALERT = {"rule": "ctr_drop", "tier": "medium", "reference": "previous_day (2026-06-17)", "variant": "control",
             "segment": "all", "metric": "ctr", "value": 0.054, "threshold": -0.1, "baseline_mean": 0.076,
             "relative_change": 0.054 / 0.076 - 1}
DRIFT_ALERT = {"rule": "drift_severe", "tier": "medium", "reference": "previous_day (2026-06-17)", "variant": None,
               "segment": "all", "metric": "c_traffic_source", "value": 0.56, "threshold": 0.2}


def test_context_counts_split_drift_and_concept():
    ctr, drift = explain([CTR_ALERT, DRIFT_ALERT], EVIDENCE, ("m", "v1"), "2026-06-18")
    assert (ctr["numerator"], ctr["denominator"]) == (27.0, 500.0)
    ctx = json.loads(ctr["context"])
    assert ctx["reference_counts"] == {"numerator": 38.0, "denominator": 500.0, "days": 1}
    split = ctx["mix_rate"]
    assert (split["before"], split["after"]) == (pytest.approx(0.076), pytest.approx(0.054))
    assert split["mix"] == pytest.approx(-0.0207) and split["rate"] == pytest.approx(-0.0013)
    assert split["new_user_share"] == [pytest.approx(0.2), pytest.approx(0.5)]
    assert split["rates"]["returning_users"] == [pytest.approx(0.09), pytest.approx(0.088)]
    assert ctx["top_drift"] == [{"column": "c_traffic_source", "psi": 0.56, "verdict": "severe"},
                                {"column": "f_x", "psi": 0.12, "verdict": "minor"}]  # score did not drift
    assert ctx["concept_drift"] == {"segment": "all", "mean_rel_change": -0.05, "reference_end": "2026-06-17"}
    dctx = json.loads(drift["context"])
    assert dctx["counts"] == {"n_reference": 500, "n_current": 500, "p_value": 1e-12} and "mix_rate" not in dctx
    # Both share the day's cause: one incident.
    assert ctr["incident_id"] == drift["incident_id"] == incident_id("m", "v1", "2026-06-18", "population_shift")
    assert ctr["cause"] == ("new users went from 20% to 50% of impressions (vs previous day); the mix carries 94% "
                            "of the CTR move 7.60% -> 5.40%; drifted with it: c_traffic_source PSI 0.56")


def test_the_causes_in_order():
    # Same shares, lower rates within segments, and a drifted feature: not a population shift.
    flat = DayEvidence(today=rows((1, 100), (30, 400)), previous_day=BEFORE, drift=DRIFT, concept=CONCEPT)
    assert diagnose(flat) == ("feature_drift", "input features drifted (vs previous day): c_traffic_source PSI 0.56")
    concept = [{**CONCEPT[0], "segment": "new_users", "mean_rel_change": -0.5}]
    calm = DayEvidence(today=rows((1, 100), (30, 400)), previous_day=BEFORE, drift=DRIFT[1:], concept=concept)
    assert diagnose(calm) == ("concept_drift", "P(click | score) moved -50% for new_users at the same scores "
                                               "(vs previous day)")
    quiet = DayEvidence(today=rows((1, 100), (30, 400)), previous_day=BEFORE, drift=DRIFT[1:], concept=CONCEPT)
    assert diagnose(quiet)[0] == "metric_move"


def test_incidents_group_by_cause_and_take_the_most_urgent_tier():
    v1 = explain([CTR_ALERT, {**DRIFT_ALERT, "tier": "severe", "metric": "score"}], EVIDENCE, ("m", "v1"), "d")
    v2 = explain([{**CTR_ALERT, "variant": "treatment"}],
                 DayEvidence(today=rows((5, 250), (22, 250), "treatment"),
                             previous_day=rows((2, 100), (36, 400), "treatment")), ("m", "v2"), "d")
    table = [{**a, "model_name": "m", "model_version": v} for v, alerts in (("v1", v1), ("v2", v2)) for a in alerts]
    first, second = group(table, "2026-06-18")
    assert (first.model_version, first.tier, len(first.alerts), first.cause_kind) == ("v1", "severe", 2,
                                                                                       "population_shift")
    assert [a["tier"] for a in first.alerts] == ["severe", "medium"]
    assert (second.model_version, second.tier, len(second.alerts)) == ("v2", "medium", 1)
    assert first.title == "[severe] m v1 2026-06-18: population shift, 2 alerts"


def test_bot_traffic_comes_first_and_serving_is_its_own_incident():
    bot_rows = [{**r} for r in AFTER] + [
        {"model_name": "m", "model_version": "v1", "variant": "control", "segment": "all", "metric": m, "value": v,
         "numerator": None, "denominator": None}
        for m, v in (("bot_impression_share", 0.2131), ("ctr_clean", 0.0795), ("error_rate", 0.061),
                     ("latency_p95_ms", 71.6))]
    security = [{"kind": "burst_source", "key": "c0ffee", "requests": 3600, "impressions": 35780},
                {"kind": "automated_session", "key": "s-bot-0", "requests": 900},
                {"kind": "automated_session", "key": "s-bot-1", "requests": 900}]
    evidence = DayEvidence(today=bot_rows, previous_day=BEFORE, drift=DRIFT, concept=CONCEPT, security=security)
    kind, text = diagnose(evidence)
    assert kind == "bot_traffic"  # before the population shift the same rows show
    assert text == ("automated traffic: source c0ffee (3,600 requests); 2 sessions without a click at under 2 s a "
                    "page; 21.3% of the control arm's impressions; CTR without it 7.95% vs 5.40% with it")
    assert diagnose(evidence, bot_share=0.25)[0] == "population_shift"
    serving = {"rule": "serving_error_rate", "tier": "severe", "reference": "threshold 0.05", "variant": "control",
               "segment": "all", "metric": "error_rate", "value": 0.061, "threshold": 0.05}
    ctr, err = explain([CTR_ALERT, serving], evidence, ("m", "v1"), "2026-06-11")
    assert ctr["incident_id"] == incident_id("m", "v1", "2026-06-11", "bot_traffic")
    assert err["incident_id"] == incident_id("m", "v1", "2026-06-11", "serving")
    assert err["cause"] == "serving: error rate 6.10%, P95 72 ms"


def test_drift_is_read_against_the_previous_day_even_without_its_metrics():
    """A previous day that was only profiled (no metrics_daily counts): no split, but its drift
    rows still name the cause."""
    only_profiled = DayEvidence(today=AFTER, previous_day=[], drift=DRIFT, concept=CONCEPT)
    assert diagnose(only_profiled) == ("feature_drift",
                                       "input features drifted (vs previous day): c_traffic_source PSI 0.56")
