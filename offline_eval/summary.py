"""The printed summary of a date range: per version and day CTR, CVR, GMV per user, new-user
share and new-user coverage, read from the published metrics (reports/.../metrics.json)."""
from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict

from offline_eval.config import Settings
from offline_eval.io.paths import day_report_dir
from offline_eval.stats.decompose import mix_rate

COLUMNS = (("ctr", "CTR", "{:6.2%}"), ("cvr", "CVR", "{:6.2%}"), ("gmv_per_user", "GMV/user", "{:8.2f}"),
           ("new_user_share", "new users", "{:6.1%}"), ("new_user_coverage", "coverage", "{:6.1%}"))
# A day-over-day relative CTR drop beyond this is marked (the seeds' "medium alert" rule).
CTR_DROP_ALERT = 0.10


def _dates(start: str, end: str) -> list[str]:
    d0, d1 = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [(d0 + dt.timedelta(days=i)).isoformat() for i in range((d1 - d0).days + 1)]


USER_SEGMENTS = ("new_users", "returning_users")
# metric -> what its denominator counts, for the printed explanation
DECOMPOSED = (("ctr", "impressions"), ("cvr", "clicks"), ("gmv_per_user", "exposed users"))


def load_rows(settings: Settings, model: str, start: str, end: str) -> dict[str, dict[str, list[dict]]]:
    """{version: {ds: metrics_daily rows}}, from what publish wrote."""
    out: dict[str, dict[str, list[dict]]] = defaultdict(dict)
    model_dir = settings.reports_dir / model
    versions = sorted(p.name for p in model_dir.iterdir() if p.is_dir()) if model_dir.exists() else []
    for version in versions:
        for ds in _dates(start, end):
            path = day_report_dir(settings, model, version, ds) / "metrics.json"
            if path.exists():
                out[version][ds] = json.loads(path.read_text())
    return out


def load_published(settings: Settings, model: str, start: str, end: str) -> dict[str, dict[str, dict[str, float]]]:
    """{version: {ds: {metric: value}}} for segment "all", from what publish wrote."""
    return {v: {ds: {r["metric"]: r["value"] for r in rows if r["segment"] == "all"} for ds, rows in days.items()}
            for v, days in load_rows(settings, model, start, end).items()}


def _by_segment(rows: list[dict], metric: str) -> dict[str, tuple[float, float]]:
    return {r["segment"]: (r["numerator"] or 0.0, r["denominator"] or 0.0) for r in rows
            if r["metric"] == metric and r["segment"] in USER_SEGMENTS and r["denominator"]}


def format_root_cause(rows: dict[str, dict[str, list[dict]]]) -> str:
    """For every flagged day (CTR drop above the alert), split the day-over-day change of CTR,
    CVR and GMV per user into mix (new vs returning users' shares) and rate effects."""
    lines = []
    for version in sorted(rows):
        days = sorted(rows[version])
        for prev, ds in zip(days, days[1:]):
            all_prev = {r["metric"]: r["value"] for r in rows[version][prev] if r["segment"] == "all"}
            all_cur = {r["metric"]: r["value"] for r in rows[version][ds] if r["segment"] == "all"}
            if not all_prev.get("ctr") or all_cur.get("ctr") is None or all_cur["ctr"] / all_prev["ctr"] - 1 >= -CTR_DROP_ALERT:
                continue
            lines += ["", f"Why {version} moved on {ds} (vs {prev}): mix = new/returning users' shares changed, "
                          "rate = the metric changed within each segment"]
            for metric, denominator in DECOMPOSED:
                before, after = _by_segment(rows[version][prev], metric), _by_segment(rows[version][ds], metric)
                if not before or not after:
                    continue
                d = mix_rate(before, after)
                pct = metric != "gmv_per_user"
                f = (lambda x: f"{x * 100:+.2f} pts") if pct else (lambda x: f"{x:+.2f}")
                v = (lambda x: f"{x:.2%}") if pct else (lambda x: f"{x:.2f}")
                lines.append(
                    f"  {metric:<13} {v(d.before)} -> {v(d.after)} ({f(d.change)}): mix {f(d.mix)}, rate {f(d.rate)}; "
                    f"new users {d.shares_before.get('new_users', 0):.0%} -> {d.shares_after.get('new_users', 0):.0%} "
                    f"of {denominator}; rate new {v(d.rates_before.get('new_users', 0))} -> "
                    f"{v(d.rates_after.get('new_users', 0))}, returning {v(d.rates_before.get('returning_users', 0))} -> "
                    f"{v(d.rates_after.get('returning_users', 0))}")
    return "\n" + "\n".join(lines) if lines else ""


def format_summary(data: dict[str, dict[str, dict[str, float]]], model: str) -> str:
    if not data:
        return f"no published metrics for model {model}"
    lines = [f"Daily summary of {model} (segment all; '<<' marks a day-over-day CTR drop above {CTR_DROP_ALERT:.0%})"]
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
                change = f"  {rel:+6.1%}" + ("  <<" if rel < -CTR_DROP_ALERT else "")
            lines.append(f"{ds:<11} {version:<8}{cells}{change}")
            prev_ctr = ctr
    return "\n".join(lines)


def daily_summary(settings: Settings, model: str, start: str, end: str) -> str:
    rows = load_rows(settings, model, start, end)
    alll = {v: {ds: {r["metric"]: r["value"] for r in day if r["segment"] == "all"} for ds, day in days.items()}
            for v, days in rows.items()}
    return format_summary(alll, model) + format_root_cause(rows)
