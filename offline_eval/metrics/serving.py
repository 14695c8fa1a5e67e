"""The system and security layers of a day, from its serving log (``requests``); docs/serving.md.

System, per model version and arm (``metrics_daily``, segment ``all``):

* ``requests``; ``error_rate`` = requests with status >= 500 / requests; ``retry_rate`` =
  requests retried at least once / requests;
* ``latency_p50_ms``, ``latency_p95_ms``, ``latency_p99_ms``: exact percentiles (linear
  interpolation between order statistics, as numpy's default) of the latency of the requests
  that were answered (status < 500);
* ``peak_rps``: the most requests in any one second of the day.

Security, for the whole day (``security_daily``, one row per finding) and per version
(``metrics_daily``):

* **burst sources**: with ``x = log10(requests of a source)``, a source is flagged when it made
  at least ``burst_min_requests`` requests and ``(x - median(x)) / s > burst_z``, where
  ``s = max(1.4826 * MAD(x), 0.25)`` is the robust standard deviation of the day's sources (the
  median absolute deviation scaled to a normal's sd). The floor matters on a day where nearly
  every source makes the same number of requests (MAD 0): a flagged source then still makes at
  least 10^(5 * 0.25) = 18 times the median's requests;
* **automated sessions**: at least ``automated_min_requests`` requests, no click on any of them,
  and a mean time between two requests (the dwell on a page) under ``automated_max_gap_s``;
* **unknown item ids**: impressions, clicks and orders whose item id is not in the day's
  catalogue snapshot (which also catches ids outside its range);
* per version: ``bot_requests``, ``bot_request_share`` and ``bot_impression_share`` of the
  flagged traffic (burst sources and automated sessions), ``unknown_item_ids``, and CTR, CVR and
  GMV per user recomputed without the flagged traffic (``ctr_clean``, ``cvr_clean``,
  ``gmv_per_user_clean``) with the one definition of ``metrics.daily``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from offline_eval.metrics import BROADCAST_ROWS_MAX
from offline_eval.thresholds import DEFAULT, Thresholds

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

VERSION_ARM = ("model_name", "model_version", "variant")
SYSTEM_METRICS = ("requests", "error_rate", "retry_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
                  "peak_rps")
CLEAN_METRICS = ("ctr", "cvr", "gmv_per_user")
MAD_TO_SD = 1 / NormalDist().inv_cdf(0.75)  # 1.4826: the MAD of a normal is 0.6745 sd
MIN_LOG_SD = 0.25  # a factor of 1.78: z > 5 is then at least 18x the median source


def _row(key: tuple, metric: str, value: float | None, numerator: float | None = None,
         denominator: float | None = None) -> dict[str, Any]:
    return {"model_name": key[0], "model_version": key[1], "variant": key[2], "segment": "all", "metric": metric,
            "value": value, "numerator": numerator, "denominator": denominator}


def system_metrics(requests: DataFrame) -> list[dict[str, Any]]:
    """metrics_daily rows of the system layer, per model version and arm."""
    from pyspark.sql import functions as F

    answered = F.when(F.col("status") < 500, F.col("latency_ms"))
    per_arm = requests.groupBy(*VERSION_ARM).agg(
        F.count("*").alias("n"),
        F.sum(F.when(F.col("status") >= 500, 1).otherwise(0)).alias("errors"),
        F.sum(F.when(F.col("retries") > 0, 1).otherwise(0)).alias("retried"),
        F.percentile(answered, F.array(F.lit(0.5), F.lit(0.95), F.lit(0.99))).alias("p"),
    )
    peak = (requests.groupBy(*VERSION_ARM, F.date_trunc("second", "request_ts").alias("second")).count()
            .groupBy(*VERSION_ARM).agg(F.max("count").alias("peak")))
    out = []
    for r in per_arm.join(peak, on=list(VERSION_ARM)).collect():
        key = tuple(r[k] for k in VERSION_ARM)
        p = r["p"] or [None, None, None]
        out += [
            _row(key, "requests", float(r["n"]), float(r["n"])),
            _row(key, "error_rate", r["errors"] / r["n"], float(r["errors"]), float(r["n"])),
            _row(key, "retry_rate", r["retried"] / r["n"], float(r["retried"]), float(r["n"])),
            _row(key, "latency_p50_ms", p[0]),
            _row(key, "latency_p95_ms", p[1]),
            _row(key, "latency_p99_ms", p[2]),
            _row(key, "peak_rps", float(r["peak"]), float(r["peak"]), 1.0),
        ]
    return out


@dataclass
class Security:
    findings: list[dict[str, Any]]  # security_daily rows
    flagged_requests: DataFrame  # request_id of the flagged traffic
    flagged_sessions: DataFrame  # session_id of the flagged traffic
    any_flagged: bool = True


def robust_outliers(counts: list[tuple[str, int]], thresholds: Thresholds = DEFAULT) -> list[dict[str, Any]]:
    """The burst rule on ``(source, requests)`` pairs (pure; the module's docstring)."""
    if not counts:
        return []
    xs = sorted(math.log10(n) for _, n in counts)
    med = _median(xs)
    sd = max(MAD_TO_SD * _median(sorted(abs(x - med) for x in xs)), MIN_LOG_SD)
    out = []
    for source, n in sorted(counts, key=lambda c: (-c[1], c[0])):
        z = (math.log10(n) - med) / sd
        if n >= thresholds.burst_min_requests and z > thresholds.burst_z:
            out.append({"source": source, "requests": n, "z": z, "median_requests": 10 ** med, "log_sd": sd})
    return out


def _median(xs: list[float]) -> float:
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def security(requests: DataFrame, impressions: DataFrame, clicks: DataFrame, orders: DataFrame, items: DataFrame,
             thresholds: Thresholds = DEFAULT) -> Security:
    """The day's findings (burst sources, automated sessions, unknown item ids) and the traffic
    they flag."""
    from pyspark.sql import functions as F

    # One row per source: a day has as many as it has clients, a few hundred thousand at most.
    source_counts = requests.groupBy("source").count().collect()
    bursts = robust_outliers([(r["source"], r["count"]) for r in source_counts], thresholds)
    clicked = clicks.select("request_id").distinct().withColumn("clicked", F.lit(1))
    sessions = (
        requests.where(F.col("status") < 500).join(clicked, on="request_id", how="left")
        .groupBy("session_id", "source")
        .agg(F.count("*").alias("requests"), F.count("clicked").alias("clicks"),
             F.sum("n_items").alias("impressions"),
             ((F.max("request_ts").cast("double") - F.min("request_ts").cast("double"))
              / F.greatest(F.count("*") - 1, F.lit(1))).alias("mean_gap_s"))
        .where((F.col("requests") >= thresholds.automated_min_requests) & (F.col("clicks") == 0)
               & (F.col("mean_gap_s") < thresholds.automated_max_gap_s))
    )
    automated = sessions.orderBy(F.desc("requests"), "session_id").collect()
    total = sum(n for _, n in ((r["source"], r["count"]) for r in source_counts))
    findings = []
    burst_sources = [b["source"] for b in bursts]
    if burst_sources:
        source_stats = {r["source"]: r for r in requests.where(F.col("source").isin(burst_sources)).groupBy("source")
                        .agg(F.sum("n_items").alias("impressions"), F.countDistinct("session_id").alias("sessions"))
                        .collect()}
        for b in bursts:
            s = source_stats[b["source"]]
            findings.append({"kind": "burst_source", "key": b["source"], "requests": b["requests"],
                             "impressions": s["impressions"], "clicks": None,
                             "share_of_requests": b["requests"] / total,
                             "detail": json.dumps({"sessions": s["sessions"], "z": round(b["z"], 3),
                                                   "median_requests": b["median_requests"]})})
    for r in automated:
        findings.append({"kind": "automated_session", "key": r["session_id"], "requests": r["requests"],
                         "impressions": r["impressions"], "clicks": r["clicks"],
                         "share_of_requests": r["requests"] / total,
                         "detail": json.dumps({"source": r["source"], "mean_gap_s": round(r["mean_gap_s"], 3)})})
    # The item ids of the three tables in one pass against the catalogue.
    ids = (impressions.select(F.lit("impressions").alias("table"), "item_id")
           .unionByName(clicks.select(F.lit("clicks").alias("table"), "item_id"))
           .unionByName(orders.select(F.lit("orders").alias("table"), "item_id")))
    unknown = {r["table"]: r["count"] for r in ids.join(items.select("item_id").distinct(), on="item_id",
                                                          how="left_anti").groupBy("table").count().collect()}
    for name in ("impressions", "clicks", "orders"):
        if unknown.get(name):
            findings.append({"kind": "unknown_item", "key": name, "requests": None, "impressions": unknown[name],
                             "clicks": None, "share_of_requests": None, "detail": json.dumps({"rows": unknown[name]})})
    # The flagged traffic by its (few) sources and session ids, so that no aggregate above is
    # computed again where it is used.
    session_ids = [r["session_id"] for r in automated]
    flagged = F.col("source").isin(burst_sources) | F.col("session_id").isin(session_ids)
    any_flagged = bool(burst_sources or session_ids)
    return Security(findings, requests.where(flagged).select("request_id"),
                    requests.where(flagged).select("session_id").distinct(), any_flagged)


def security_metrics(requests: DataFrame, rows: DataFrame, sec: Security,
                     business: Callable[[DataFrame], list[dict[str, Any]]], today: list[dict[str, Any]]
                     ) -> list[dict[str, Any]]:
    """Per version and arm: the flagged traffic's size and shares, unknown item ids, and the
    business metrics without the flagged traffic (``business(rows)``: metrics_daily rows of the
    given impression rows, from ``metrics.daily``; with nothing flagged they are ``today``'s:
    the day's business and system metrics rows, which also give the counts of requests and
    impressions per arm)."""
    from pyspark.sql import functions as F

    unknown = sum(f["impressions"] for f in sec.findings if f["kind"] == "unknown_item")
    if not sec.any_flagged:  # nothing to count: no Spark job
        def per_arm(metric: str) -> dict[tuple, float]:
            return {(m["model_name"], m["model_version"], m["variant"]): m["value"] for m in today
                    if m["segment"] == "all" and m["metric"] == metric}

        n_requests, n_impressions = per_arm("requests"), per_arm("impressions")
        out = []
        for key in sorted(n_requests):
            out += [_row(key, "bot_requests", 0.0, 0.0), _row(key, "bot_request_share", 0.0, 0.0, n_requests[key]),
                    _row(key, "unknown_item_ids", float(unknown), float(unknown))]
            if key in n_impressions:
                out.append(_row(key, "bot_impression_share", 0.0, 0.0, n_impressions[key]))
        return out + [{**m, "metric": f"{m['metric']}_clean"} for m in today
                      if m["segment"] == "all" and m["metric"] in CLEAN_METRICS]
    flagged = sec.flagged_requests.withColumn("flagged", F.lit(1))
    req = (requests.join(flagged, on="request_id", how="left").groupBy(*VERSION_ARM)
           .agg(F.count("*").alias("n"), F.count("flagged").alias("bot")).collect())
    # The flagged requests, counted above, are usually a small share of the day: broadcast them
    # to the impression rows, which then are not shuffled by request_id for either join below
    # (left to Spark, both sides were shuffled before it saw how small the flagged side was).
    if sum(r["bot"] for r in req) <= BROADCAST_ROWS_MAX:
        flagged = F.broadcast(flagged)
    imp = (rows.join(flagged, on="request_id", how="left").groupBy(*VERSION_ARM)
           .agg(F.count("*").alias("n"), F.count("flagged").alias("bot")).collect())
    out = []
    imp_by = {tuple(r[k] for k in VERSION_ARM): r for r in imp}
    for r in req:
        key = tuple(r[k] for k in VERSION_ARM)
        i = imp_by.get(key)
        out += [_row(key, "bot_requests", float(r["bot"]), float(r["bot"])),
                _row(key, "bot_request_share", r["bot"] / r["n"], float(r["bot"]), float(r["n"])),
                _row(key, "unknown_item_ids", float(unknown), float(unknown))]
        if i is not None:
            out.append(_row(key, "bot_impression_share", i["bot"] / i["n"], float(i["bot"]), float(i["n"])))
    clean = business(rows.join(flagged, on="request_id", how="left_anti"))  # an anti join keeps rows' columns
    for m in clean:
        if m["segment"] == "all" and m["metric"] in CLEAN_METRICS:
            out.append({**m, "metric": f"{m['metric']}_clean"})
    return out
