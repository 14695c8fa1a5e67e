"""The typed rows and the contract cannot disagree: every record's fields are its table's
columns, in order, without the partition columns; and the row it produces is what the table
takes."""
from __future__ import annotations

import dataclasses
import hashlib

import pytest

from offline_eval.stats.records import RECORDS, AlertRow, DriftRow, MetricRow


@pytest.mark.parametrize("record", RECORDS, ids=[r.__name__ for r in RECORDS])
def test_fields_are_the_contract_columns(record):
    assert [f.name for f in dataclasses.fields(record)] == record.TABLE.column_names


def test_rows_from_the_rules():
    drift = DriftRow.of(("m", "v1"), "previous_day", "2026-06-17", {
        "column": "c_device", "type": "categorical", "psi": 0.3, "js": 0.2, "chi2_p": 1e-9, "n_reference": 10,
        "n_current": 12, "verdict": "severe", "categories": 3})
    assert drift.to_row() == {
        "model_name": "m", "model_version": "v1", "reference": "previous_day", "reference_end": "2026-06-17",
        "column": "c_device", "type": "categorical", "psi": 0.3, "ks": None, "ks_error_bound": None, "js": 0.2,
        "wasserstein": None, "chi2_p": 1e-9, "p_value": 1e-9, "n_reference": 10, "n_current": 12,
        "verdict": "severe", "psi_edges": None}
    assert drift.drifted
    alert = {"rule": "ctr_drop", "tier": "medium", "reference": "previous_day (2026-06-17)", "variant": "control",
             "segment": "all", "metric": "ctr", "value": 0.04, "baseline_mean": 0.08, "relative_change": -0.5}
    row = AlertRow.of(("m", "v1"), "2026-06-18", alert)
    expected_id = hashlib.sha1(b"m|v1|2026-06-18|ctr_drop|previous_day (2026-06-17)|control|all|ctr").hexdigest()[:16]
    assert row.alert_id == expected_id and row.to_row()["z"] is None and row.to_row()["relative_change"] == -0.5
    with pytest.raises(ValueError, match=r"alert fields \['surprise'\]"):
        AlertRow.of(("m", "v1"), "2026-06-18", {**alert, "surprise": 1})
    with pytest.raises(KeyError):
        MetricRow.of({"model_name": "m", "model_version": "v1", "variant": "control", "segment": "all", "metric": "ctr",
                      "value": 0.1, "numerator": 1.0})  # no denominator
