"""Every suite catches its own kind of bad partition, and the message names table, partition,
expectation and count."""
from __future__ import annotations

import json
import shutil

import pytest
from pyspark.sql import functions as F

from offline_eval.config import DayConfig
from offline_eval.io.paths import validation_dir
from offline_eval.io.tables import Tables
from offline_eval.io.validation import ValidationFailed, row_count_bounds
from offline_eval.jobs import validate

pytestmark = pytest.mark.spark

GOOD_DS = "2026-06-18"
BAD_DS = "2026-07-01"


def test_clean_day_passes(small_world, settings):
    result = validate.run(DayConfig(ds=GOOD_DS), settings)
    assert result["success"] is True
    saved = json.loads((validation_dir(settings, GOOD_DS) / "validation.json").read_text())
    assert saved["success"] is True and set(saved["tables"]) == {
        "impressions", "clicks", "add_to_cart", "orders", "users", "items", "sessions", "requests"
    }


def _write_corrupted(spark, settings, table: str, corrupt) -> None:
    """Copy the good partition to BAD_DS through ``corrupt`` (rows go via the driver: the
    table cannot be read and overwritten in one plan)."""
    tables = Tables(spark, settings)
    good = tables.read(table, GOOD_DS).withColumn("ds", F.lit(BAD_DS))
    bad = corrupt(good)
    local = spark.createDataFrame(bad.collect(), bad.schema)
    tables.overwrite(local, table, expected_ds=[BAD_DS])


def _first(n: int, column: str, value):
    def corrupt(df):
        marked = df.withColumn("_i", F.row_number().over(__import__("pyspark.sql").sql.Window.orderBy(*df.columns[:2])))
        return marked.withColumn(column, F.when(F.col("_i") <= n, F.lit(value)).otherwise(F.col(column))).drop("_i")

    return corrupt


CASES = [
    (
        "impressions",
        _first(3, "request_id", None),
        "expect_column_values_to_not_be_null on column request_id: 3 unexpected rows",
    ),
    ("orders", _first(2, "price", -4.5), "expect_column_values_to_be_between on column price: 2 unexpected rows"),
    (
        "impressions",
        _first(4, "variant", "treatment_b"),
        "expect_column_values_to_be_in_set on column variant: 4 unexpected rows",
    ),
    (
        "sessions",
        _first(1, "variant", "holdout"),
        "expect_column_values_to_be_in_set on column variant: 1 unexpected rows",
    ),
    ("impressions", _first(2, "score", 1.5), "expect_column_values_to_be_between on column score: 2 unexpected rows"),
    (
        "impressions",
        lambda df: df.unionByName(df.limit(5)),
        "expect_compound_columns_to_be_unique on column request_id,item_id: 10 unexpected rows",
    ),
]


@pytest.mark.parametrize("table, corrupt, expected", CASES, ids=[c[2].split(":")[0] for c in CASES])
def test_bad_partition_is_named(spark, settings, small_world, table, corrupt, expected):
    _write_corrupted(spark, settings, table, corrupt)
    with pytest.raises(ValidationFailed) as err:
        validate.run(DayConfig(ds=BAD_DS), settings, tables_to_check=(table,))
    message = str(err.value)
    assert f"table {table}, partition ds={BAD_DS}" in message
    assert expected in message
    saved = json.loads((validation_dir(settings, BAD_DS) / "validation.json").read_text())
    assert saved["success"] is False and saved["tables"][table]["success"] is False


def test_missing_partition_is_named(settings, small_world):
    with pytest.raises(ValidationFailed) as err:
        validate.run(DayConfig(ds="2026-08-01"), settings, tables_to_check=("clicks",))
    assert "table clicks, partition ds=2026-08-01" in str(err.value)
    assert "partition_exists" in str(err.value)
    assert "no partition ds=2026-08-01 in offline_eval_test.clicks" in str(err.value)


