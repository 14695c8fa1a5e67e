"""The printed summary of a date range: per version and day CTR, CVR, GMV per user, new-user
share and new-user coverage, and for flagged days their causes, read from the result tables
(metrics_daily, drift_daily, concept_drift_daily, alerts_daily) through the IO layer."""
from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from typing import TYPE_CHECKING

from offline_eval.dates import date_range, offset, weekly_end, window_dates
from offline_eval.stats.decompose import DECOMPOSED, USER_SEGMENTS, mix_rate, pooled_totals, segment_totals
from offline_eval.stats.incidents import TIER_ORDER
from offline_eval.thresholds import DEFAULT, Thresholds
from offline_eval.thresholds import load as load_thresholds

if TYPE_CHECKING:
    from offline_eval.io.tables import Tables

COLUMNS = (("ctr", "CTR", "{:6.2%}"), ("cvr", "CVR", "{:6.2%}"), ("gmv_per_user", "GMV/user", "{:8.2f}"),
           ("new_user_share", "new users", "{:6.1%}"), ("new_user_coverage", "coverage", "{:6.1%}"))
# A day-over-day relative CTR drop beyond this is marked (the seeds' "medium alert" rule).


def load_rows(tables: Tables, model: str, start: str, end: str) -> dict[str, dict[str, list[dict]]]:
    """{version: {ds: metrics_daily rows}} of one model."""
    from offline_eval.io.results import day_rows

    out: dict[str, dict[str, list[dict]]] = defaultdict(dict)
    for ds, rows in day_rows(tables, "metrics_daily", date_range(start, end)).items():
        for r in rows:
            if r["model_name"] == model:
                out[r["model_version"]].setdefault(ds, []).append(r)
    return dict(out)


def _decomposition_lines(before: list[list[dict]], after: list[dict]) -> list[str]:
    """``before``: the rows of one or more days, pooled."""
    lines = []
    for metric, denominator in DECOMPOSED.items():
        b = pooled_totals(before, metric)
        a = segment_totals(after, metric)
        if not b or not a:
            continue
        d = mix_rate(b, a)
        pct = metric != "gmv_per_user"
        f = (lambda x: f"{x * 100:+.2f} pts") if pct else (lambda x: f"{x:+.2f}")
        v = (lambda x: f"{x:.2%}") if pct else (lambda x: f"{x:.2f}")
        lines.append(
            f"    {metric:<13} {v(d.before)} -> {v(d.after)} ({f(d.change)}): mix {f(d.mix)}, rate {f(d.rate)}; "
            f"new users {d.shares_before.get('new_users', 0):.0%} -> {d.shares_after.get('new_users', 0):.0%} "
            f"of {denominator}; rate new {v(d.rates_before.get('new_users', 0))} -> "
            f"{v(d.rates_after.get('new_users', 0))}, returning {v(d.rates_before.get('returning_users', 0))} -> "
            f"{v(d.rates_after.get('returning_users', 0))}")
    return lines


TOP_FEATURES = 5


def _drift_lines(drift: dict | None) -> list[str]:
    if not drift:
        return []
    lines = []
    for ref in ("previous_day", "baseline_7d"):
        rows = [r for r in drift.get("drift", []) if r["reference"] == ref and r.get("psi") is not None]
        if not rows:
            continue
        top = sorted(rows, key=lambda r: -r["psi"])[:TOP_FEATURES]
        cells = ", ".join(f"{r['column']} {r['psi']:.2f} ({r['verdict']})" for r in top)
        lines.append(f"  drifted features vs {ref} ({rows[0]['reference_end']}), PSI: {cells}")
    for r in drift.get("concept_drift", []):
        if r["reference"] == "baseline_7d" and r["segment"] in USER_SEGMENTS and r["mean_rel_change"] is not None:
            lines.append(f"  concept drift, {r['segment']}: P(click | score decile) {r['mean_rel_change']:+.1%} vs "
                         f"the week ending {r['reference_end']} at the same scores")
    return lines


