"""Great Expectations gate: run the suites in expectations/ on Spark partitions.

Suites are plain GX 1.x JSON (``{"name", "expectations": [{"type", "kwargs"}]}``) so they are
reviewed like code. Row-count bounds are suite parameters (``{"$PARAMETER": "min_rows"}``)
filled from the previous partition's size, because a fixed bound cannot fit both a demo and
production.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline_eval.config import ConfigError, resource_dir, validate_sql_name
from offline_eval.contract import INPUT_TABLES, TableSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)


def expectations_dir() -> Path:
    return Path(os.environ.get("OFFLINE_EVAL_EXPECTATIONS", resource_dir("expectations")))


# How GX names the Spark type of each contract (Spark SQL) type.
GX_SPARK_TYPES = {"string": "StringType", "bigint": "LongType", "int": "IntegerType", "double": "DoubleType",
                  "float": "FloatType", "boolean": "BooleanType", "date": "DateType", "timestamp": "TimestampType"}


def contract_mismatches(spec: TableSpec, suite: dict[str, Any]) -> list[str]:
    """Where a suite's structural expectations disagree with the contract (``contract.py``):
    the column set, each column's type, a non-null check per key column and the uniqueness of
    the keys. The business rules (ranges, allowed values, row counts) are the suite's own."""
    by_type: dict[str, list[dict]] = {}
    for e in suite.get("expectations", []):
        by_type.setdefault(e["type"], []).append(e.get("kwargs", {}))
    out = []
    column_sets = [set(k.get("column_set", [])) for k in by_type.get("expect_table_columns_to_match_set", [])]
    if column_sets != [set(spec.all_columns)]:
        out.append(f"expect_table_columns_to_match_set: {sorted(map(sorted, column_sets))} instead of "
                   f"{sorted(spec.all_columns)}")
    types = {k["column"]: k.get("type_") for k in by_type.get("expect_column_values_to_be_of_type", [])}
    wanted = {c: GX_SPARK_TYPES[t] for c, t in spec.columns}
    for column in sorted(set(types) | set(wanted)):
        if types.get(column) != wanted.get(column):
            out.append(f"expect_column_values_to_be_of_type on column {column}: {types.get(column)} instead of "
                       f"{wanted.get(column)}")
    not_null = {k["column"] for k in by_type.get("expect_column_values_to_not_be_null", [])}
    out += [f"expect_column_values_to_not_be_null on key column {c}: missing" for c in spec.keys if c not in not_null]
    if len(spec.keys) == 1:
        unique = {k["column"] for k in by_type.get("expect_column_values_to_be_unique", [])}
        if spec.keys[0] not in unique:
            out.append(f"expect_column_values_to_be_unique on key column {spec.keys[0]}: missing")
    elif spec.keys:
        compound = [sorted(k.get("column_list", [])) for k in by_type.get("expect_compound_columns_to_be_unique", [])]
        if sorted(spec.keys) not in compound:
            out.append(f"expect_compound_columns_to_be_unique on {list(spec.keys)}: missing")
    return out


def load_suite(table: str, directory: Path | None = None) -> dict[str, Any]:
    """The suite of an input table; refused (ConfigError) where it disagrees with the contract."""
    validate_sql_name(table, "table name")
    path = (directory or expectations_dir()) / f"{table}.json"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite for table {table}: {path}")
    suite = json.loads(path.read_text())
    if table in INPUT_TABLES and (wrong := contract_mismatches(INPUT_TABLES[table], suite)):
        raise ConfigError(f"suite {path} disagrees with the contract of table {table} (offline_eval/contract.py): "
                          + "; ".join(wrong))
    return suite


@dataclass
class Failure:
    expectation: str
    column: str | None
    unexpected_count: int | None
    detail: str

    def describe(self) -> str:
        where = f" on column {self.column}" if self.column else ""
        count = f": {self.unexpected_count} unexpected rows" if self.unexpected_count is not None else ""
        return f"{self.expectation}{where}{count}{self.detail}"


@dataclass
class TableValidation:
    table: str
    ds: str
    success: bool
    evaluated: int
    failures: list[Failure] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)

    def message(self) -> str:
        lines = [
            f"table {self.table}, partition ds={self.ds}: {len(self.failures)} of {self.evaluated} expectations failed"
        ]
        lines += [f"  - {f.describe()}" for f in self.failures]
        return "\n".join(lines)


