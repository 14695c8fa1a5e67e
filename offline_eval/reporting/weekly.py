"""The weekly report: the 7 days side by side with the week and the week before, the week's
incidents and its drift against the week before. A Jinja2 template with autoescape: every
string from the data is escaped."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from offline_eval.reporting import fmt, render_template

HEADLINE = (
    ("ctr", "CTR", "pct"), ("cvr", "CVR", "pct"), ("gmv_per_user", "GMV per user", "num"), ("gmv", "GMV", "num"),
    ("impressions", "impressions", "int"), ("new_user_share", "new-user share", "pct"),
    ("new_user_coverage", "new-user coverage", "pct"), ("new_item_coverage", "new-item coverage", "pct"),
    ("long_tail_impression_share", "long-tail impressions", "pct"), ("auc", "AUC", "num"),
    ("calibration_ratio", "calibration ratio", "num"), ("latency_p95_ms", "P95 latency (ms)", "num"),
    ("error_rate", "error rate", "pct"), ("bot_impression_share", "bot impressions", "pct"),
    ("ctr_clean", "CTR without bots", "pct"),
)


def _fmt(value: float | None, kind: str) -> str:
    return fmt(value, kind, digits=3)


def render(*, model_name: str, model_version: str, days: Sequence[str], daily: Mapping[str, Mapping[str, float]],
           week: Mapping[str, float | None], previous: Mapping[str, float | None], incidents: Sequence[Any],
           drift: Sequence[Mapping[str, Any]]) -> str:
    """``daily``: ds -> metric -> value (segment all); ``week``/``previous``: metric -> value;
    ``incidents``: ``stats.incidents.Incident`` of the week; ``drift``: rows of the week's drift."""
    table = [{"label": label, "days": [_fmt(daily.get(d, {}).get(m), kind) for d in days],
              "week": _fmt(week.get(m), kind), "previous": _fmt(previous.get(m), kind)}
             for m, label, kind in HEADLINE if week.get(m) is not None or any(m in daily.get(d, {}) for d in days)]
    return render_template(
        "weekly.html.j2", title=f"{model_name} {model_version}: week ending {days[-1]}", model_name=model_name,
        model_version=model_version, days=list(days), missing=[d for d in days if d not in daily], table=table,
        incidents=[{"ds": i.ds, "tier": i.tier, "cause": i.cause, "alerts": len(i.alerts)} for i in incidents],
        drift=[{"column": d["column"], "psi": _fmt(d.get("psi"), "num"), "verdict": d["verdict"]}
               for d in sorted(drift, key=lambda d: -(d.get("psi") or 0))[:12]])