def _alert_lines(alerts: list[dict] | None) -> list[str]:
    """The day's incidents (alerts sharing a cause), their cause and their first symptoms."""
    lines = []
    by_incident: dict[str, list[dict]] = {}
    for a in alerts or []:
        by_incident.setdefault(a["incident_id"], []).append(a)
    for rows in by_incident.values():
        rows.sort(key=lambda a: (TIER_ORDER[a["tier"]], a["rule"], a["reference"], a["segment"], a["metric"]))
        tiers = ", ".join(f"{sum(a['tier'] == t for a in rows)} {t}" for t in TIER_ORDER
                          if any(a["tier"] == t for a in rows))
        lines.append(f"  incident {rows[0]['incident_id']} ({rows[0]['tier']}; {len(rows)} alerts: {tiers}): "
                     f"{rows[0]['cause']}")
        picked = [a for a in rows if a["segment"] in ("all", *USER_SEGMENTS)][:6]
        cells = []
        for a in picked:
            ref = a["reference"].split(" ")[0]
            base = f" vs {a['baseline_mean']:.4g}" if a["baseline_mean"] is not None else ""
            cells.append(f"{a['tier']} {a['rule']} ({ref}): {a['metric']}[{a['segment']}] {a['value']:.4g}{base}")
        if cells:
            lines.append("    symptoms: " + "; ".join(cells) + (f" (+{len(rows) - len(picked)} more in alerts.json)"
                                                             if len(rows) > len(picked) else ""))
    return lines


def format_root_cause(rows: dict[str, dict[str, list[dict]]], drift: dict | None = None,
                      alerts: dict | None = None, since: str = "", thresholds: Thresholds = DEFAULT) -> str:
    """For every flagged day (CTR drop above the alert), split the change of CTR, CVR and GMV
    per user into mix (new vs returning users' shares) and rate effects, against the previous
    day and against the weekly baseline (the 7 days ending the Sunday before), and list the
    features that drifted most, the concept drift and the alerts of that day.

    ``drift`` / ``alerts``: {(version, ds): drift.json / alerts.json content}, as published."""
    drift, alerts = drift or {}, alerts or {}
    lines = []
    for version in sorted(rows):
        days = sorted(rows[version])
        for prev, ds in pairwise(days):
            if ds < since:
                continue
            all_prev = {r["metric"]: r["value"] for r in rows[version][prev] if r["segment"] == "all"}
            all_cur = {r["metric"]: r["value"] for r in rows[version][ds] if r["segment"] == "all"}
            if (
                not all_prev.get("ctr")
                or all_cur.get("ctr") is None
                or all_cur["ctr"] / all_prev["ctr"] - 1 >= -thresholds.ctr_drop
            ):
                continue
            lines += ["", f"Why {version} moved on {ds}: mix = new/returning users' shares changed, "
                          "rate = the metric changed within each segment"]
            lines.append(f"  vs the previous day ({prev}):")
            lines += _decomposition_lines([rows[version][prev]], rows[version][ds])
            week = [d for d in window_dates(weekly_end(ds), 7) if d in rows[version]]
            if week:
                lines.append(f"  vs the weekly baseline ({week[0]}..{week[-1]}, pooled):")
                lines += _decomposition_lines([rows[version][d] for d in week], rows[version][ds])
            lines += _drift_lines(drift.get((version, ds)))
            lines += _alert_lines(alerts.get((version, ds)))
    return "\n" + "\n".join(lines) if lines else ""


def format_summary(data: dict[str, dict[str, dict[str, float]]], model: str,
                   thresholds: Thresholds = DEFAULT) -> str:
    if not data:
        return f"no published metrics for model {model}"
    lines = [f"Daily summary of {model} (segment all; '<<' marks a day-over-day CTR drop above "
             f"{thresholds.ctr_drop:.0%})"]
    header = f"{'ds':<11} {'version':<8}" + "".join(f" {title:>9}" for _, title, _ in COLUMNS) + "  CTR d/d"
    for version in sorted(data):
        lines += ["", header, "-" * len(header)]
        prev_ctr = None
        for ds in sorted(data[version]):
            row = data[version][ds]
            cells = "".join(
                f" {fmt.format(row[m]) if row.get(m) is not None else '-':>9}" for m, _, fmt in COLUMNS
            )
            ctr = row.get("ctr")
            change = ""
            if ctr is not None and prev_ctr:
                rel = ctr / prev_ctr - 1
                change = f"  {rel:+6.1%}" + ("  <<" if rel < -thresholds.ctr_drop else "")
            lines.append(f"{ds:<11} {version:<8}{cells}{change}")
            prev_ctr = ctr
    return "\n".join(lines)


def _by_version_day(rows_by_day: dict[str, list[dict]], model: str) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for ds, rows in rows_by_day.items():
        for r in rows:
            if r["model_name"] == model:
                out[(r["model_version"], ds)].append(r)
    return dict(out)


