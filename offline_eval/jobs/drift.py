"""drift: compare a day's stored profile with its references (merges of stored daily profiles)
and write ``drift_daily``, ``concept_drift_daily`` and ``alerts_daily`` for that day; and
`offline-eval drift`, the same comparison for any two tables (CSV or Parquet).

Neither reads a row of the day again: the day was profiled once by compute (one pass), and
every statistic here is computed from profiles (``stats.drift``, ``stats.quality``,
``stats.alerts``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from offline_eval import failpoints
from offline_eval.config import ConfigError, DayConfig, Settings
from offline_eval.contract import OUTPUT_TABLES
from offline_eval.dates import DRIFT_REFERENCES, Window, reference_windows
from offline_eval.errors import DataError
from offline_eval.io import profiles as profile_store
from offline_eval.io.files import prepare_output, read_table
from offline_eval.io.paths import write_json_atomic
from offline_eval.io.spark import get_spark
from offline_eval.io.tables import Tables
from offline_eval.metrics.profile import categorical_counts, numeric_profiles
from offline_eval.stats.alerts import ctr_drop_alerts, threshold_alerts
from offline_eval.stats.drift import compare_categorical, compare_numeric
from offline_eval.stats.profile import Profile
from offline_eval.stats.quality import concept_drift

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)
_NUMERIC = ("byte", "short", "int", "bigint", "long", "float", "double", "decimal", "boolean")
ALERT_THRESHOLDS = "baseline_7d"  # the window whose mean +- 3 sd bound the metrics
CONCEPT_SEGMENTS = ("all", "new_users", "returning_users")


def reference(tables: Tables, window: Window) -> dict[tuple[str, str], Profile]:
    """A window's references: as the baselines task stored them (it re-merges them from the
    daily profiles just before this task), or merged here if they are not stored; the previous
    day is its day's profile."""
    if window.days > 1 and tables.has_partition("baselines", window.end, window_days=window.days):
        return profile_store.read_window(tables, window.days, window.end)
    return profile_store.read_reference(tables, window)


def compare(reference: Profile, current: Profile) -> list[dict[str, Any]]:
    """Every column of the reference: drift of the current profile against it."""
    out = []
    for c, ref in reference.numeric.items():
        cur = current.numeric.get(c)
        if cur is None:
            raise DataError(f"column {c}: in the reference but not profiled today (check: monitored columns)")
        out.append(compare_numeric(c, ref, cur))
    for c, ref in reference.categorical.items():
        out.append(compare_categorical(c, ref, current.categorical.get(c, {})))
    return out


def drift_rows(current: dict[tuple, Profile], refs: dict[str, tuple[Window, dict[tuple, Profile]]]
               ) -> tuple[list[dict], list[str]]:
    """drift_daily rows (without ds) of every version against every reference, and notes on
    versions without one."""
    rows, notes = [], []
    for name, (window, parsed) in refs.items():
        for key, cur in sorted(current.items()):
            ref = parsed.get(key)
            if ref is None or not any(p.n for p in ref.numeric.values()):
                notes.append(f"{key[0]} {key[1]}: no {name} reference (no traffic in the window ending {window.end})")
                continue
            for res in compare(ref, cur):
                rows.append({"model_name": key[0], "model_version": key[1], "reference": name,
                             "reference_end": window.end, "column": res["column"], "type": res["type"],
                             "psi": res.get("psi"), "ks": res.get("ks"), "ks_error_bound": res.get("ks_error_bound"),
                             "js": res.get("js"), "wasserstein": res.get("wasserstein"), "chi2_p": res.get("chi2_p"),
                             "p_value": res.get("ks_p", res.get("chi2_p")), "n_reference": res["n_reference"],
                             "n_current": res["n_current"], "verdict": res["verdict"],
                             "psi_edges": res.get("psi_edges")})
    return rows, notes