class _Runner:
    """One ephemeral GX context per process; the Spark data source is added once."""

    def __init__(self) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # GX pins this module's logger to INFO at import ("Created temporary directory ... for
        # ephemeral docs site" on every run); let it follow its parents' level like the rest.
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.NOTSET)
        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        # Task logs are read by people: no tqdm bars per metric.
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.source = self.context.data_sources.add_spark(name="offline_eval_spark")
        self._assets: dict[str, Any] = {}
        # GX is not thread-safe (its suite-parameter parser, its context's stores): callers may
        # read partitions side by side, but one suite runs at a time.
        self.lock = threading.Lock()

    def batch(self, table: str, df: DataFrame) -> Any:
        if table not in self._assets:
            asset = self.source.add_dataframe_asset(name=table)
            self._assets[table] = asset.add_batch_definition_whole_dataframe(f"{table}_partition")
        return self._assets[table].get_batch(batch_parameters={"dataframe": df})

    def validate(self, table: str, ds: str, df: DataFrame, suite_json: dict, parameters: dict) -> TableValidation:
        """Two passes: the suite with result format BOOLEAN_ONLY (about a third of the Spark jobs
        of the default format: no example rows are fetched), and only if something failed,
        again with SUMMARY for the counts and examples the error message shows."""
        with self.lock:
            return self._validate(table, ds, df, suite_json, parameters)

    def _validate(self, table: str, ds: str, df: DataFrame, suite_json: dict, parameters: dict) -> TableValidation:
        suite = self._gx.ExpectationSuite(name=suite_json["name"], expectations=suite_json["expectations"])
        batch = self.batch(table, df)
        result = batch.validate(suite, expectation_parameters=parameters, result_format="BOOLEAN_ONLY")
        if not result.success:
            result = batch.validate(suite, expectation_parameters=parameters, result_format="SUMMARY")
        payload = result.to_json_dict()
        failures = [_failure(r) for r in payload["results"] if not r["success"]]
        return TableValidation(
            table=table,
            ds=ds,
            success=bool(payload["success"]),
            evaluated=len(payload["results"]),
            failures=failures,
            result=payload,
        )


def _failure(r: dict[str, Any]) -> Failure:
    cfg = r["expectation_config"]
    kwargs = cfg.get("kwargs", {})
    res = r.get("result") or {}
    detail = ""
    error = _exception_message(r.get("exception_info"))
    if error:
        detail = f" (error: {error})"
    elif "observed_value" in res:
        detail = f" (observed {res['observed_value']!r})"
    elif res.get("partial_unexpected_list"):
        detail = f" (e.g. {res['partial_unexpected_list'][:3]!r})"
    column = kwargs.get("column") or (",".join(kwargs["column_list"]) if "column_list" in kwargs else None)
    return Failure(cfg["type"], column, res.get("unexpected_count"), detail)


def _exception_message(info: Any) -> str | None:
    """First line of the error behind an expectation that could not be evaluated (unreadable
    file, type mismatch). GX nests it one level deeper, per metric, when several metrics failed."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        lines = [ln.strip() for ln in str(info.get("exception_message") or "unknown error").splitlines() if ln.strip()]
        # A Spark failure arrives as py4j's "An error occurred while calling o123.x" followed by
        # the JVM exception: show the JVM line, which says what is wrong with which file.
        jvm = [ln for ln in lines if "Exception: " in ln]
        return (jvm[0].split("Exception: ", 1)[1] if jvm else lines[0])[:500]
    for value in info.values():
        found = _exception_message(value)
        if found:
            return found
    return None


_RUNNER: _Runner | None = None
_RUNNER_LOCK = threading.Lock()


def runner() -> _Runner:
    """The process's GX context, made on first use (importing GX takes seconds: callers may
    start this in a thread while Spark reads the data)."""
    global _RUNNER
    with _RUNNER_LOCK:
        if _RUNNER is None:
            _RUNNER = _Runner()
        return _RUNNER


def validate_partition(
    table: str, ds: str, df: DataFrame, *, parameters: dict | None = None, suite: dict | None = None
) -> TableValidation:
    """Validate one partition against ``expectations/<table>.json``."""
    suite = suite if suite is not None else load_suite(table)
    return runner().validate(table, ds, df, suite, parameters or {})
