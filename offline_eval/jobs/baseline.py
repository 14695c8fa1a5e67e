"""Baselines: stored references per model version and window, keyed by (model, version,
window end, window length) in the ``baselines`` table (partitions window_days / ds = end).

What a baseline holds (docs/drift.md):
* every monitored input feature (``f_*``, ``c_*``) and the score: the reference quantile grid
  (999 edges) with counts, decile edges for PSI, moments; categories with rare ones folded;
* score bins per user segment (P(click | score), calibration and AUC of the window);
* every daily metric's mean and standard deviation over the window's days.

A baseline is a function of the raw partitions of its window only, so whichever task builds
it first (the weekly DAG, or a daily run that needs it) writes the same rows, and a backfill
of any day compares against exactly the reference that day had. Daily metrics come from
metrics_daily where the day was evaluated and are computed from the raw partitions otherwise.

Days whose input validation failed (reports/validation/<ds>/validation.json) are left out of
every window, so a reference is never built from a partition the GX suites rejected; once the
data is fixed and the day re-validated, rebuild the windows that contain it (docs/drift.md).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Iterable

from offline_eval.config import DayConfig, Settings, parse_ds, validate_ds
from offline_eval.contract import BASELINES, categorical_features, numeric_features
from offline_eval.io.paths import failed_validation_days
from offline_eval.jobs import day_metrics
from offline_eval.metrics.drift import grouped_profiles
from offline_eval.metrics.funnel import attributed_clicks
from offline_eval.metrics.quality import score_bins
from offline_eval.stats.quality import ScoreBins

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from offline_eval.io.tables import Tables

log = logging.getLogger(__name__)

WEEKLY_WINDOWS = (7, 28)
PREVIOUS_DAY = 1
_SEP = "\u0001"


def weekly_end(ds: str) -> str:
    """End of the weekly baseline a day compares against: the last Sunday strictly before it."""
    d = parse_ds(ds)
    return (d - dt.timedelta(days=d.weekday() + 1)).isoformat()


def window_dates(end: str, window_days: int) -> list[str]:
    e = parse_ds(end)
    return [(e - dt.timedelta(days=k)).isoformat() for k in range(window_days - 1, -1, -1)]


def monitored_columns() -> tuple[list[str], list[str]]:
    return [*numeric_features(), "score"], categorical_features()


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def _row(name: str, version: str, kind: str, key: str, *, variant: str | None = None, segment: str = "all",
         n: float | None = None, mean: float | None = None, std: float | None = None, payload: Any = None,
         window_days: int, end: str) -> dict:
    return {"model_name": name, "model_version": version, "kind": kind, "name": key, "variant": variant,
            "segment": segment, "n": _f(n), "mean": _f(mean), "std": _f(std),
            "payload": json.dumps(payload, allow_nan=False, separators=(",", ":")) if payload is not None else None,
            "window_days": window_days, "ds": end}


def profile_rows(tables: Tables, end: str, window_days: int, new_user_days: int = 7,
                 exclude: Iterable[str] = ()) -> list[dict]:
    """Feature/score profiles and score bins of every model version served in the window,
    leaving out the days in ``exclude``."""
    from pyspark.sql import functions as F

    dates = window_dates(end, window_days)
    skip = set(exclude)
    kept = [d for d in dates if d not in skip]
    if not kept:
        return []

    def read(table: str) -> DataFrame:
        return tables.read_range(table, dates[0], end).where(F.col("ds").isin(kept))

    numeric, categorical = monitored_columns()
    imps = read("impressions").withColumn("_g", F.concat_ws(_SEP, "model_name", "model_version")).cache()
    try:
        profiles = grouped_profiles(imps, "_g", numeric, categorical)
        out = []
        for g, prof in sorted(profiles.items()):
            name, version = g.split(_SEP)
            for c, p in prof["numeric"].items():
                out.append(_row(name, version, "numeric", c, n=p["n"], mean=p["mean"], std=p["std"], payload=p,
                                window_days=window_days, end=end))
            for c, p in prof["categorical"].items():
                out.append(_row(name, version, "categorical", c, n=sum(p["counts"].values()), payload=p,
                                window_days=window_days, end=end))
        clicked = attributed_clicks(imps, read("clicks")).select(
            "request_id", "item_id").distinct().withColumn("clicked", F.lit(1))
        users = tables.read("users", kept[-1], require=False).select("user_id", "signup_date")
        age = F.datediff(F.to_date("ds"), F.col("signup_date"))
        scored = (imps.select("model_name", "model_version", "request_id", "item_id", "user_id", "score", "ds")
                  .join(clicked, ["request_id", "item_id"], "left").fillna(0, subset=["clicked"])
                  .join(users, "user_id", "left")
                  .withColumn("user_segment", F.when((age >= 0) & (age < new_user_days), "new_users")
                              .when(age >= new_user_days, "returning_users")))
        cells = score_bins(scored, ["model_name", "model_version", "user_segment"]).collect()
    finally:
        imps.unpersist()
    by_version: dict[tuple, list] = defaultdict(list)
    for r in cells:
        by_version[(r["model_name"], r["model_version"])].append(r)
    for (name, version), rows in sorted(by_version.items()):
        for seg in ("all", "new_users", "returning_users"):
            bins = ScoreBins.from_rows([(r["bin"], r["impressions"], r["clicks"], r["score_sum"], r["logloss_sum"])
                                        for r in rows if seg == "all" or r["user_segment"] == seg])
            out.append(_row(name, version, "score_bins", "score", segment=seg, n=bins.n, payload=bins.rows(),
                            window_days=window_days, end=end))
    return out


def daily_values(tables: Tables, dates: Iterable[str], template: DayConfig) -> dict[str, list[dict]]:
    """{ds: metrics_daily rows} for the dates with data: stored rows where the day was evaluated,
    computed from the raw partitions where it was not; days without impressions are skipped."""
    from pyspark.sql import functions as F

    dates = list(dates)
    if not dates:
        return {}
    stored = defaultdict(list)
    for r in tables.read_range("metrics_daily", dates[0], dates[-1]).where(F.col("ds").isin(dates)).collect():
        stored[r["ds"]].append(r.asDict())
    out = {}
    for d in dates:
        if stored.get(d):
            out[d] = stored[d]
        elif tables.has_partition("impressions", d):
            t0 = time.monotonic()
            out[d] = day_metrics.metric_rows(tables, DayConfig(ds=d, new_user_days=template.new_user_days,
                                                               new_item_days=template.new_item_days,
                                                               repurchase_lookback_days=template.repurchase_lookback_days))
            log.info("baseline: metrics of %s computed from raw partitions (not evaluated yet) in %.1fs", d,
                     time.monotonic() - t0)
    return out


def metric_rows(values: dict[str, list[dict]], end: str, window_days: int) -> list[dict]:
    """Mean and sample standard deviation of every daily metric over the window's days."""
    series: dict[tuple, dict[str, float]] = defaultdict(dict)
    for d, rows in values.items():
        for r in rows:
            v = r["value"]
            if v is not None and math.isfinite(v):
                series[(r["model_name"], r["model_version"], r["variant"], r["segment"], r["metric"])][d] = float(v)
    out = []
    for (name, version, variant, segment, metric), by_day in sorted(series.items()):
        xs = list(by_day.values())
        mean = sum(xs) / len(xs)
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
        out.append(_row(name, version, "metric", metric, variant=variant, segment=segment, n=float(len(xs)),
                        mean=mean, std=std, payload={"values": dict(sorted(by_day.items()))},
                        window_days=window_days, end=end))
    return out


