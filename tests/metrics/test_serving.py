"""The system and security layers on tiny hand-made serving logs, against numpy and scipy."""
from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest
from scipy.stats import median_abs_deviation

from offline_eval.metrics.serving import robust_outliers, security, system_metrics
from offline_eval.thresholds import DEFAULT

T0 = dt.datetime(2026, 6, 11, 2, 0, 0, tzinfo=dt.UTC)
REQUESTS = ("request_id string, session_id string, user_id bigint, model_name string, model_version string, "
            "variant string, source string, request_ts timestamp, latency_ms double, status int, retries int, "
            "n_items int")


def _req(rid, sid, source, seconds, latency=20.0, status=200, retries=0, version="v1", n_items=10):
    variant = "control" if version == "v1" else "treatment"
    return (rid, sid, 1, "m", version, variant, source, T0 + dt.timedelta(seconds=seconds), latency, status, retries,
            n_items if status < 500 else 0)


def test_latency_errors_retries_and_peak_per_arm(spark):
    rows = [_req("a", "s1", "x", 0, 10.0), _req("b", "s1", "x", 0.2, 20.0, retries=1),
            _req("c", "s2", "y", 1, 30.0), _req("d", "s3", "z", 2, 40.0),
            _req("e", "s3", "z", 2.5, 1000.0, status=503, retries=2),
            _req("f", "s4", "w", 0, 15.0, version="v2")]
    got = {(r["model_version"], r["metric"]): r for r in system_metrics(spark.createDataFrame(rows, REQUESTS))}
    answered = [10.0, 20.0, 30.0, 40.0]  # the 503 has no answer time
    for q, name in ((50, "latency_p50_ms"), (95, "latency_p95_ms"), (99, "latency_p99_ms")):
        assert got[("v1", name)]["value"] == pytest.approx(np.percentile(answered, q))
    assert got[("v1", "latency_p95_ms")]["value"] == pytest.approx(38.5)  # 30 + 0.85 * 10
    assert (got[("v1", "error_rate")]["value"], got[("v1", "error_rate")]["numerator"]) == (0.2, 1.0)
    assert got[("v1", "retry_rate")]["value"] == pytest.approx(2 / 5)
    assert got[("v1", "requests")]["value"] == 5.0
    assert got[("v1", "peak_rps")]["value"] == 2.0  # seconds 0 and 2 hold two requests each
    assert got[("v2", "latency_p50_ms")]["value"] == 15.0 and got[("v2", "error_rate")]["value"] == 0.0
    assert got[("v2", "latency_p50_ms")]["variant"] == "treatment"


def test_the_robust_burst_rule_matches_scipy():
    counts = [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5), ("bot", 1000)]
    x = np.log10([n for _, n in counts])
    z = (x[-1] - np.median(x)) / median_abs_deviation(x, scale="normal")
    assert z == pytest.approx(8.34, abs=0.01)  # by hand: (3 - 0.5396) / (1.4826 * 0.1990)
    (hit,) = robust_outliers(counts)
    assert hit["source"] == "bot" and hit["z"] == pytest.approx(z)
    assert robust_outliers(counts, DEFAULT.replace({"burst_z": 8.5}, "t")) == []
    assert robust_outliers(counts, DEFAULT.replace({"burst_min_requests": 1001}, "t")) == []
    # Nearly every source makes one request (MAD 0): the floor of the log sd (0.25) keeps a
    # source making 17 requests from looking like a burst; 18 is one (log10(18) / 0.25 = 5.02).
    lenient = DEFAULT.replace({"burst_min_requests": 1}, "t")
    assert robust_outliers([(f"s{i}", 1) for i in range(50)] + [("x", 17)], lenient) == []
    (hit,) = robust_outliers([(f"s{i}", 1) for i in range(50)] + [("x", 18)], lenient)
    assert hit["z"] == pytest.approx(math.log10(18) / 0.25)


def test_security_findings(spark):
    rows = [_req(f"o{i}", f"os{i}", f"src{i}", i * 60) for i in range(30)]  # 30 ordinary clients
    rows += [_req(f"bot{i}", "sb", "crawler", i * 1.0) for i in range(120)]  # a page a second, no click
    rows += [_req(f"h{i}", "sh", "human", i * 1.0) for i in range(60)]  # as fast, but clicks once
    rows += [_req(f"slow{i}", "ss", "reader", i * 5.0) for i in range(60)]  # no click, 5 s per page
    requests = spark.createDataFrame(rows, REQUESTS)
    clicks = spark.createDataFrame([("h3", 1, 7, T0)], "request_id string, user_id bigint, item_id bigint, "
                                                        "click_ts timestamp")
    impressions = spark.createDataFrame([("o1", 7), ("o2", 8), ("o3", 999)], "request_id string, item_id bigint")
    orders = spark.createDataFrame([(7,)], "item_id bigint")
    items = spark.createDataFrame([(7,), (8,)], "item_id bigint")
    sec = security(requests, impressions, clicks, orders, items)
    found = {(f["kind"], f["key"]): f for f in sec.findings}
    assert set(found) == {("burst_source", "crawler"), ("automated_session", "sb"), ("unknown_item", "impressions")}
    burst = found[("burst_source", "crawler")]
    assert burst["requests"] == 120 and burst["share_of_requests"] == pytest.approx(120 / 270)
    assert burst["impressions"] == 1200 and json.loads(burst["detail"])["sessions"] == 1
    auto = found[("automated_session", "sb")]
    assert (auto["requests"], auto["clicks"], json.loads(auto["detail"])["mean_gap_s"]) == (120, 0, 1.0)
    assert found[("unknown_item", "impressions")]["impressions"] == 1  # item 999
    assert {r["session_id"] for r in sec.flagged_sessions.collect()} == {"sb"}
    assert sec.flagged_requests.count() == 120


