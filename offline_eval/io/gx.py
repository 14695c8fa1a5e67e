"""Great Expectations gate: run the suites in expectations/ on Spark partitions.

Suites are plain GX 1.x JSON (``{"name", "expectations": [{"type", "kwargs"}]}``) so they are
reviewed like code. Row-count bounds are suite parameters (``{"$PARAMETER": "min_rows"}``)
filled from the previous partition's size, because a fixed bound cannot fit both a demo and
production. Each partition is validated by a GX Checkpoint whose action renders its page in the
day's Data Docs site (``DocsSite``; the escaping view and the action are in ``gx_docs``).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from offline_eval.config import ConfigError, resource_dir, validate_sql_name
from offline_eval.contract import INPUT_TABLES, TableSpec
from offline_eval.dates import validate_ds

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from offline_eval.io.gx_assets import SiteAssets

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
    # The table's page in the day's Data Docs site, relative to the site's folder (None: the
    # partition never reached GX, or no site was asked for).
    page: str | None = None

    def message(self) -> str:
        lines = [
            f"table {self.table}, partition ds={self.ds}: {len(self.failures)} of {self.evaluated} expectations failed"
        ]
        lines += [f"  - {f.describe()}" for f in self.failures]
        return "\n".join(lines)


@dataclass
class DocsSite:
    """The Data Docs site of one day's validation, built in ``directory`` (a fresh folder that
    the caller swaps in whole when the day is done, so a rerun leaves no page of an older run).
    The day's tables share one GX run named after the day, at midnight UTC of the day: the run
    name and time are folders of a page's path, so a rerun writes its pages where the previous
    run had them and validation.json's links keep their targets. ``assets``: where the pages
    find their scripts, styles and images (``gx_assets.prepare``; None: as GX does)."""

    directory: Path
    ds: str
    assets: SiteAssets | None = None
    run_time: datetime = field(init=False)
    keys: list[Any] = field(default_factory=list)  # GX result identifiers of the site's pages

    def __post_init__(self) -> None:
        validate_ds(self.ds)  # the run name is a folder of the site
        self.run_time = datetime.fromisoformat(self.ds).replace(tzinfo=UTC)
        self.directory = Path(self.directory).resolve()

    @property
    def name(self) -> str:
        """The site's name in the GX context (the title of its index): one per day, so days
        validated side by side in one process each build their own site."""
        return f"input validation {self.ds}"


def _suite_name(suite_json: dict) -> str:
    """GX makes one folder per dot-separated part of a suite's name: each must be a plain name."""
    name = suite_json.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"invalid expectation suite name {name!r}")
    for part in name.split("."):
        validate_sql_name(part, f"part of the expectation suite name {name!r}")
    return name


# The result formats of the two passes: the fast one, and the one with counts and examples.
_Format = Literal["BOOLEAN_ONLY", "SUMMARY"]


