"""The gate: validate one day's input partitions with the GX suites. Each partition is read once
into the day's snapshot (cached in the engine, reused by compute); a failure raises
``ValidationFailed`` naming table, partition, column and check; the result JSON and the day's
GX Data Docs site (one page per validated table, reports/validation/<ds>/data_docs/) are kept."""
from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from offline_eval import thresholds
from offline_eval.config import ConfigError, DayConfig, Settings
from offline_eval.contract import CATEGORICAL_FEATURE_PREFIX, INPUT_TABLES, NUMERIC_FEATURE_PREFIX
from offline_eval.errors import DataError
from offline_eval.io import gx_assets
from offline_eval.io.file_schema import Finding, check_partition
from offline_eval.io.gx import DocsSite, Failure, TableValidation, finish_docs, validate_partition
from offline_eval.io.gx import runner as gx_runner
from offline_eval.io.paths import data_docs_dir, data_docs_page, replace_dir, validation_file, write_json_atomic
from offline_eval.io.snapshot import DaySnapshot
from offline_eval.io.tables import Tables
from offline_eval.metrics.inputs import feature_health
from offline_eval.thresholds import DEFAULT, Thresholds

log = logging.getLogger(__name__)

# The gate's numbers are Thresholds fields (docs/thresholds.md). Row counts are held against the
# trailing range of the last validated days (a week by default, so the weekly cycle is inside
# it): 5x above its highest day or an 80% drop below its lowest is a broken feed, not a promotion.


class ValidationFailed(DataError):
    """One or more input partitions failed their expectation suite (or are missing)."""


# A model feature whose null share jumps by more than null_share_jump (0.5, absolute) against
# the previous day, or that becomes (almost) all null (all_null, 0.95), is a broken feed: the
# promotion day's surge of new users (no order yet) moves the null share of
# f_user_avg_order_value from 0.58 to 0.70 in the demo.
# A category that holds at least dominant_share (half) of the rows and gained more than
# dominant_jump (30 points) of share in a day is a new dominant value (a default written by a
# broken upstream join, "unknown" devices): the demo's promotion lifts promo_ad traffic from
# 9% to 39%, which is not flagged.


def feature_findings(today: dict[str, dict], previous: dict[str, dict] | None,
                     thresholds: Thresholds = DEFAULT) -> list[Finding]:
    """Feature columns that went (almost) all null, or whose null share jumped, or that became
    constant, against the previous day's health (stored in its validation result)."""
    out = []
    t = thresholds
    for column, now in sorted(today.items()):
        before = (previous or {}).get(column)
        if before is None:
            continue
        if now["null_share"] >= t.all_null and before["null_share"] < t.all_null or \
                now["null_share"] - before["null_share"] > t.null_share_jump:
            out.append(Finding("null_share", column, f"{now['null_share']:.1%} nulls",
                               f"about the previous day's {before['null_share']:.1%} (at most "
                               f"+{t.null_share_jump:.0%}, below {t.all_null:.0%})"))
        elif now["distinct"] <= 1 < before["distinct"]:
            out.append(Finding("not_constant", column, f"{now['distinct']} distinct value",
                               f"several, as on the previous day ({before['distinct']})"))
        elif (top := now.get("top")) and isinstance(before.get("top"), list):
            value, share = top[0]
            was = dict((v, s) for v, s in before["top"]).get(value, 0.0)
            if share >= t.dominant_share and share - was > t.dominant_jump:
                out.append(Finding("dominant_value", column, f"{value!r} in {share:.1%} of rows",
                                   f"no new dominant value ({value!r} had {was:.1%} the previous day; at most "
                                   f"+{t.dominant_jump:.0%} for a value above {t.dominant_share:.0%})"))
    return out


