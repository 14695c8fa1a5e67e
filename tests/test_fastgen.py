"""The numpy generator reproduces the Spark generator row for row, and its xxhash64 is Spark's."""
from __future__ import annotations

import dataclasses
import random
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from offline_eval.contract import INPUT_TABLES
from offline_eval.fastgen import REFERENCE_TABLES, TABLES, arrow_schema, generate_day, spark_round, xxhash64
from offline_eval.generator import Scenario

# Three days that cover the pre-period, the experiment start (day 1) and the promotion (day 2).
TINY = Scenario(start="2026-06-01", days=3, impressions_per_day=1_500, base_users=300, signups_per_day=30,
                promo_signups_per_day=80, base_items=200, new_items_per_day=20, promo_day=2,
                experiment_start="2026-06-02")


def _rows(table: pa.Table) -> Counter:
    """The rows as a multiset of tuples; doubles by their bits (so -0.0 differs from 0.0)."""
    columns = [table.column(name).to_pylist() for name in table.column_names]
    return Counter(tuple(v.hex() if isinstance(v, float) else v for v in row) for row in zip(*columns, strict=True))


def _day(sc: Scenario, k: int, chunk_sessions: int | None = None) -> dict[str, pa.Table]:
    chunks = list(generate_day(sc, k, chunk_sessions=chunk_sessions))
    return {name: pa.concat_tables([chunk[name] for chunk in chunks]) for name in TABLES}


@pytest.mark.spark
def test_xxhash64_matches_spark(spark):
    from pyspark.sql import functions as F

    rnd = random.Random(7)
    alphabet = "az09-_ éß漢😀\x00"
    strings = ["".join(rnd.choice(alphabet) for _ in range(n)) for n in range(41)] * 3
    n = len(strings)
    ints = [0, -1, 2**31 - 1, -(2**31)] + [rnd.randint(-(2**31), 2**31 - 1) for _ in range(n - 4)]
    longs = [0, -1, 2**63 - 1, -(2**63)] + [rnd.randint(-(2**63), 2**63 - 1) for _ in range(n - 4)]
    df = spark.createDataFrame(list(zip(ints, longs, strings, strict=True)), "i int, l bigint, s string")
    got = df.select(
        "i", "l", "s",
        F.xxhash64("i").alias("hi"), F.xxhash64("l").alias("hl"), F.xxhash64("s").alias("hs"),
        F.xxhash64(F.lit(618), F.lit("salt"), "i", "l", "s").alias("chain"),
    ).toArrow()
    i, lng, s = got["i"].to_numpy(), got["l"].to_numpy(), got["s"]
    np.testing.assert_array_equal(xxhash64(i), got["hi"].to_numpy())
    np.testing.assert_array_equal(xxhash64(lng), got["hl"].to_numpy())
    np.testing.assert_array_equal(xxhash64(s), got["hs"].to_numpy())
    np.testing.assert_array_equal(xxhash64(618, "salt", i, lng, s), got["chain"].to_numpy())


@pytest.mark.spark
def test_every_table_matches_the_spark_generator(spark):
    from pyspark.sql import functions as F

    from tests.reference.spark_generator import generate

    frames = generate(spark, TINY)
    for name in REFERENCE_TABLES:  # the serving log came after the Spark generator
        spark_table = frames[name].toArrow()
        ds = spark_table["ds"].to_numpy(zero_copy_only=False)
        for k, day in enumerate(TINY.dates):
            expected = spark_table.filter(pa.array(ds == day)).drop_columns(["ds"])
            got = _day(TINY, k)[name]
            assert [(f.name, f.type) for f in got.schema] == [(f.name, f.type) for f in expected.schema]
            assert got.num_rows > 0, (name, day)
            assert _rows(got) == _rows(expected), (name, day)
    assert frames["impressions"].where(F.col("ds") == TINY.dates[0]).count() > 0


@pytest.mark.spark
def test_round_is_half_up_on_the_decimal_string(spark):
    from pyspark.sql import functions as F

    values = [2.675, 0.125, -0.125, 1.005, 0.0000005, -0.001, 123.4549999, 5e-7]
    df = spark.createDataFrame([(v,) for v in values], "x double")
    for scale in (2, 6):
        expected = df.select(F.round("x", scale).alias("r")).toArrow()["r"].to_numpy()
        got = spark_round(np.array(values), scale)
        assert got.view(np.int64).tolist() == expected.view(np.int64).tolist(), scale