def test_row_count_bounds_follow_the_trailing_range():
    assert row_count_bounds(None) == {"min_rows": 1, "max_rows": None}
    assert row_count_bounds(0) == {"min_rows": 1, "max_rows": None}
    assert row_count_bounds(1000) == {"min_rows": 200, "max_rows": 5000}
    # a week with a weekend dip: 0.2 x its lowest day, 5 x its highest
    assert row_count_bounds([1000, 1200, 700, 650, 1100, 1000, 990]) == {"min_rows": 130, "max_rows": 6000}


def test_trailing_rows_come_from_the_passed_validations_of_the_last_week(tmp_path):
    from offline_eval.config import Settings
    from offline_eval.io.paths import validation_file, write_json_atomic
    from offline_eval.io.validation import trailing_rows

    s = Settings(home=tmp_path / "home", reports_dir=tmp_path / "reports")
    day = DayConfig(ds="2026-06-20")
    entries = {"2026-06-19": (True, 900), "2026-06-18": (False, 10), "2026-06-16": (True, 1100),
               "2026-06-13": (True, 950), "2026-06-12": (True, 5)}  # 06-12 is 8 days back: outside
    for ds, (ok, rows) in entries.items():
        write_json_atomic(validation_file(s, ds), {"tables": {"impressions": {"success": ok, "rows": rows}}})
    validation_file(s, "2026-06-17").parent.mkdir(parents=True)
    validation_file(s, "2026-06-17").write_text("{not json")
    assert trailing_rows(s, day) == {"impressions": [900, 1100, 950]}


# ---------------------------------------------------------------- upstream schema breaks
# The day's impressions written again by a foreign writer (pyarrow), with one change each. Spark
# would read a missing column as nulls and the GX suites on the DataFrame would pass.

def _impressions_files(settings, spark, change) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables = Tables(spark, settings)
    root = tables.location("impressions")
    good = pq.read_table(root / f"ds={GOOD_DS}")
    good = good.drop_columns([c for c in good.column_names if c == "ds"])
    target = root / f"ds={BAD_DS}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    change(good, target, pa, pc, pq)
    tables.register_partitions("impressions", [BAD_DS])


def _drop(column):
    return lambda t, d, pa, pc, pq: pq.write_table(t.drop_columns([column]), d / "part-0.parquet")


def _rename(old, new):
    return lambda t, d, pa, pc, pq: pq.write_table(
        t.rename_columns([new if c == old else c for c in t.column_names]), d / "part-0.parquet")


def _as_string(column):
    def change(t, d, pa, pc, pq):
        i = t.schema.get_field_index(column)
        pq.write_table(t.set_column(i, column, pc.cast(t.column(column), pa.string())), d / "part-0.parquet")
    return change


def _two_schemas(t, d, pa, pc, pq):
    half = t.num_rows // 2
    pq.write_table(t.slice(0, half), d / "part-0.parquet")
    i = t.schema.get_field_index("f_hour")
    rest = t.slice(half)
    pq.write_table(rest.set_column(i, "f_hour", pc.cast(rest.column("f_hour"), pa.int64())), d / "part-1.parquet")


def _being_written(t, d, pa, pc, pq):
    pq.write_table(t, d / "part-0.parquet")
    (d / "_temporary" / "0").mkdir(parents=True)
    (d / "_temporary" / "0" / "part-1.parquet").write_bytes(b"PAR1")


FILE_CASES = [
    (_drop("c_device"), "column_present on column c_device: observed missing from 1 of 1 file(s) (part-0.parquet): "
                        "Spark would read it as all null, expected column c_device string in every file"),
    (_rename("f_item_price", "item_price"), "column_present on column f_item_price: observed missing from 1 of 1"),
    (_as_string("f_item_price"), "column_type on column f_item_price: observed type string, expected double (double)"),
    (_two_schemas, "files_agree: observed 2 different schemas among 2 files (part-0.parquet vs part-1.parquet differ "
                   "on f_hour int32, f_hour int64)"),
    (_being_written, "partition_complete: observed a write in progress (_temporary)"),
]


@pytest.mark.parametrize("change, expected", FILE_CASES, ids=[c[1].split(":")[0] + ":" + c[1].split(" ")[2]
                                                              for c in FILE_CASES])
