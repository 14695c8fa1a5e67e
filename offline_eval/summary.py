"""The printed summary of a date range: per version and day CTR, CVR, GMV per user, new-user
share and new-user coverage, read from the published metrics (reports/.../metrics.json)."""
from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict

from offline_eval.config import Settings
from offline_eval.io.paths import day_report_dir

COLUMNS = (("ctr", "CTR", "{:6.2%}"), ("cvr", "CVR", "{:6.2%}"), ("gmv_per_user", "GMV/user", "{:8.2f}"),
           ("new_user_share", "new users", "{:6.1%}"), ("new_user_coverage", "coverage", "{:6.1%}"))
# A day-over-day relative CTR drop beyond this is marked (the seeds' "medium alert" rule).
CTR_DROP_ALERT = 0.10


def _dates(start: str, end: str) -> list[str]:
    d0, d1 = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [(d0 + dt.timedelta(days=i)).isoformat() for i in range((d1 - d0).days + 1)]


def load_published(settings: Settings, model: str, start: str, end: str) -> dict[str, dict[str, dict[str, float]]]:
    """{version: {ds: {metric: value}}} for segment "all", from what publish wrote."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    model_dir = settings.reports_dir / model
    versions = sorted(p.name for p in model_dir.iterdir() if p.is_dir()) if model_dir.exists() else []
    for version in versions:
        for ds in _dates(start, end):
            path = day_report_dir(settings, model, version, ds) / "metrics.json"
            if path.exists():
                rows = json.loads(path.read_text())
                out[version][ds] = {r["metric"]: r["value"] for r in rows if r["segment"] == "all"}
    return out


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
    return format_summary(load_published(settings, model, start, end), model)