def build(tables: Tables, end: str, windows: Iterable[int], template: DayConfig | None = None) -> dict[int, int]:
    """Build and store the baselines of the given windows ending on ``end``; returns rows per window.

    Each window replaces its own partition (window_days, ds=end) in one write: a rerun gives the
    same rows, and a failure leaves the previous version in place.
    """
    end = validate_ds(end)
    template = template or DayConfig(ds=end)
    windows = sorted(set(int(w) for w in windows))
    if not windows or windows[0] < 1:
        raise ValueError(f"window lengths must be >= 1, got {windows}")
    all_dates = window_dates(end, windows[-1])
    failed = failed_validation_days(tables.settings, all_dates)
    if failed:
        log.warning("baselines ending %s leave out %d day(s) whose input validation failed: %s (results: %s). "
                    "After fixing the data and re-running those days, rebuild these windows.", end, len(failed),
                    ", ".join(failed), ", ".join(str(p) for p in failed.values()))
    values = daily_values(tables, [d for d in all_dates if d not in failed], template)
    written = {}
    for w in windows:
        t0 = time.monotonic()
        dates = set(window_dates(end, w))
        rows = profile_rows(tables, end, w, template.new_user_days, exclude=failed)
        rows += metric_rows({d: v for d, v in values.items() if d in dates}, end, w)
        write(tables, rows, w, end)
        written[w] = len(rows)
        log.info("baseline window %d days ending %s: %d rows (%d days with metrics) in %.1fs", w, end, len(rows),
                 len(dates & set(values)), time.monotonic() - t0)
    return written


