"""The daily report page of one model version: the day's answer first (headline metrics against
the previous day and the weekly baseline, the incidents, the most drifted features, the model's
quality on every impression), then Evidently's widgets on the day's sample.

Pure rendering: the rows come from the result tables (read by io/), Evidently's widget data and
the viewer's location from io/evidently_report.py. A Jinja2 template with autoescape: every
string from the data is escaped; the one block inserted unescaped is Evidently's JSON, which the
caller makes inert (``safe_html``)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from offline_eval.reporting import fmt, render_template

if TYPE_CHECKING:
    pass

# (metric, label, kind) of the headline, from metrics_daily's names (segment "all").
HEADLINE = (("ctr", "CTR", "pct"), ("cvr", "CVR", "pct"), ("gmv_per_user", "GMV per user", "num"),
            ("auc", "AUC", "num"), ("new_user_share", "new-user share", "pct"))
QUALITY = (("auc", "AUC", "num"), ("logloss", "log loss", "num"), ("ece", "ECE", "num"),
           ("calibration_ratio", "calibration ratio (clicks / sum of scores)", "num"))
REFERENCES = (("previous_day", "previous day"), ("baseline_7d", "weekly baseline"))
DRIFT_REFERENCE = "previous_day"
TOP_DRIFTED = 5
TIER_ORDER = {"severe": 0, "medium": 1, "minor": 2}


@dataclass(frozen=True)
class DayHeadline:
    """The day's rows of one model version, as publish reads them: ``metrics`` (metrics_daily),
    ``lifts`` (lifts_daily), ``incidents`` (publish's incident summaries: title, tier, cause,
    alert_ids), ``drift`` (drift_daily) and ``concept`` (concept_drift_daily, buckets parsed)."""

    metrics: Sequence[Mapping[str, Any]] = ()
    lifts: Sequence[Mapping[str, Any]] = ()
    incidents: Sequence[Mapping[str, Any]] = ()
    drift: Sequence[Mapping[str, Any]] = ()
    concept: Sequence[Mapping[str, Any]] = ()
    # The day's input validation: its status, and the URL of its Data Docs relative to the page.
    validation: str | None = None
    data_docs: str | None = None


@dataclass(frozen=True)
class FeatureStats:
    """One column's statistics on the day's sample (``current``) and the previous day's
    (``reference``): missing, and mean/p50/p95 (numeric) or distinct/top/top_share."""

    column: str
    numeric: bool
    current: Mapping[str, Any]
    reference: Mapping[str, Any]


@dataclass(frozen=True)
class Widgets:
    """Evidently's part of the page: its dashboard id, the ``<script>`` block of its data (inert
    already: built by io/, escaped by ``safe_html`` after rendering) and the viewer, either a
    relative URL of the shared bundle or, for a page on its own, the bundle's text."""

    dashboard_id: str
    data_block: str
    viewer_src: str | None = None
    viewer_inline: str | None = None
    sample_rows: int = 0
    reference_rows: int = 0
    has_label: bool = False
    sections: Sequence[str] = field(default_factory=tuple)
    features: Sequence[FeatureStats] = field(default_factory=tuple)


def fmt_lift(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:+.1%}"


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _lift_cell(row: Mapping[str, Any] | None, kind: str) -> dict[str, str]:
    if row is None:
        return {"value": "–", "lift": "–", "ci": "", "label": "", "direction": ""}
    low, high, lift = _finite(row.get("rel_ci_low")), _finite(row.get("rel_ci_high")), _finite(row.get("rel_lift"))
    # A change is called only when its interval excludes zero: the colour must not tell noise.
    direction = "" if low is None or high is None or low <= 0 <= high else ("up" if low > 0 else "down")
    return {"value": fmt(_finite(row.get("reference_value")), kind), "lift": fmt_lift(lift),
            "ci": "" if low is None or high is None else f"[{fmt_lift(low)}, {fmt_lift(high)}]",
            "label": str(row.get("reference_label") or ""), "direction": direction}