def test_upstream_schema_break_is_named(spark, settings, small_world, change, expected):
    _impressions_files(settings, spark, change)
    with pytest.raises(ValidationFailed) as err:
        validate.run(DayConfig(ds=BAD_DS), settings, tables_to_check=("impressions",))
    message = str(err.value)
    assert f"table impressions, partition ds={BAD_DS}" in message
    assert expected in message
    saved = json.loads((validation_dir(settings, BAD_DS) / "validation.json").read_text())
    assert saved["tables"]["impressions"]["success"] is False
    checks = {f["check"] for f in saved["tables"]["impressions"]["result"]["file_schema"]}
    assert expected.split(" ")[0].rstrip(":") in checks



def test_a_partition_registered_outside_the_table_folder_is_checked_where_it_is(spark, settings, small_world,
                                                                                 tmp_path):
    """A partition added with its own LOCATION (ALTER TABLE ... ADD PARTITION ... LOCATION, as a
    foreign writer registers one): its files are checked in that folder, not in <table>/ds=<day>."""
    import pyarrow.parquet as pq

    ds = "2026-07-30"
    tables = Tables(spark, settings)
    good = pq.read_table(tables.location("impressions") / f"ds={GOOD_DS}")
    elsewhere = tmp_path / "landing" / ds.replace("-", "")
    elsewhere.mkdir(parents=True)
    pq.write_table(good.drop_columns([c for c in good.column_names if c in ("ds", "c_device")]),
                   elsewhere / "part-0.parquet")
    spark.sql(f"ALTER TABLE {tables.qualified('impressions')} ADD PARTITION (ds='{ds}') "
              f"LOCATION '{elsewhere}'")
    with pytest.raises(ValidationFailed) as err:
        validate.run(DayConfig(ds=ds), settings, tables_to_check=("impressions",))
    assert ("column_present on column c_device: observed missing from 1 of 1 file(s) (part-0.parquet)"
            in str(err.value))

def test_feature_rules_against_the_previous_day():
    from offline_eval.io.validation import feature_findings

    before = {"c_device": {"null_share": 0.0, "distinct": 3}, "f_user_avg_order_value": {"null_share": 0.577,
              "distinct": 900}, "f_hour": {"null_share": 0.0, "distinct": 24}}
    # the demo's promotion day (2026-06-17 -> 06-18): new users have no order yet; nothing is flagged
    assert feature_findings({**before, "f_user_avg_order_value": {"null_share": 0.695, "distinct": 700}}, before) == []
    got = feature_findings({"c_device": {"null_share": 1.0, "distinct": 0},
                            "f_user_avg_order_value": {"null_share": 0.96, "distinct": 50},
                            "f_hour": {"null_share": 0.0, "distinct": 1}}, before)
    assert [(f.check, f.column) for f in got] == [("null_share", "c_device"), ("not_constant", "f_hour"),
                                                  ("null_share", "f_user_avg_order_value")]
    assert got[0].observed == "100.0% nulls" and "previous day's 0.0%" in got[0].expected
    assert feature_findings({"c_device": {"null_share": 1.0, "distinct": 0}}, None) == []  # no previous day


def test_a_new_dominant_category_is_flagged():
    from offline_eval.io.validation import feature_findings

    before = {"c_device": {"null_share": 0.0, "distinct": 3, "top": [["mobile", 0.6], ["desktop", 0.3],
                                                                      ["tablet", 0.1]]},
              "c_traffic_source": {"null_share": 0.0, "distinct": 4, "top": [["organic", 0.5], ["search", 0.2],
                                                                             ["email", 0.11], ["promo_ad", 0.09]]}}
    # the demo's promotion: promo_ad 9% -> 39%, and mobile keeping its majority, pass
    today = {"c_device": {"null_share": 0.0, "distinct": 3, "top": [["mobile", 0.62], ["desktop", 0.28],
                                                                     ["tablet", 0.1]]},
             "c_traffic_source": {"null_share": 0.0, "distinct": 4, "top": [["promo_ad", 0.39], ["organic", 0.3],
                                                                            ["search", 0.2], ["email", 0.11]]}}
    assert feature_findings(today, before) == []
    # a default value taking over: 'unknown' (unseen the day before) in 72% of rows
    today["c_device"]["top"] = [["unknown", 0.72], ["mobile", 0.2], ["desktop", 0.08]]
    # and a value that was 20% jumping to 55% (+35 points)
    today["c_traffic_source"]["top"] = [["search", 0.55], ["organic", 0.3], ["promo_ad", 0.15]]
    got = feature_findings(today, before)
    assert [(f.check, f.column, f.observed) for f in got] == [
        ("dominant_value", "c_device", "'unknown' in 72.0% of rows"),
        ("dominant_value", "c_traffic_source", "'search' in 55.0% of rows")]
    assert "'unknown' had 0.0% the previous day" in got[0].expected


