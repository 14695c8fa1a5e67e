"""Alert messages: one per incident and recipient, as text, escaped HTML and a webhook payload.

The on-call engineer reads the subject and the cause; the data scientist reads the symptoms
with their numbers and the mix/rate split; both follow the links to the day's report and
MLflow run. Every string from the data is escaped before it reaches HTML.
"""
from __future__ import annotations

import hashlib
import html
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from offline_eval.alerting import Recipient, Routing
from offline_eval.stats.incidents import Incident

MAX_SYMPTOMS = 25  # in the text; the payload and alerts_daily hold them all


@dataclass(frozen=True)
class Message:
    """One delivery: an incident (or a failed day) to one recipient."""

    message_id: str  # stable: the same incident to the same recipient on a rerun
    ds: str
    tier: str
    recipient: str
    channel: str  # email | webhook
    conn_id: str
    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    payload: dict[str, Any] = field(default_factory=dict)
    update: bool = False

    @property
    def digest(self) -> str:
        """What the recipient is told, without the update marker: a rerun that changes nothing
        has the same digest and is not sent again."""
        body = json.dumps(self.payload, sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def as_update(self) -> Message:
        return replace(self, update=True, subject=f"[update] {self.subject}",
                       payload={**self.payload, "update": True})


def _num(x: float | None, pct: bool) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.2%}" if pct else f"{x:.4g}"


RATE_METRICS = {"ctr", "cvr", "new_user_share", "new_user_coverage", "add_to_cart_rate", "repurchase_rate",
                "precision_at_5", "new_item_impression_share", "error_rate", "bot_impression_share"}


def symptom(a: Mapping[str, Any]) -> str:
    """One alert as a line: tier, rule, what, value against its reference and threshold, and
    the counts behind it."""
    pct = a["metric"] in RATE_METRICS
    where = a["metric"] if a["rule"].startswith("drift_") else f"{a['metric']}[{a['segment']}]"
    if a.get("variant"):
        where += f" {a['variant']}"
    if a["rule"].startswith("drift_"):
        what = f"PSI {_num(a['value'], False)} >= {a['threshold']:g}"
    elif a["rule"] == "ctr_drop":
        what = (f"{_num(a['value'], True)} vs {_num(a['baseline_mean'], True)} "
                f"({a['relative_change']:+.1%}, allowed {a['threshold']:+.0%})")
    elif a["rule"] == "baseline_3sd":
        what = (f"{_num(a['value'], pct)} outside [{_num(a['lower'], pct)}, {_num(a['upper'], pct)}] "
                f"(z {a['z']:+.1f})")
    elif a["rule"] == "latency_p95_up":
        what = (f"{_num(a['value'], False)} ms vs {_num(a['baseline_mean'], False)} ms "
                f"({a['relative_change']:+.1%}, allowed +{a['threshold']:.0%})")
    elif a["rule"] == "new_user_coverage":
        what = f"{_num(a['value'], pct)} below {_num(a['threshold'], pct)}"
    else:  # the fixed ceilings: serving errors, bot traffic, unknown item ids
        shares = a["metric"] in ("error_rate", "bot_impression_share")
        what = f"{_num(a['value'], shares)} above {_num(a['threshold'], shares)}"
    counts = ""
    if a.get("numerator") is not None and a.get("denominator"):
        counts = f"; {a['numerator']:.0f}/{a['denominator']:.0f}"
    return f"{a['tier']:<6} {a['rule']:<17} {where:<34} {what} ({a['reference']}){counts}"


def _split_lines(alerts: tuple[Mapping[str, Any], ...]) -> list[str]:
    lines, seen = [], set()
    for a in alerts:
        ctx = json.loads(a.get("context") or "{}")
        s = ctx.get("mix_rate")
        if not s or (s["metric"], ctx["reference_name"]) in seen:
            continue
        seen.add((s["metric"], ctx["reference_name"]))
        pct = s["metric"] != "gmv_per_user"
        pts = (lambda x: f"{x * 100:+.2f} pts") if pct else (lambda x: f"{x:+.2f}")
        n0, n1 = s["new_user_share"]
        lines.append(f"  {s['metric']} vs {ctx['reference_name']}: {_num(s['before'], pct)} -> "
                     f"{_num(s['after'], pct)} = mix {pts(s['mix'])} + rate {pts(s['rate'])}; new users "
                     f"{n0:.0%} -> {n1:.0%} of {s['denominator']}")
    return lines