class _Runner:
    """One ephemeral GX context per process; the Spark data source is added once, and each
    table's suite and ValidationDefinition once per suite content."""

    def __init__(self) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

        from offline_eval.io import gx_docs

        # GX pins this module's logger to INFO at import ("Created temporary directory ... for
        # ephemeral docs site" on every run); let it follow its parents' level like the rest.
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.NOTSET)
        self._gx = gx
        self._docs = gx_docs
        self._run_identifier = RunIdentifier
        self._suite_identifier = ExpectationSuiteIdentifier
        self.context = gx.get_context(mode="ephemeral")
        # Task logs are read by people: no tqdm bars per metric.
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.source = self.context.data_sources.add_spark(name="offline_eval_spark")
        self._batch_definitions: dict[str, Any] = {}
        self._definitions: dict[str, tuple[str, Any]] = {}  # table -> (suite JSON, ValidationDefinition)
        self._sites: dict[str, DocsSite] = {}
        # GX is not thread-safe (its suite-parameter parser, its context's stores and site
        # config): callers may read partitions side by side, but one suite runs at a time.
        self.lock = threading.Lock()

    def _definition(self, table: str, suite_json: dict) -> Any:
        """The table's ValidationDefinition (its suite stored in the context, as a Checkpoint
        needs), made again only when the suite's content changed."""
        content = json.dumps(suite_json, sort_keys=True, default=str)
        cached = self._definitions.get(table)
        if cached and cached[0] == content:
            return cached[1]
        if cached:
            self.context.validation_definitions.delete(cached[1].name)
            self.context.suites.delete(cached[1].suite.name)
        if table not in self._batch_definitions:
            asset = self.source.add_dataframe_asset(name=table)
            self._batch_definitions[table] = asset.add_batch_definition_whole_dataframe(f"{table}_partition")
        suite = self.context.suites.add(
            self._gx.ExpectationSuite(name=_suite_name(suite_json), expectations=suite_json["expectations"]))
        definition = self.context.validation_definitions.add(
            self._gx.ValidationDefinition(name=table, data=self._batch_definitions[table], suite=suite))
        self._definitions[table] = (content, definition)
        return definition

    def validate(self, table: str, ds: str, df: DataFrame, suite_json: dict, parameters: dict,
                 docs: DocsSite | None = None) -> TableValidation:
        """Two Checkpoint runs at most: the suite with result format BOOLEAN_ONLY (about a third
        of the Spark jobs of the default format: no example rows are fetched), and only if
        something failed, again with SUMMARY for the counts and examples the error message and
        the page show. Both runs share the day's run id, so the second result (and its page)
        replaces the first: the site holds the final result of each table."""
        with self.lock:
            return self._validate(table, ds, df, suite_json, parameters, docs)

    def _validate(self, table: str, ds: str, df: DataFrame, suite_json: dict, parameters: dict,
                  docs: DocsSite | None) -> TableValidation:
        definition = self._definition(table, suite_json)
        if docs is not None:
            self._open(docs)
        run_id = self._run_identifier(run_name=validate_ds(ds),
                                      run_time=docs.run_time if docs else datetime.now(UTC))
        result_format: _Format
        for result_format in ("BOOLEAN_ONLY", "SUMMARY"):
            key, result = self._run_checkpoint(definition, result_format, docs, run_id, df, parameters)
            if result.success:
                break
        page = None
        if docs is not None:
            docs.keys.append(key)
            page = self._page(docs, key)
        else:
            self.context.validation_results_store.remove_key(key)
        payload = result.to_json_dict()
        failures = [_failure(r) for r in payload["results"] if not r["success"]]
        return TableValidation(
            table=table,
            ds=ds,
            success=bool(payload["success"]),
            evaluated=len(payload["results"]),
            failures=failures,
            result=payload,
            page=page,
        )

    def _run_checkpoint(self, definition: Any, result_format: _Format, docs: DocsSite | None, run_id: Any,
                        df: DataFrame, parameters: dict) -> tuple[Any, Any]:
        # One Checkpoint per table and pass: a Checkpoint gives every ValidationDefinition the
        # same batch parameters, and each table brings its own DataFrame.
        actions: list[Any] = [self._docs.PageOnlyDataDocsAction(name="table_page", site_names=[docs.name])
                              ] if docs else []
        checkpoint = self.context.checkpoints.add(self._gx.Checkpoint(
            name=f"{definition.name}_{uuid.uuid4().hex}", validation_definitions=[definition], actions=actions,
            result_format=result_format))
        try:
            outcome = checkpoint.run(batch_parameters={"dataframe": df}, expectation_parameters=parameters,
                                     run_id=run_id)
        finally:
            self.context.checkpoints.delete(checkpoint.name)
        ((key, result),) = outcome.run_results.items()
        return key, result

    def _open(self, docs: DocsSite) -> None:
        if (open_site := self._sites.get(docs.name)) is None:
            self.context.add_data_docs_site(docs.name, self._docs.site_config(docs.directory, docs.assets))
            self._sites[docs.name] = docs
        elif open_site is not docs:
            raise RuntimeError(f"the Data Docs of ds={docs.ds} are already being built in this process")

    def _page(self, docs: DocsSite, key: Any) -> str | None:
        (entry,) = self.context.get_docs_sites_urls(resource_identifier=key, site_names=[docs.name])
        url = entry.get("site_url")
        if not url:
            return None
        return Path(unquote(url.removeprefix("file://"))).relative_to(docs.directory).as_posix()

    def finish(self, docs: DocsSite, *, build_index: bool = True) -> None:
        """Build the site's index once for the whole day (an empty one when no table reached
        GX), then forget the day's site and results: the context lives as long as the process."""
        with self.lock:
            try:
                if build_index:
                    self._open(docs)
                    # GX renders the pages of the identifiers it is given, then the index from
                    # the pages in the folder: an identifier of no result builds the index alone.
                    self.context.build_data_docs(
                        site_names=[docs.name], build_index=True,
                        resource_identifiers=[self._suite_identifier(name="offline_eval_index_only")])
            finally:
                for key in docs.keys:
                    self.context.validation_results_store.remove_key(key)
                docs.keys.clear()
                if self._sites.get(docs.name) is docs:
                    self.context.delete_data_docs_site(docs.name)
                    del self._sites[docs.name]


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
    table: str, ds: str, df: DataFrame, *, parameters: dict | None = None, suite: dict | None = None,
    docs: DocsSite | None = None,
) -> TableValidation:
    """Validate one partition against ``expectations/<table>.json`` through a GX Checkpoint;
    with ``docs``, its page is rendered into that site (``finish_docs`` builds the index)."""
    validate_sql_name(table, "table name")  # the batch's name is a file name of the site
    suite = suite if suite is not None else load_suite(table)
    return runner().validate(table, ds, df, suite, parameters or {}, docs)


def finish_docs(docs: DocsSite, *, build_index: bool = True) -> None:
    """Build the index of a day's site once its tables are validated (``build_index=False``:
    only release what the process holds for it)."""
    runner().finish(docs, build_index=build_index)