def previous_result(settings: Settings, day: DayConfig) -> dict:
    """{table: its entry} of the previous day's validation result, read once per day ({} when
    that day has none or it cannot be read)."""
    try:
        tables = json.loads(validation_file(settings, day.ds_offset(-1)).read_text())["tables"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return tables if isinstance(tables, dict) else {}


def trailing_rows(settings: Settings, day: DayConfig, thresholds: Thresholds = DEFAULT) -> dict[str, list[int]]:
    """{table: row counts of the partitions that passed validation on the last
    ``row_count_trailing_days`` days}, from their validation results (no Spark job)."""
    out: dict[str, list[int]] = {}
    for back in range(1, thresholds.row_count_trailing_days + 1):
        try:
            tables = json.loads(validation_file(settings, day.ds_offset(-back)).read_text())["tables"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for table, entry in tables.items() if isinstance(tables, dict) else ():
            if isinstance(entry, dict) and entry.get("success") is True and isinstance(entry.get("rows"), int):
                out.setdefault(table, []).append(entry["rows"])
    return out


def row_count_bounds(trailing: Sequence[int] | int | None, thresholds: Thresholds = DEFAULT
                     ) -> dict[str, int | None]:
    """The row-count expectation's bounds from the trailing days' counts (or one previous count)."""
    counts = [c for c in ([trailing] if isinstance(trailing, int) else trailing or []) if c]
    if not counts:
        return {"min_rows": 1, "max_rows": None}
    return {
        "min_rows": max(1, math.floor(min(counts) * thresholds.row_count_low)),
        "max_rows": math.ceil(max(counts) * thresholds.row_count_high),
    }


def _missing(table: str, ds: str, qualified: str) -> TableValidation:
    return TableValidation(
        table=table,
        ds=ds,
        success=False,
        evaluated=1,
        failures=[Failure("partition_exists", None, None, f" (no partition ds={ds} in {qualified})")],
        result={"success": False, "missing_partition": True},
    )


def reference_rows(tables: Tables, table: str, day: DayConfig, trailing: dict[str, list[int]]) -> list[int]:
    """Row counts the day's count is held against: the trailing validated days' (no Spark job),
    else the previous day's partition counted (history loaded before the pipeline ran)."""
    return trailing.get(table) or [tables.read(table, day.ds_offset(-1), require=False).count()]


def file_findings(tables: Tables, table: str, location: str) -> list[Finding]:
    """The files of the partition at ``location`` (its URI in the metastore) against the
    contract (io/file_schema.py), before Spark reads them with the table's schema; nothing to
    check when the warehouse is not mounted here."""
    try:
        return check_partition(INPUT_TABLES[table], tables.local_path(table, location))
    except ConfigError:
        return []


# Tables are read and validated side by side: most of a suite's time is spent waiting for small
# Spark jobs, which the engine's FAIR scheduler runs together.
PARALLEL_TABLES = 4


def docs_link(settings: Settings, path: Path) -> str:
    """A file of a Data Docs site as validation.json names it: relative to the reports folder,
    so the link reads the same in the day's report folder, where publish copies the file."""
    return path.relative_to(settings.reports_dir).as_posix()


def validate_day(tables: Tables, day: DayConfig, tables_to_check: tuple[str, ...] | None = None) -> dict:
    """Validate the input partitions of ``day`` into its snapshot; raise ValidationFailed (and
    drop the snapshot) if any suite fails or a partition is missing. The day's Data Docs site
    is built in a fresh folder and swapped in whole, failed or not."""
    settings = tables.settings
    snapshot = DaySnapshot(tables, day.ds)
    names = tables_to_check or tuple(INPUT_TABLES)
    rows: dict[str, int] = {}
    health: dict[str, dict] = {}
    previous = previous_result(settings, day)
    limits = thresholds.load().defaults  # the input tables are shared by every model
    trailing = trailing_rows(settings, day, limits)

    def one(name: str, docs: DocsSite) -> TableValidation:
        t0 = time.monotonic()
        location = tables.partition_location(name, day.ds)
        if location is None:
            result = _missing(name, day.ds, f"{settings.database}.{name}")
        elif findings := file_findings(tables, name, location):
            result = TableValidation(
                table=name, ds=day.ds, success=False, evaluated=len(findings),
                failures=[Failure(f.check, f.column, None, f": observed {f.observed}, expected {f.expected}")
                          for f in findings],
                result={"success": False, "file_schema": [f.__dict__ for f in findings]})
        else:
            df = snapshot.create(name)
            rows[name] = df.count()  # the one read of the partition: it fills the cache
            bounds = row_count_bounds(reference_rows(tables, name, day, trailing), limits)
            result = validate_partition(name, day.ds, df, parameters=bounds, docs=docs)
            features = [c for c in INPUT_TABLES[name].column_names
                        if c.startswith((NUMERIC_FEATURE_PREFIX, CATEGORICAL_FEATURE_PREFIX))]
            if features:
                health[name] = feature_health(df, features)
                if bad := feature_findings(health[name], (previous.get(name) or {}).get("features"), limits):
                    result.success = False
                    result.evaluated += len(features)
                    result.failures += [Failure(f.check, f.column, None, f": observed {f.observed}, expected "
                                                f"{f.expected}") for f in bad]
        size = f"{rows[name]} rows" if name in rows else "no partition"
        log.info("%s ds=%s: %s (%s, %d expectations, %.1fs)", name, day.ds, "ok" if result.success else "FAILED",
                 size, result.evaluated, time.monotonic() - t0)
        return result

    def build(tmp_site: Path) -> list[TableValidation]:
        # the shared assets' URLs are relative to the site's final folder (tmp_site is its sibling)
        docs = DocsSite(tmp_site, day.ds, assets=gx_assets.prepare(settings, site))
        done = False
        try:
            with ThreadPoolExecutor(PARALLEL_TABLES, thread_name_prefix="validate") as pool:
                pool.submit(gx_runner)  # import GX and make its context while the first partitions are read
                validated = list(pool.map(lambda name: one(name, docs), names))
            done = True
        finally:
            t0 = time.monotonic()
            finish_docs(docs, build_index=done)
            if done:
                log.info("Data Docs of ds=%s: index built in %.2fs", day.ds, time.monotonic() - t0)
        return validated

    site = data_docs_dir(settings, day.ds)
    results = replace_dir(site, build)
    summary = {
        "ds": day.ds,
        "database": settings.database,
        "success": all(r.success for r in results),
        "data_docs": docs_link(settings, data_docs_page(settings, day.ds)),
        "tables": {
            r.table: {
                "success": r.success,
                "rows": rows.get(r.table),
                "data_docs_page": docs_link(settings, site / r.page) if r.page else None,
                **({"features": health[r.table]} if r.table in health else {}),
                "evaluated": r.evaluated,
                "failures": [f.__dict__ for f in r.failures],
                "result": r.result,
            }
            for r in results
        },
    }
    out = validation_file(settings, day.ds)
    write_json_atomic(out, summary)
    failed = [r for r in results if not r.success]
    if failed:
        snapshot.drop(names)  # nothing downstream may use a rejected day
        message = "\n".join(r.message() for r in failed)
        raise ValidationFailed(f"input validation failed for ds={day.ds} (result: {out}, Data Docs: "
                               f"{data_docs_page(settings, day.ds)})\n{message}")
    return {"ds": day.ds, "success": True, "result": str(out), "rows": rows,
            "data_docs": str(data_docs_page(settings, day.ds))}


def validation_status(path: Path) -> str:
    """passed | failed | missing: what the day's GX result file says."""
    try:
        return "passed" if json.loads(path.read_text()).get("success") is True else "failed"
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError, AttributeError):
        return "failed"