def write(tables: Tables, rows: list[dict], window_days: int, end: str) -> None:
    spark = tables.spark
    schema = BASELINES.ddl_columns().replace("`", "")
    if rows:
        df = spark.createDataFrame([[r[c] for c in BASELINES.all_columns] for r in rows], schema)
        tables.overwrite(df, "baselines", expected_ds=[end])
    else:
        log.warning("baseline window %d ending %s: no impressions in the window, nothing stored", window_days, end)


def load(tables: Tables, window_days: int, end: str) -> list[dict]:
    return [r.asDict() for r in tables.read_baseline(window_days, end).collect()]


def ensure(tables: Tables, window_days: int, end: str, template: DayConfig) -> list[dict]:
    """The stored baseline, built first if it does not exist yet."""
    rows = load(tables, window_days, end)
    if not rows:
        log.info("baseline window %d ending %s is not stored yet: building it", window_days, end)
        build(tables, end, [window_days], template)
        rows = load(tables, window_days, end)
    return rows


def run(end: str, windows: Iterable[int] = WEEKLY_WINDOWS, settings: Settings | None = None) -> dict[int, int]:
    from offline_eval.io.spark import get_spark
    from offline_eval.io.tables import Tables

    settings = settings or Settings.from_env()
    spark = get_spark(f"offline-eval-baseline-{end}", settings)
    tables = Tables(spark, settings)
    from offline_eval.contract import OUTPUT_TABLES

    tables.ensure(OUTPUT_TABLES.values())
    return build(tables, end, windows)


def parse(rows: list[dict]) -> dict[str, Any]:
    """Stored rows -> {(model, version): {"profile": {...}, "score_bins": {segment: ScoreBins},
    "metrics": {(variant, segment, metric): (mean, std, n)}}}."""
    out: dict = defaultdict(lambda: {"profile": {"numeric": {}, "categorical": {}}, "score_bins": {}, "metrics": {}})
    for r in rows:
        key = (r["model_name"], r["model_version"])
        kind = r["kind"]
        if kind in ("numeric", "categorical"):
            out[key]["profile"][kind][r["name"]] = json.loads(r["payload"])
        elif kind == "score_bins":
            out[key]["score_bins"][r["segment"]] = ScoreBins.from_rows([tuple(x) for x in json.loads(r["payload"])])
        elif kind == "metric":
            out[key]["metrics"][(r["variant"], r["segment"], r["name"])] = (r["mean"], r["std"], r["n"])
    return dict(out)