def _good_day_then(spark, settings, day_a: str, day_b: str, c_device) -> None:
    """Day A: a copy of the good day's impressions, validated (its feature health stored); day
    B: the same rows with ``c_device(good_table)`` as c_device, validated (raises if rejected)."""
    import pyarrow.parquet as pq

    tables = Tables(spark, settings)
    root = tables.location("impressions")
    good = pq.read_table(root / f"ds={GOOD_DS}")
    good = good.drop_columns([c for c in good.column_names if c == "ds"])
    i = good.schema.get_field_index("c_device")
    for ds, t in ((day_a, good), (day_b, good.set_column(i, "c_device", c_device(good)))):
        target = root / f"ds={ds}"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        pq.write_table(t, target / "part-0.parquet")
    tables.register_partitions("impressions", [day_a, day_b])
    assert validate.run(DayConfig(ds=day_a), settings, tables_to_check=("impressions",))["success"]
    validate.run(DayConfig(ds=day_b), settings, tables_to_check=("impressions",))


def test_a_feature_that_went_all_null_stops_the_day(spark, settings, small_world):
    """Day A: a copy of the good day (validated, its feature health stored); day B: the same
    rows with c_device null everywhere, as an upstream writer that lost the field would write
    them. Every GX suite passes on B; the feature rule does not."""
    import pyarrow as pa

    day_a, day_b = "2026-07-10", "2026-07-11"
    with pytest.raises(ValidationFailed) as err:
        _good_day_then(spark, settings, day_a, day_b, lambda good: pa.nulls(good.num_rows, pa.string()))
    message = str(err.value)
    assert f"table impressions, partition ds={day_b}" in message
    assert "null_share on column c_device: observed 100.0% nulls, expected about the previous day's 0.0%" in message
    assert "expectations failed" in message and message.count("  - ") == 1


def test_a_new_dominant_value_stops_the_day(spark, settings, small_world):
    """Day A: a copy of the good day; day B: the same rows with c_device 'unknown' on 80% of them
    (a broken upstream join that writes its default). GX passes; the dominant-value rule does
    not, and the stored health holds the shares of both days."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    day_a, day_b = "2026-07-20", "2026-07-21"
    good = pq.read_table(Tables(spark, settings).location("impressions") / f"ds={GOOD_DS}")
    n = good.num_rows
    with pytest.raises(ValidationFailed) as err:
        _good_day_then(spark, settings, day_a, day_b, lambda good: pc.if_else(
            pa.array([k % 5 != 0 for k in range(n)]), pa.scalar("unknown"), good.column("c_device")))
    devices = good.column("c_device").to_pylist()
    expected_share = sum(k % 5 != 0 for k in range(n)) / n  # 'unknown' was never a device on day A
    assert f"dominant_value on column c_device: observed 'unknown' in {expected_share:.1%} of rows" in str(err.value)
    saved = json.loads((validation_dir(settings, day_b) / "validation.json").read_text())
    top = saved["tables"]["impressions"]["features"]["c_device"]["top"]
    assert top[0][0] == "unknown" and top[0][1] == pytest.approx(expected_share)
    before = json.loads((validation_dir(settings, day_a) / "validation.json").read_text())
    top_a = before["tables"]["impressions"]["features"]["c_device"]["top"]
    counts = sorted((-devices.count(v), v) for v in set(devices) if v is not None)[:5]
    assert [[v, pytest.approx(-c / n)] for c, v in counts] == top_a