def test_chunks_add_up_to_the_whole_day():
    whole = _day(TINY, 2)
    chunks = list(generate_day(TINY, 2, chunk_sessions=37))
    assert len(chunks) > 1
    assert all(chunk["users"].num_rows == 0 and chunk["items"].num_rows == 0 for chunk in chunks[1:])
    chunked = {name: pa.concat_tables([chunk[name] for chunk in chunks]) for name in TABLES}
    for name in TABLES:
        assert _rows(chunked[name]) == _rows(whole[name]), name


def test_tables_follow_the_contract():
    for name, table in next(generate_day(TINY, 0)).items():
        assert table.column_names == INPUT_TABLES[name].column_names
        assert table.schema == arrow_schema(name)
    assert arrow_schema("sessions").field("session_start_ts").type == pa.timestamp("us", tz="UTC")


def test_day_outside_the_scenario_is_refused():
    with pytest.raises(ValueError):
        next(generate_day(TINY, TINY.days))


def test_the_serving_log_matches_the_impressions():
    """Every served request is the page of its impressions (n_items of them); failed requests
    show nothing; the arms' latency medians, the slow tail and the retries are the scenario's."""
    sc = Scenario(start="2026-06-01", days=2, impressions_per_day=200_000, base_users=20_000, base_items=2_000,
                  experiment_start="2026-06-01", promo_day=5, crawler_day=None)
    day = _day(sc, 1)
    req = day["requests"].to_pandas()
    imp = day["impressions"].select(["request_id"]).to_pandas()
    served = req[req.status == 200]
    assert set(served.request_id) == set(imp.request_id)
    per_request = imp.request_id.value_counts()
    assert (served.set_index("request_id").n_items == per_request.reindex(served.request_id).values).all()
    failed = req[req.status != 200]
    assert set(failed.status) == {500, 503} and (failed.n_items == 0).all()
    assert failed.session_id.isin(day["sessions"].column("session_id").to_pylist()).all()
    # 20k sessions, error_share 0.4%: 80 failures expected, sd ~9.
    assert 50 <= len(failed) <= 110
    plain = served[served.retries == 0]  # the 1% slow tail moves the median by ~0.5%
    for version, median in (("v1", 38.0), ("v2", 42.0)):
        got = plain[plain.model_version == version].latency_ms.median()
        assert got == pytest.approx(median, rel=0.03), version
    retried = (served.retries > 0).mean()
    assert retried == pytest.approx(0.02, abs=0.004)  # ~20k requests: sd 0.001
    assert ((served.retries == 2).sum() / (served.retries > 0).sum()) == pytest.approx(0.15, abs=0.05)


def test_the_crawler_day():
    sc = Scenario(start="2026-06-01", days=3, impressions_per_day=1_500, base_users=300, signups_per_day=30,
                  promo_signups_per_day=80, base_items=200, new_items_per_day=20, promo_day=2,
                  experiment_start="2026-06-01", crawler_day=1, crawler_sessions=2, crawler_share=0.1)
    assert sc.crawler_requests == 15  # 10% of 150 requests
    quiet, crawled = _day(sc, 0), _day(sc, 1)
    req = crawled["requests"].to_pandas()
    bot = req[req.source == "c0ffee0c0ffee0"]
    assert len(bot) == 15 and set(bot.session_id) == {"2026-06-02-bot-0", "2026-06-02-bot-1"}
    assert (bot.status == 200).all() and set(bot.model_version) == {"v1"}
    gaps = bot.sort_values("request_ts").groupby("session_id").request_ts.diff().dropna()
    assert (gaps == pd.Timedelta(milliseconds=500)).all()
    assert (bot.request_ts.dt.hour == 2).all()
    imp = crawled["impressions"].to_pandas()
    bot_imp = imp[imp.request_id.str.contains("-bot-")]
    assert len(bot_imp) == bot.n_items.sum() > 0
    assert bot_imp.experiment_id.isna().all() and set(bot_imp.variant) == {"control"}
    assert not crawled["clicks"].to_pandas().request_id.str.contains("-bot-").any()
    sessions = crawled["sessions"].to_pandas()
    assert sessions.session_id.str.contains("-bot-").sum() == 2
    # The other days have no crawler, and the organic rows of its day are the same as without it.
    assert not quiet["requests"].to_pandas().source.eq("c0ffee0c0ffee0").any()
    without = _day(Scenario(**{**dataclasses.asdict(sc), "crawler_day": None}), 1)
    assert _rows(without["impressions"]) == _rows(crawled["impressions"].filter(
        pc.invert(pc.match_substring(crawled["impressions"]["request_id"], "-bot-"))))
