"""The numpy generator reproduces the Spark generator row for row, and its xxhash64 is Spark's."""
from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from offline_eval.contract import INPUT_TABLES
from offline_eval.fastgen import TABLES, arrow_schema, generate_day, spark_round, xxhash64
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
    for name in TABLES:
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