def daily_summary(tables: Tables, model: str, start: str, end: str) -> str:
    from offline_eval.config import validate_identifier
    from offline_eval.io.results import concept_rows, day_rows

    validate_identifier(model, "model name")
    # The weekly baseline of the first days lies up to 13 days before start.
    rows = load_rows(tables, model, offset(start, -13), end)
    shown = {v: {ds: day for ds, day in days.items() if ds >= start} for v, days in rows.items()}
    alll = {v: {ds: {r["metric"]: r["value"] for r in day if r["segment"] == "all"} for ds, day in days.items()}
            for v, days in shown.items()}
    dates = date_range(start, end)
    drift = _by_version_day(day_rows(tables, "drift_daily", dates), model)
    concept = _by_version_day(concept_rows(tables, dates), model)
    drift_info = {
        k: {"drift": drift.get(k, []), "concept_drift": concept.get(k, [])} for k in set(drift) | set(concept)
    }
    order = {"previous_day": 0, "baseline_7d": 1, "ctr_drop": 0, "baseline_3sd": 1}
    alerts = {k: sorted(v, key=lambda a: (order.get(a["reference"].split(" ")[0], 9), order.get(a["rule"], 9),
                                          str(a["variant"]), a["segment"], a["metric"]))
              for k, v in _by_version_day(day_rows(tables, "alerts_daily", dates), model).items()}
    limits = load_thresholds().for_model(model)
    return (format_summary(alll, model, limits) + format_root_cause(rows, drift_info, alerts, since=start,
                                                                    thresholds=limits)
            + format_security(day_rows(tables, "security_daily", dates), shown))


def format_security(findings: dict[str, list[dict]], rows: dict[str, dict[str, list[dict]]]) -> str:
    """Days with bot traffic or unknown item ids: who, how much, and each version's CTR with and
    without the flagged traffic (metrics/serving.py)."""
    lines = []
    for ds in sorted(findings):
        found = findings[ds]
        bursts = [f for f in found if f["kind"] == "burst_source"]
        sessions = [f for f in found if f["kind"] == "automated_session"]
        unknown = [f for f in found if f["kind"] == "unknown_item"]
        cells = [f"burst source {f['key']}: {f['requests']:,} requests ({f['share_of_requests']:.1%} of the day's)"
                 for f in bursts]
        if sessions:
            cells.append(f"{len(sessions)} automated session{'s' if len(sessions) > 1 else ''} "
                         f"({sum(f['requests'] for f in sessions):,} requests, no click)")
        cells += [f"{f['impressions']:,} {f['key']} rows with unknown item ids" for f in unknown]
        for version in sorted(rows):
            day = {r["metric"]: r["value"] for r in rows[version].get(ds, []) if r["segment"] == "all"}
            if day.get("bot_impression_share"):
                cells.append(f"{version}: {day['bot_impression_share']:.1%} of impressions flagged, CTR "
                             f"{day['ctr']:.2%} ({day['ctr_clean']:.2%} without them)")
        lines.append(f"  {ds}: " + "; ".join(cells))
    return "\n\nSecurity (docs/serving.md):\n" + "\n".join(lines) if lines else ""


# readout metric -> key of the generator's ground truth (docs/demo_scenario.md)
TRUE_LIFTS = (("ctr", "ctr_relative_lift"), ("cvr", "cvr_relative_lift"),
              ("orders_per_user", "orders_per_user_relative_lift"), ("gmv_per_user", "gmv_per_user_relative_lift"))


def truth_check_lines(readout: dict, truth: dict, coverage: dict | None = None) -> list[str]:
    """For a readout of generated data: each metric's relative lift and interval next to the
    generator's true lift, and how many standard errors apart they are. A 95% interval misses
    the truth in 1 of 20 samples; ``coverage`` (bench/ab_coverage.json) says how often it
    covered it over many seeds."""
    true = truth.get("treatment_vs_control", truth)
    rows = {r["metric"]: r for r in readout.get("metrics", [])}
    lines = ["Readout vs the generator's true lifts (treatment vs control):"]
    for metric, key in TRUE_LIFTS:
        r = rows.get(metric)
        if r is None or key not in true or r.get("rel_ci_low") is None:
            continue
        lo, hi, lift, t = r["rel_ci_low"], r["rel_ci_high"], r["rel_lift"], true[key]
        se = (hi - lo) / (2 * 1.959963984540054)
        z = (lift - t) / se if se > 0 else float("nan")
        verdict = "covers the truth" if lo <= t <= hi else "misses the truth"
        line = (f"  {metric:<16} true {t:+.2%}  estimate {lift:+.2%} [{lo:+.2%}, {hi:+.2%}]  "
                f"{verdict} ({z:+.1f} SE)")
        cov = (coverage or {}).get("summary", {}).get(metric)
        if cov:
            line += f"; covered in {cov['coverage']:.0%} of {cov['seeds']} seeds"
        lines.append(line)
    return lines