def test_catalogue_coverage_by_hand(spark):
    from offline_eval.metrics.catalog import catalog_coverage

    # Items 1..10; 9 and 10 listed within the last 7 days (new). Shown: item 1 x5, 2 x3, 3 x2,
    # 4 x1, 9 x1 (five shown items: the head is the top 20%, one item: item 1).
    items = spark.createDataFrame(
        [(i, dt.date(2026, 6, 1) if i < 9 else dt.date(2026, 6, 9)) for i in range(1, 11)],
        "item_id bigint, first_listed_date date")
    shown = [("v1", 1)] * 4 + [("v1", 2)] * 3 + [("v1", 9)] + [("v2", 1), ("v2", 3), ("v2", 3), ("v2", 4)]
    impressions = spark.createDataFrame([("m", v, "control" if v == "v1" else "treatment", i) for v, i in shown],
                                        "model_name string, model_version string, variant string, item_id bigint")
    got = {(r["model_version"], r["metric"]): r for r in catalog_coverage(impressions, items, "2026-06-11", 7)}
    assert got[("v1", "new_item_coverage")]["value"] == 0.5  # item 9 of the new items 9 and 10
    assert got[("v2", "new_item_coverage")]["value"] == 0.0
    assert got[("v1", "long_tail_impression_share")]["value"] == pytest.approx(4 / 8)  # items 2 and 9
    assert got[("v1", "long_tail_item_share")]["value"] == pytest.approx(2 / 3)
    assert got[("v2", "long_tail_impression_share")]["value"] == pytest.approx(3 / 4)
    assert got[("v2", "long_tail_item_share")]["value"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("broadcast_max", [2_000_000, 0], ids=["flagged-broadcast", "join-by-spark"])
def test_metrics_without_the_flagged_traffic_by_hand(spark, monkeypatch, broadcast_max):
    # v1/control: requests r1 (user 1), r2 (user 2), r3 (user 3, flagged); v2/treatment: r4 (user 4).
    # Impressions (request, user, clicked, orders, gmv): r1 two shown one clicked; r2 one shown and
    # bought for 30; r3 four shown, none clicked; r4 one shown and clicked.
    import offline_eval.metrics.serving as serving
    from offline_eval.metrics.daily import headline_metrics

    monkeypatch.setattr(serving, "BROADCAST_ROWS_MAX", broadcast_max)
    requests = spark.createDataFrame(
        [_req("r1", "s1", "a", 0), _req("r2", "s2", "b", 60), _req("r3", "s3", "bot", 120),
         _req("r4", "s4", "c", 180, version="v2")], REQUESTS)
    cols = ("model_name string, model_version string, variant string, request_id string, user_id bigint, "
            "clicked int, carts int, orders int, units int, gmv double, is_new_item boolean")
    imp = [("r1", 1, 1, 0, 0.0), ("r1", 1, 0, 0, 0.0), ("r2", 2, 1, 1, 30.0), *[("r3", 3, 0, 0, 0.0)] * 4]
    rows = spark.createDataFrame(
        [("m", "v1", "control", r, u, c, o, o, o, g, False) for r, u, c, o, g in imp]
        + [("m", "v2", "treatment", "r4", 4, 1, 0, 0, 0, 0.0, False)], cols)
    flagged = requests.where("request_id = 'r3'")
    sec = serving.Security([], flagged.select("request_id"), flagged.select("session_id"), any_flagged=True)
    got = {(r["model_version"], r["metric"]): (r["value"], r["numerator"], r["denominator"])
           for r in serving.security_metrics(
               requests, rows, sec, lambda r: [x.asDict() for x in headline_metrics(r, "2026-06-11").collect()], [])}
    assert got[("v1", "bot_requests")] == (1.0, 1.0, None)
    assert got[("v1", "bot_request_share")] == (pytest.approx(1 / 3), 1.0, 3.0)
    assert got[("v1", "bot_impression_share")] == (pytest.approx(4 / 7), 4.0, 7.0)
    assert got[("v1", "ctr_clean")] == (pytest.approx(2 / 3), 2.0, 3.0)  # r1 and r2: 2 clicks, 3 shown
    assert got[("v1", "cvr_clean")] == (pytest.approx(1 / 2), 1.0, 2.0)
    assert got[("v1", "gmv_per_user_clean")] == (pytest.approx(15.0), 30.0, 2.0)  # users 1 and 2
    assert got[("v2", "bot_impression_share")] == (0.0, 0.0, 1.0)
    assert got[("v2", "ctr_clean")] == (1.0, 1.0, 1.0)
