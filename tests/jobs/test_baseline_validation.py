"""A reference never uses a day whose input partitions failed validation, and never reads a
raw partition once the daily profiles exist."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import SMALL_START

pytestmark = pytest.mark.spark

END = "2026-06-18"  # the small world's two days are SMALL_START (06-17) and END


def _stored(tables, window_days: int = 2) -> dict:
    rows = tables.read_baseline(window_days, END).where("model_version = 'v1'").toPandas()
    price = rows[(rows.kind == "numeric") & (rows.name == "f_item_price")].iloc[0]
    ctr = rows[(rows.kind == "metric") & (rows.name == "ctr") & (rows.segment == "all")
               & (rows.variant == "control")]
    return {"price_n": price.n, "price_mean": price["mean"], "rows": len(rows),
            "ctr_days": sorted(json.loads(ctr.iloc[0].payload)["values"]) if len(ctr) else []}


def test_references_leave_out_days_that_failed_validation(spark, settings, small_world, caplog):
    from offline_eval.io.paths import failed_validation_days, validation_dir, write_json_atomic
    from offline_eval.io.tables import Tables
    from offline_eval.jobs import baselines

    tables = Tables(spark, settings)
    # other tests write more partitions (e.g. a corrupted copy on 2026-07-01): the window's days only
    raw = spark.table(f"{settings.database}.impressions").where(
        f"model_version = 'v1' AND ds IN ('{SMALL_START}', '{END}')").toPandas()
    bad = validation_dir(settings, SMALL_START) / "validation.json"
    assert not bad.exists()
    try:
        baselines.run_windows(END, [2], settings)
        both = _stored(tables)
        write_json_atomic(bad, {"ds": SMALL_START, "success": False, "tables": {}})
        assert failed_validation_days(settings, [SMALL_START, END]) == {SMALL_START: bad}
        with caplog.at_level("WARNING", logger="offline_eval.jobs.baselines"):
            baselines.run_windows(END, [2], settings)
        one = _stored(tables)
    finally:
        bad.unlink(missing_ok=True)
        tables.drop_partition("baselines", END, window_days=2)

    assert both["price_n"] == raw.f_item_price.notna().sum()
    assert both["price_mean"] == pytest.approx(raw.f_item_price.mean(), rel=1e-12)
    kept = raw[raw.ds == END].f_item_price.dropna().to_numpy(float)
    assert 0 < kept.size < both["price_n"]
    assert one["price_n"] == kept.size and one["price_mean"] == pytest.approx(np.mean(kept), rel=1e-12)
    assert f"leave out 1 day(s) whose input validation failed: {SMALL_START}" in caplog.text


def test_a_weekly_reference_reads_no_input_table(spark, settings, small_world):
    """With every day profiled, the input tables can vanish: the reference is built all the
    same, identical to the one built while they were there."""
    from offline_eval.contract import INPUT_TABLES
    from offline_eval.io.tables import Tables
    from offline_eval.jobs import baselines

    tables = Tables(spark, settings)
    baselines.run_windows(END, [2], settings)  # profiles every day of the window that has none
    before = tables.read_baseline(2, END).toPandas().sort_values(["model_version", "kind", "name", "variant",
                                                                  "segment"]).reset_index(drop=True)
    tables.drop_partition("baselines", END, window_days=2)
    hidden = {t: f"{t}_hidden_by_test" for t in INPUT_TABLES}
    for t, h in hidden.items():
        spark.sql(f"ALTER TABLE {tables.qualified(t)} RENAME TO {tables.qualified(h)}")
    try:
        baselines.run_windows(END, [2], settings)
    finally:
        for t, h in hidden.items():
            spark.sql(f"ALTER TABLE {tables.qualified(h)} RENAME TO {tables.qualified(t)}")
    after = tables.read_baseline(2, END).toPandas().sort_values(["model_version", "kind", "name", "variant",
                                                                 "segment"]).reset_index(drop=True)
    assert len(before) > 0 and after.equals(before)
    tables.drop_partition("baselines", END, window_days=2)


def test_unreadable_or_missing_validation_results(settings):
    from offline_eval.io.paths import failed_validation_days, validation_dir, write_json_atomic

    ok, broken, never = "2027-03-01", "2027-03-02", "2027-03-03"  # days no other test validates
    write_json_atomic(validation_dir(settings, ok) / "validation.json", {"ds": ok, "success": True})
    (validation_dir(settings, broken)).mkdir(parents=True)
    (validation_dir(settings, broken) / "validation.json").write_text("{not json")
    assert set(failed_validation_days(settings, [ok, broken, never])) == {broken}
