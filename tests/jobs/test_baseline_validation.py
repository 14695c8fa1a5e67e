"""A baseline never uses a day whose input partitions failed validation."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import SMALL_START

pytestmark = pytest.mark.spark

END = "2026-06-18"  # the small world's two days are SMALL_START (06-17) and END


def test_baseline_leaves_out_days_that_failed_validation(spark, settings, small_world, caplog):
    from offline_eval.io.paths import failed_validation_days, validation_dir, write_json_atomic
    from offline_eval.io.tables import Tables
    from offline_eval.jobs import baseline

    from offline_eval.contract import OUTPUT_TABLES

    tables = Tables(spark, settings)
    tables.ensure(OUTPUT_TABLES.values())
    # other tests write more partitions (e.g. a corrupted copy on 2026-07-01): the window's days only
    raw = spark.table(f"{settings.database}.impressions").where(
        f"model_version = 'v1' AND ds IN ('{SMALL_START}', '{END}')").toPandas()

    def stored() -> dict:
        rows = tables.read_baseline(2, END).where("model_version = 'v1'").toPandas()
        price = rows[(rows.kind == "numeric") & (rows.name == "f_item_price")].iloc[0]
        ctr = rows[(rows.kind == "metric") & (rows.name == "ctr") & (rows.segment == "all")
                   & (rows.variant == "control")].iloc[0]
        return {"price_n": price.n, "price_mean": price["mean"], "ctr_days": sorted(json.loads(ctr.payload)["values"])}

    bad = validation_dir(settings, SMALL_START) / "validation.json"
    assert not bad.exists()
    try:
        baseline.build(tables, END, [2])
        both = stored()
        write_json_atomic(bad, {"ds": SMALL_START, "success": False, "tables": {}})
        assert failed_validation_days(settings, [SMALL_START, END]) == {SMALL_START: bad}
        with caplog.at_level("WARNING", logger="offline_eval.jobs.baseline"):
            baseline.build(tables, END, [2])
        one = stored()
    finally:
        bad.unlink(missing_ok=True)
        spark.sql(f"ALTER TABLE {tables.qualified('baselines')} DROP IF EXISTS PARTITION (window_days=2, ds='{END}')")

    assert both["price_n"] == raw.f_item_price.notna().sum()
    assert both["price_mean"] == pytest.approx(raw.f_item_price.mean())
    assert both["ctr_days"] == [SMALL_START, END]
    kept = raw[raw.ds == END].f_item_price.dropna().to_numpy(float)
    assert 0 < kept.size < both["price_n"]
    assert one["price_n"] == kept.size and one["price_mean"] == pytest.approx(np.mean(kept))
    assert one["ctr_days"] == [END]
    assert f"leave out 1 day(s) whose input validation failed: {SMALL_START}" in caplog.text


def test_unreadable_or_missing_validation_results(settings):
    from offline_eval.io.paths import failed_validation_days, validation_dir, write_json_atomic

    ok, broken, never = "2026-09-01", "2026-09-02", "2026-09-03"
    write_json_atomic(validation_dir(settings, ok) / "validation.json", {"ds": ok, "success": True})
    (validation_dir(settings, broken)).mkdir(parents=True)
    (validation_dir(settings, broken) / "validation.json").write_text("{not json")
    assert set(failed_validation_days(settings, [ok, broken, never])) == {broken}