def concept_rows(current: dict[tuple, Profile], refs: dict[str, tuple[Window, dict[tuple, Profile]]]) -> list[dict]:
    """P(click | score bucket) per version and user segment against each reference."""
    out = []
    for name, (window, parsed) in refs.items():
        for key, cur in sorted(current.items()):
            for segment in CONCEPT_SEGMENTS:
                base = parsed.get(key).score_bins.get(segment) if key in parsed else None
                now = cur.score_bins.get(segment)
                if base is None or now is None or base.n == 0 or now.n == 0:
                    continue
                cd = concept_drift(base, now)
                out.append({"model_name": key[0], "model_version": key[1], "segment": segment, "reference": name,
                            "reference_end": window.end, "mean_abs_change": cd["mean_abs_change"],
                            "mean_rel_change": cd["mean_rel_change"], "buckets": json.dumps(cd["buckets"])})
    return out


def alert_rows(current: dict[tuple, Profile], refs: dict[str, tuple[Window, dict[tuple, Profile]]],
               ds: str) -> list[dict]:
    out = []
    for name, (window, parsed) in refs.items():
        for key, cur in sorted(current.items()):
            today = {k: s.values[ds] for k, s in cur.metrics.items() if ds in s.values}
            ref = parsed.get(key)
            base = {k: (s.mean, s.std, s.n) for k, s in ref.metrics.items()} if ref else {}
            found = ctr_drop_alerts(today, base, window.label)
            if name == ALERT_THRESHOLDS:
                found += threshold_alerts(today, base, window.label)
            for a in found:
                row = {"model_name": key[0], "model_version": key[1], **a}
                row["alert_id"] = alert_id(row, ds)
                out.append(row)
    return out


def alert_id(alert: dict, ds: str) -> str:
    """Stable across reruns: the same alert of the same day gets the same id."""
    parts = [alert["model_name"], alert["model_version"], ds, alert["rule"], alert["reference"],
             str(alert.get("variant")), alert["segment"], alert["metric"]]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def run(day: DayConfig, settings: Settings | None = None, spark: SparkSession | None = None) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    spark = spark or get_spark(settings, tag=f"offline-eval-drift-{day.ds}")
    tables = Tables(spark, settings)
    tables.ensure(OUTPUT_TABLES.values())
    t0 = time.monotonic()
    current = profile_store.read_days(tables, [day.ds]).get(day.ds)
    if not current:
        raise DataError(f"table profiles_daily: partition ds={day.ds} does not exist (check: partition_exists); "
                        "the compute task of that day writes it")
    refs = {w.name: (w, reference(tables, w)) for w in reference_windows(day.ds) if w.name in DRIFT_REFERENCES}
    rows, notes = drift_rows(current, refs)
    concept = concept_rows(current, refs)
    alerts = alert_rows(current, refs, day.ds)
    tables.write_rows(rows, "drift_daily", ds=day.ds)
    failpoints.reach("drift.between_writes")
    tables.write_rows(concept, "concept_drift_daily", ds=day.ds)
    tables.write_rows(alerts, "alerts_daily", ds=day.ds)
    for note in notes:
        log.info("drift ds=%s: %s", day.ds, note)
    drifted = sum(r["verdict"] in ("minor", "severe") for r in rows)
    log.info("ds=%s: %d drift rows (%d drifted), %d concept drift rows, %d alerts in %.1fs", day.ds, len(rows),
             drifted, len(concept), len(alerts), time.monotonic() - t0)
    return {"ds": day.ds, "drift_rows": len(rows), "drifted": drifted, "alerts": len(alerts), "notes": notes}


def split_columns(ref_types: dict[str, str], cur_types: dict[str, str], columns: Sequence[str] | None,
                  categorical: Sequence[str], source: str) -> tuple[list[str], list[str]]:
    """Columns to compare, split into numeric and categorical (strings and --categorical)."""
    wanted = list(columns) if columns else [c for c in ref_types if c in cur_types]
    missing = [c for c in wanted if c not in ref_types or c not in cur_types]
    if missing:
        raise DataError(f"{source}: columns {missing} not in both tables (check: required columns)")
    unknown = [c for c in categorical if c not in wanted]
    if unknown:
        raise ConfigError(f"--categorical {unknown}: not among the compared columns")
    numeric, cats = [], []
    for c in wanted:
        is_num = ref_types[c].split("(")[0] in _NUMERIC and cur_types[c].split("(")[0] in _NUMERIC
        (numeric if is_num and c not in categorical else cats).append(c)
    if not wanted:
        raise DataError(f"{source}: the tables share no column")
    return numeric, cats