def _evidence_lines(alerts: tuple[Mapping[str, Any], ...]) -> list[str]:
    lines, seen = [], set()
    for a in alerts:
        ctx = json.loads(a.get("context") or "{}")
        ref = ctx.get("reference_name")
        if ref in seen:
            continue
        seen.add(ref)
        if ctx.get("top_drift"):
            cells = ", ".join(f"{d['column']} {d['psi']:.2f} ({d['verdict']})" for d in ctx["top_drift"])
            lines.append(f"  most drifted features vs {ref}: {cells}")
        c = ctx.get("concept_drift")
        if c:
            lines.append(f"  concept drift vs {ref}: P(click | score) {c['mean_rel_change']:+.1%} "
                         f"({c['segment']}, same scores)")
    return lines


def incident_message(incident: Incident, recipient: Recipient, routing: Routing, links: Mapping[str, str]
                     ) -> Message | None:
    """The message ``recipient`` gets for ``incident``: all its symptoms, when at least one of
    them is of a tier routed to the recipient; None otherwise (minor tiers are never sent)."""
    mine = [t for t in ("severe", "medium", "minor") if recipient in routing.recipients_of(t)]
    if not incident.alerts_of(mine):
        return None
    lines = [incident.title, "", f"Cause: {incident.cause}", "", f"Symptoms ({len(incident.alerts)}):"]
    lines += [f"  {symptom(a)}" for a in incident.alerts[:MAX_SYMPTOMS]]
    if len(incident.alerts) > MAX_SYMPTOMS:
        lines.append(f"  ... {len(incident.alerts) - MAX_SYMPTOMS} more in alerts_daily "
                     f"(incident_id = '{incident.incident_id}')")
    split = _split_lines(incident.alerts)
    if split:
        lines += ["", "Why the business metrics moved (mix = new/returning users' shares, rate = within each):",
                  *split]
    evidence = _evidence_lines(incident.alerts)
    if evidence:
        lines += ["", "Evidence:", *evidence]
    lines += ["", *[f"{k}: {v}" for k, v in links.items()]]
    text = "\n".join(lines) + "\n"
    payload = {
        "incident_id": incident.incident_id, "tier": incident.tier, "title": incident.title,
        "model_name": incident.model_name, "model_version": incident.model_version, "ds": incident.ds,
        "cause_kind": incident.cause_kind, "cause": incident.cause, "links": dict(links), "update": False,
        "alerts": [{k: a.get(k) for k in ("alert_id", "tier", "rule", "reference", "variant", "segment", "metric",
                                          "value", "threshold", "baseline_mean", "numerator", "denominator")}
                   for a in incident.alerts],
    }
    return Message(_message_id(incident.incident_id, recipient.name), incident.ds, incident.tier, recipient.name,
                   recipient.channel, recipient.conn_id, recipient.to, incident.title, text,
                   _html(incident.title, text, links), payload)


def failure_message(dag_id: str, task_id: str, ds: str, error: str, log_url: str, recipient: Recipient) -> Message:
    """A day whose evaluation failed (severe): which task, why, where its log is."""
    title = f"[severe] {dag_id} {ds}: the day's evaluation failed in {task_id}"
    text = (f"{title}\n\nNothing downstream of {task_id} ran for {ds}: no result table, report or MLflow run "
            f"of that day changed.\n\nError:\n{error.strip()}\n\nTask log: {log_url}\n")
    iid = hashlib.sha1(f"{dag_id}|{ds}|{task_id}|day_failed".encode()).hexdigest()[:16]
    payload = {"incident_id": iid,
               "tier": "severe", "title": title, "ds": ds, "cause_kind": "day_failed", "cause": error.strip(),
               "task_id": task_id, "dag_id": dag_id, "links": {"task log": log_url}, "update": False, "alerts": []}
    return Message(_message_id(iid, recipient.name), ds, "severe", recipient.name,
                   recipient.channel, recipient.conn_id, recipient.to, title, text,
                   _html(title, text, {"task log": log_url}), payload)


def _message_id(incident_id: str, recipient: str) -> str:
    return hashlib.sha1(f"{incident_id}|{recipient}".encode()).hexdigest()[:16]


def _html(title: str, text: str, links: Mapping[str, str]) -> str:
    anchors = "".join(f'<li><a href="{html.escape(url, quote=True)}">{html.escape(name)}</a></li>'
                      for name, url in links.items())
    return (f"<html><body><h2>{html.escape(title)}</h2><pre style=\"font-size:13px\">{html.escape(text)}</pre>"
            f"<ul>{anchors}</ul></body></html>")
