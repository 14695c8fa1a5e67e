"""The GX suites and the data contract cannot disagree: the structural expectations of every
suite (columns, types, key non-nulls and uniqueness) are those of ``contract.py``, and a suite
that drifts from it is refused with the difference named."""
from __future__ import annotations

import copy
import json

import pytest

from offline_eval.config import ConfigError
from offline_eval.contract import INPUT_TABLES
from offline_eval.io.gx import contract_mismatches, load_suite
from tests.conftest import ROOT


@pytest.mark.parametrize("table", sorted(INPUT_TABLES))
def test_every_suite_matches_the_contract(table):
    suite = json.loads((ROOT / "expectations" / f"{table}.json").read_text())
    assert suite["name"] == f"offline_eval.{table}"
    assert contract_mismatches(INPUT_TABLES[table], suite) == []


def test_a_suite_that_drifts_from_the_contract_is_refused(tmp_path):
    suite = json.loads((ROOT / "expectations" / "orders.json").read_text())
    drifted = copy.deepcopy(suite)
    for e in drifted["expectations"]:
        if e["type"] == "expect_column_values_to_be_of_type" and e["kwargs"]["column"] == "price":
            e["kwargs"]["type_"] = "FloatType"  # the contract says double
        if e["type"] == "expect_table_columns_to_match_set":
            e["kwargs"]["column_set"].remove("order_ts")
    drifted["expectations"] = [e for e in drifted["expectations"]
                               if not (e["type"] == "expect_column_values_to_be_unique")]
    assert contract_mismatches(INPUT_TABLES["orders"], drifted) == [
        f"expect_table_columns_to_match_set: [{sorted(set(INPUT_TABLES['orders'].all_columns) - {'order_ts'})}] "
        f"instead of {sorted(INPUT_TABLES['orders'].all_columns)}",
        "expect_column_values_to_be_of_type on column price: FloatType instead of DoubleType",
        "expect_column_values_to_be_unique on key column order_id: missing",
    ]
    (tmp_path / "orders.json").write_text(json.dumps(drifted))
    with pytest.raises(ConfigError, match="disagrees with the contract of table orders .*FloatType instead of"):
        load_suite("orders", tmp_path)
