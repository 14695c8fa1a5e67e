"""The day's GX Data Docs site: one page per validated table, built from each table's final
result, linked from validation.json, replaced whole by a rerun, and safe to open whatever the
data holds."""
from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from offline_eval.config import DayConfig
from offline_eval.io.paths import data_docs_dir, data_docs_page, validation_file
from offline_eval.io.tables import Tables
from offline_eval.io.validation import ValidationFailed
from offline_eval.jobs import validate

pytestmark = pytest.mark.spark

GOOD_DS = "2026-06-18"  # a day of the small world: every suite passes on it
HOSTILE = "<img src=x onerror=alert(1)>"


def _copy(spark, settings, table: str, ds: str, change: Callable[[DataFrame], DataFrame] = lambda df: df) -> None:
    """The good day's partition of ``table`` written again as ``ds`` through ``change`` (rows go
    via the driver: a table cannot be read and overwritten in one plan)."""
    tables = Tables(spark, settings)
    rows = change(tables.read(table, GOOD_DS).withColumn("ds", F.lit(ds)))
    tables.overwrite(spark.createDataFrame(rows.collect(), rows.schema), table, expected_ds=[ds])


def _first(n: int, column: str, value) -> Callable[[DataFrame], DataFrame]:
    def change(df: DataFrame) -> DataFrame:
        marked = df.withColumn("_i", F.row_number().over(Window.orderBy(*df.columns[:2])))
        return marked.withColumn(column, F.when(F.col("_i") <= n, F.lit(value)).otherwise(F.col(column))).drop("_i")
    return change


def _text(page: Path) -> str:
    """What a reader sees: the page without scripts, styles and tags, entities decoded."""
    s = re.sub(r"<(script|style)\b.*?</\1>", " ", page.read_text(), flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", s)))


def _pages(site: Path) -> list[Path]:
    return sorted((site / "validations").rglob("*.html"))


def _validate(settings, ds: str, names: tuple[str, ...]) -> dict:
    """Validate ``names`` of ``ds``; the day's validation.json, whether the day passed or not."""
    try:
        validate.run(DayConfig(ds=ds), settings, tables_to_check=names)
    except ValidationFailed:
        pass
    return json.loads(validation_file(settings, ds).read_text())


def test_a_page_per_table_linked_from_the_index_and_the_result(spark, settings, small_world):
    ds = "2026-09-01"
    _copy(spark, settings, "clicks", ds)
    _copy(spark, settings, "orders", ds, _first(2, "price", -4.5))  # the suite wants price > 0
    with pytest.raises(ValidationFailed) as err:
        validate.run(DayConfig(ds=ds), settings, tables_to_check=("clicks", "orders"))
    # the gate's message is unchanged, and it points at the site
    assert "expect_column_values_to_be_between on column price: 2 unexpected rows" in str(err.value)
    assert str(data_docs_page(settings, ds)) in str(err.value)

    site = data_docs_dir(settings, ds)
    pages = _pages(site)
    assert [p.name for p in pages] == ["offline_eval_spark-clicks.html", "offline_eval_spark-orders.html"]
    clicks, orders = pages

    failed = _text(orders)
    assert "Status: Failed" in failed
    # the failing expectation of column price, its bound from the suite, and the 2 rows put in
    assert "values must be greater than 0" in failed
    assert "2 unexpected values found" in failed
    assert re.search(r"Unexpected Value Count -4\.5 2\b", failed)
    assert "Status: Succeeded" in _text(clicks) and "unexpected values found" not in _text(clicks)

    index = data_docs_page(settings, ds).read_text()
    for page in pages:
        assert page.relative_to(site).as_posix() in index

    saved = json.loads(validation_file(settings, ds).read_text())
    reports = settings.reports_dir
    assert saved["data_docs"] == f"validation/{ds}/data_docs/index.html"
    assert reports / saved["data_docs"] == data_docs_page(settings, ds)
    assert reports / saved["tables"]["orders"]["data_docs_page"] == orders
    assert reports / saved["tables"]["clicks"]["data_docs_page"] == clicks
    assert saved["tables"]["orders"]["success"] is False and saved["tables"]["clicks"]["success"] is True


def test_a_rerun_replaces_the_site(spark, settings, small_world):
    ds = "2026-09-02"
    _copy(spark, settings, "clicks", ds)
    _copy(spark, settings, "orders", ds, _first(3, "price", -1.0))
    first = _validate(settings, ds, ("clicks", "orders"))
    old_orders = settings.reports_dir / first["tables"]["orders"]["data_docs_page"]
    assert "3 unexpected values found" in _text(old_orders)

    _copy(spark, settings, "orders", ds)  # the feed repaired
    again = _validate(settings, ds, ("orders",))
    assert again["success"] is True
    site = data_docs_dir(settings, ds)
    new_orders = settings.reports_dir / again["tables"]["orders"]["data_docs_page"]
    # exactly the latest validation: the old orders page and the clicks page of the first run
    # (not validated again) are gone, with nothing left of the first build next to the site
    assert _pages(site) == [new_orders] and not old_orders.exists()
    assert "Status: Succeeded" in _text(new_orders)
    assert "clicks" not in data_docs_page(settings, ds).read_text()
    assert sorted(p.name for p in site.parent.iterdir()) == ["data_docs", "validation.json"]


def test_a_hostile_value_is_escaped(spark, settings, small_world):
    ds = "2026-09-03"
    _copy(spark, settings, "impressions", ds, _first(3, "variant", HOSTILE))
    saved = _validate(settings, ds, ("impressions",))
    assert saved["tables"]["impressions"]["success"] is False
    page = settings.reports_dir / saved["tables"]["impressions"]["data_docs_page"]
    raw = page.read_text()
    assert HOSTILE not in raw and "<img src=x" not in raw  # never a tag: only text in the page
    assert html.escape(HOSTILE) in raw
    # shown as text, with the count of the rows that hold it
    assert f"Unexpected Value Count {HOSTILE} 3" in _text(page)
    assert "3 unexpected values found" in _text(page)