def _variants(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({str(r["variant"]) for r in rows if r.get("segment") == "all"})


def metric_table(metrics: Sequence[Mapping[str, Any]], lifts: Sequence[Mapping[str, Any]],
                 spec: Sequence[tuple[str, str, str]] = HEADLINE) -> list[dict[str, Any]]:
    """One row per (variant, metric) of ``spec`` found in segment "all": today's value and,
    where lifts_daily has it, each reference's value and the relative lift with its 95% CI."""
    values = {(str(r["variant"]), r["metric"]): _finite(r.get("value")) for r in metrics if r.get("segment") == "all"}
    lift = {(str(r["variant"]), r["metric"], r["reference"]): r for r in lifts}
    variants = _variants(metrics)
    out = []
    for variant in variants:
        for metric, label, kind in spec:
            if (variant, metric) not in values:
                continue
            out.append({"variant": variant if len(variants) > 1 else "", "label": label,
                        "value": fmt(values[(variant, metric)], kind),
                        "refs": [_lift_cell(lift.get((variant, metric, ref)), kind) for ref, _ in REFERENCES]})
    return out


def top_drifted(drift: Sequence[Mapping[str, Any]], n: int = TOP_DRIFTED) -> list[dict[str, str]]:
    """The ``n`` columns with the highest PSI against the previous day (ties by name)."""
    rows = [r for r in drift if r.get("reference") == DRIFT_REFERENCE and _finite(r.get("psi")) is not None]
    rows.sort(key=lambda r: (-float(r["psi"]), str(r["column"])))
    return [{"column": str(r["column"]), "psi": f"{float(r['psi']):.3f}", "status": str(r.get("verdict") or "")}
            for r in rows[:n]]


def calibration(concept: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """CTR per score bucket of the previous day, then and today, on every impression."""
    row = next((r for r in concept if r.get("segment") == "all" and r.get("reference") == DRIFT_REFERENCE), None)
    return [{"scores": f"{b['score_from']:.2f} – {b['score_to']:.2f}",
             "then": fmt(_finite(b.get("ctr_reference")), "pct"), "now": fmt(_finite(b.get("ctr_current")), "pct"),
             "impressions": fmt(_finite(b.get("impressions_current")), "int")}
            for b in (row or {}).get("buckets") or []]


def incidents(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"title": str(i.get("title", "")), "tier": str(i.get("tier", "")), "cause": str(i.get("cause", "")),
             "alerts": len(i.get("alert_ids") or ())}
            for i in sorted(rows, key=lambda i: (TIER_ORDER.get(str(i.get("tier")), 9), str(i.get("title"))))]


def feature_rows(features: Sequence[FeatureStats]) -> list[dict[str, Any]]:
    """Display rows: today and the previous day side by side, per statistic."""
    out = []
    for f in features:
        stats = (("missing", "pct"), ("mean", "num"), ("p50", "num"), ("p95", "num")) if f.numeric else \
            (("missing", "pct"), ("distinct", "int"), ("top_share", "pct"))
        cells = [(fmt(_finite(f.current.get(k)), kind), fmt(_finite(f.reference.get(k)), kind)) for k, kind in stats]
        top = "" if f.numeric else str(f.current.get("top", ""))
        out.append({"column": f.column, "numeric": f.numeric, "cells": cells, "top": top})
    return out


def render(*, title: str, model_name: str, model_version: str, ds: str, headline: DayHeadline | None,
           widgets: Widgets) -> str:
    """The whole page. Without ``headline`` (no result rows given) the page says so and shows
    Evidently's widgets alone."""
    from markupsafe import Markup

    h = headline or DayHeadline()
    drift_ref = [r for r in h.drift if r.get("reference") == DRIFT_REFERENCE]
    return render_template("day.html.j2",
        title=title, model_name=model_name, model_version=model_version, ds=ds, has_headline=headline is not None,
        validation=h.validation, data_docs=h.data_docs,
        references=[label for _, label in REFERENCES], headline=metric_table(h.metrics, h.lifts),
        quality=metric_table(h.metrics, (), QUALITY), calibration=calibration(h.concept),
        incidents=incidents(h.incidents), drifted=top_drifted(h.drift),
        drift_columns=len(drift_ref),
        drift_flagged=sum(1 for r in drift_ref if r.get("verdict") in ("minor", "severe")),
        numeric_features=[r for r in feature_rows(widgets.features) if r["numeric"]],
        categorical_features=[r for r in feature_rows(widgets.features) if not r["numeric"]],
        widgets=widgets, data_block=Markup(widgets.data_block),  # noqa: S704 - inert JSON, see Widgets
        viewer_inline=Markup(widgets.viewer_inline) if widgets.viewer_inline else None)  # noqa: S704 - Evidently's bundle