def table_profile(df, numeric: Sequence[str], categorical: Sequence[str], name: str) -> Profile:
    """One profile of a whole table: one grid pass over the numeric columns, one JVM count of the
    categorical ones."""
    nums = numeric_profiles(df, [], numeric).get((), {})
    cats = categorical_counts(df, [], categorical).get((), {c: {} for c in categorical})
    return Profile("table", name, (), numeric=nums, categorical=cats)


def is_numeric(spark_type: str) -> bool:
    return spark_type.split("(")[0] in _NUMERIC


def align_types(ref_df, cur_df, reference: str, current: str, columns: Sequence[str] | None,
                categorical: Sequence[str]):
    """A column numeric in one table and text in the other: a DataError naming the file and a
    value that is not a number, unless ``--categorical`` lists it. A CSV column without any
    value is inferred as text: it is read as numeric (all missing, verdict "no data"), as the
    same column of a Parquet file would be."""
    from pyspark.sql import functions as F

    ref_types, cur_types = dict(ref_df.dtypes), dict(cur_df.dtypes)
    wanted = list(columns) if columns else [c for c in ref_types if c in cur_types]
    for c in wanted:
        if c not in ref_types or c not in cur_types or c in categorical:
            continue
        if is_numeric(ref_types[c]) == is_numeric(cur_types[c]):
            continue
        ref_num = is_numeric(ref_types[c])
        text_df, text_path = (cur_df, current) if ref_num else (ref_df, reference)
        num_path, num_type = (reference, ref_types[c]) if ref_num else (current, cur_types[c])
        value = F.col(c).cast("string")
        row = text_df.agg(F.count(F.col(c)).alias("values"),
                          F.first(F.when(value.try_cast("double").isNull(), value), ignorenulls=True).alias("example")
                          ).first()
        if row["values"] == 0:
            if ref_num:
                cur_df = cur_df.withColumn(c, F.col(c).cast("double"))
            else:
                ref_df = ref_df.withColumn(c, F.col(c).cast("double"))
            continue
        found = f"non-numeric values (e.g. {row['example']!r})" if row["example"] is not None else \
            f"type {(cur_types if ref_num else ref_types)[c]}"
        raise DataError(f"{text_path}: column {c} has {found} but is numeric ({num_type}) in {num_path} "
                        f"(check: same column types); pass --categorical {c} to compare it as categories")
    return ref_df, cur_df


def _finite(value: Any) -> Any:
    """NaN and infinities -> None, as in the --out file: the printed result is strict JSON too."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def run_files(reference: str, current: str, out: str | None, *, columns: Sequence[str] | None = None,
              categorical: Sequence[str] = (), settings: Settings | None = None) -> dict[str, Any]:
    """`offline-eval drift`: profile both tables (each column read once), compare the profiles."""
    out_path = prepare_output(out, "--out")
    settings = settings or Settings.from_env()
    spark = get_spark(settings, tag="offline-eval-drift")
    ref_df, cur_df = read_table(spark, reference), read_table(spark, current)
    for df, path in ((ref_df, reference), (cur_df, current)):
        if df.isEmpty():
            raise DataError(f"{path}: no data rows (check: non-empty input)")
    ref_df, cur_df = align_types(ref_df, cur_df, reference, current, columns, categorical)
    numeric, cats = split_columns(dict(ref_df.dtypes), dict(cur_df.dtypes), columns, categorical,
                                  f"{reference} vs {current}")
    t0 = time.monotonic()
    ref = table_profile(ref_df, numeric, cats, "reference")
    t1 = time.monotonic()
    cur = table_profile(cur_df, numeric, cats, "current")
    result = {"columns": compare(ref, cur), "reference": str(reference), "current": str(current),
              "seconds": {"reference_profile": round(t1 - t0, 3), "current_profile": round(time.monotonic() - t1, 3)}}
    drifted = [c["column"] for c in result["columns"] if c["verdict"] in ("minor", "severe")]
    log.info("drift %s vs %s: %d columns, drifted: %s", reference, current, len(result["columns"]), drifted or "none")
    if out_path:
        write_json_atomic(out_path, result)
    return _finite(result)
