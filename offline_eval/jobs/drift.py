"""`offline-eval drift`: drift of any two tables (CSV or Parquet) through the pipeline's Spark
code: reference edges once, one histogram pass over each table, statistics on the counts."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

from offline_eval.config import ConfigError, Settings
from offline_eval.errors import DataError
from offline_eval.io.paths import write_json_atomic
from offline_eval.io.spark import get_spark
from offline_eval.jobs.readout import read_table
from offline_eval.metrics.drift import histograms, reference_profile
from offline_eval.stats.drift import MISSING, compare_categorical, compare_numeric, dense

log = logging.getLogger(__name__)
_NUMERIC = ("byte", "short", "int", "bigint", "long", "float", "double", "decimal", "boolean")


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


def compare(profile: dict, current_hist: dict) -> list[dict[str, Any]]:
    out = []
    for c, ref in profile["numeric"].items():
        out.append(compare_numeric(c, ref, dense(current_hist[c], len(ref["edges"]) + 1),
                                   current_hist[c].get(MISSING, 0)))
    for c, ref in profile["categorical"].items():
        cur = {("__null__" if k is None else k): v for k, v in current_hist[c].items()}
        out.append(compare_categorical(c, ref["counts"], cur))
    return out


def run(reference: str, current: str, out: str | None, *, columns: Sequence[str] | None = None,
        categorical: Sequence[str] = (), settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    spark = get_spark("offline-eval-drift", settings, hive=False)
    ref_df, cur_df = read_table(spark, reference), read_table(spark, current)
    numeric, cats = split_columns(dict(ref_df.dtypes), dict(cur_df.dtypes), columns, categorical,
                                  f"{reference} vs {current}")
    t0 = time.monotonic()
    profile = reference_profile(ref_df, numeric, cats)
    t1 = time.monotonic()
    current_hist = histograms(cur_df, {c: profile["numeric"][c]["edges"] for c in numeric}, cats)
    result = {"columns": compare(profile, current_hist),
              "reference": str(reference), "current": str(current),
              "seconds": {"reference_profile": round(t1 - t0, 3), "current_histograms": round(time.monotonic() - t1, 3)}}
    drifted = [c["column"] for c in result["columns"] if c["verdict"] in ("minor", "severe")]
    log.info("drift %s vs %s: %d columns, drifted: %s", reference, current, len(result["columns"]), drifted or "none")
    if out:
        write_json_atomic(Path(out), result)
    return result


def daily(impressions: Any, refs: dict[str, tuple[str, dict]]) -> tuple[list[dict], list[str]]:
    """Drift of the day's impressions of every model version against every reference in one
    histogram pass. ``refs``: {reference name: (window end, ``baseline.parse`` output)}.
    Returns drift_daily rows (without ds) and notes on versions without a reference."""
    from pyspark.sql import functions as F

    from offline_eval.jobs.baseline import monitored_columns
    from offline_eval.metrics.drift import grouped_histograms

    sep = "\u0001"
    _, categorical = monitored_columns()
    df = impressions.withColumn("_g", F.concat_ws(sep, "model_name", "model_version"))
    versions = sorted(tuple(r) for r in impressions.select("model_name", "model_version").distinct().collect())
    edge_sets = {ref: {sep.join(key): {c: p["edges"] for c, p in parsed[key]["profile"]["numeric"].items()}
                       for key in parsed if key in versions}
                 for ref, (_, parsed) in refs.items()}
    hist = grouped_histograms(df, "_g", edge_sets, categorical, groups=[sep.join(v) for v in versions])
    rows, notes = [], []
    for ref, (end, parsed) in refs.items():
        for key in versions:
            if key not in parsed or not parsed[key]["profile"]["numeric"]:
                notes.append(f"{key[0]} {key[1]}: no {ref} reference (no traffic in the window ending {end})")
                continue
            g = sep.join(key)
            current = {**hist["numeric"][ref].get(g, {}), **hist["categorical"].get(g, {})}
            for kind in ("numeric", "categorical"):
                for c in parsed[key]["profile"][kind]:
                    current.setdefault(c, {})
            for res in compare(parsed[key]["profile"], current):
                rows.append({"model_name": key[0], "model_version": key[1], "reference": ref, "reference_end": end,
                             "column": res["column"], "type": res["type"], "psi": res.get("psi"),
                             "ks": res.get("ks"), "ks_error_bound": res.get("ks_error_bound"), "js": res.get("js"),
                             "wasserstein": res.get("wasserstein"), "chi2_p": res.get("chi2_p"),
                             "p_value": res.get("ks_p", res.get("chi2_p")), "n_reference": res["n_reference"],
                             "n_current": res["n_current"], "verdict": res["verdict"],
                             "psi_edges": res.get("psi_edges")})
    return rows, notes
