"""baselines: the references a day is compared with, merged from stored daily profiles.

For day D: the previous day (the profile of D-1) and the 7- and 28-day windows ending the last
Sunday before D (stored in ``baselines``, keyed by window length and end). A reference reads
``profiles_daily`` only, never a raw partition. The one exception is said out loud: a day of a
window that has no profile yet (history loaded before the pipeline ran, or a day whose compute
failed) is profiled here from its raw partitions, once, and stored like any other profile.

Days whose input validation failed are left out of every reference, with a warning naming
them and their result files; once the data is fixed and the day re-run, the next run of this
task merges the fixed day in (windows are re-merged whenever their profiles changed).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from offline_eval.config import DayConfig, Settings
from offline_eval.contract import OUTPUT_TABLES
from offline_eval.dates import Window, reference_windows, validate_ds
from offline_eval.errors import DataError
from offline_eval.io import profiles as profile_store
from offline_eval.io.paths import failed_validation_days
from offline_eval.io.results import write_day
from offline_eval.io.spark import get_spark
from offline_eval.io.tables import Tables
from offline_eval.metrics.day import evaluate
from offline_eval.stats.profile import Profile

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

WEEKLY_WINDOWS = (7, 28)


def ensure_profiles(tables: Tables, dates: Iterable[str], template: DayConfig) -> dict[str, str]:
    """Make sure every day of ``dates`` that may be used has a profile; returns {ds: reason}
    for the days left out (failed validation, no data)."""
    dates = sorted(set(dates))
    stored = set(tables.partitions("profiles_daily"))
    failed = failed_validation_days(tables.settings, dates)
    if failed:
        log.warning("references leave out %d day(s) whose input validation failed: %s (results: %s). After "
                    "fixing the data and re-running those days, the windows that contain them are re-merged.",
                    len(failed), ", ".join(failed), ", ".join(str(p) for p in failed.values()))
    left_out = {d: "input validation failed" for d in failed}
    todo = []
    for d in dates:
        if d in stored or d in failed:
            continue
        if tables.has_partition("impressions", d):
            todo.append(d)
        else:
            left_out[d] = "no impressions"

    def one(d: str) -> None:
        log.info("no profile of %s yet (never evaluated): profiling it from its raw partitions", d)
        t0 = time.monotonic()
        try:
            profile_from_raw(tables, DayConfig(ds=d, new_user_days=template.new_user_days,
                                               new_item_days=template.new_item_days,
                                               repurchase_lookback_days=template.repurchase_lookback_days,
                                               sample_rows=template.sample_rows))
        except DataError as exc:
            log.warning("cannot profile %s, leaving it out: %s", d, exc)
            left_out[d] = str(exc)
            return
        log.info("profile of %s stored in %.1fs", d, time.monotonic() - t0)

    if todo:
        t0 = time.monotonic()
        # Two days at a time: their small Spark jobs interleave on the engine.
        with ThreadPoolExecutor(2, thread_name_prefix="profile") as pool:
            list(pool.map(one, todo))
        log.info("profiled %d day(s) from raw partitions in %.1fs", len(todo), time.monotonic() - t0)
    return left_out


def profile_from_raw(tables: Tables, day: DayConfig) -> None:
    """Profile (and sample) a day the pipeline never evaluated; metrics_daily stays as it is."""
    cached: dict[str, DataFrame] = {}

    def read(table: str) -> DataFrame:
        if table not in cached:
            cached[table] = tables.read(table, day.ds).cache()
        return cached[table]

    try:
        prior = tables.read_range("orders", day.ds_offset(-day.repurchase_lookback_days), day.ds_offset(-1))
        write_day(tables, evaluate(read, prior, day, workers=tables.settings.evaluate_workers), metrics=False)
    finally:
        for df in cached.values():
            df.unpersist()


def store(tables: Tables, window: Window, references: dict[tuple[str, str], Profile]) -> bool:
    """Write the window to ``baselines`` unless the stored rows are the same; True if written."""
    def rows(profiles: Iterable[Profile]) -> list[dict]:
        out = [r for p in profiles for r in profile_store.to_rows(p)]
        return sorted(out, key=lambda r: tuple(str(r[c]) for c in ("model_name", "model_version", "kind", "name",
                                                                   "variant", "segment")))

    if rows(references.values()) == rows(profile_store.read_window(tables, window.days, window.end).values()):
        return False
    profile_store.write_window(tables, references.values(), window.days, window.end)
    return True


def build(tables: Tables, windows: list[Window], template: DayConfig) -> dict[str, dict[tuple[str, str], Profile]]:
    """Every window's reference per model version, profiling missing days first."""
    left_out = ensure_profiles(tables, {d for w in windows for d in w.dates}, template)
    out = {}
    for w in windows:
        t0 = time.monotonic()
        out[w.name] = refs = profile_store.read_reference(tables, w, left_out)
        written = store(tables, w, refs) if w.days > 1 else False
        used = sorted({d for p in refs.values() for d in p.days})
        log.info("%s: %d model version(s) from %d of %d days%s (%.1fs)", w.label, len(refs), len(used), w.days,
                 "; stored" if written else "", time.monotonic() - t0)
    return out


def run(day: DayConfig, settings: Settings | None = None, spark: SparkSession | None = None) -> dict:
    """The references of ``day``: the previous day and the 7 days ending the last Sunday."""
    settings = settings or Settings.from_env()
    spark = spark or get_spark(settings, tag=f"offline-eval-baselines-{day.ds}")
    tables = Tables(spark, settings)
    tables.ensure(OUTPUT_TABLES.values())
    refs = build(tables, reference_windows(day.ds), day)
    return {"ds": day.ds, "references": {name: {"/".join(k): list(p.days) for k, p in r.items()}
                                         for name, r in refs.items()}}


def run_windows(end: str, window_lengths: Iterable[int] = WEEKLY_WINDOWS, settings: Settings | None = None,
                spark: SparkSession | None = None) -> dict:
    """Build and store the windows of the given lengths ending on ``end`` (the weekly DAG, and
    ``offline-eval baseline``)."""
    end = validate_ds(end)
    settings = settings or Settings.from_env()
    spark = spark or get_spark(settings, tag=f"offline-eval-baselines-{end}")
    tables = Tables(spark, settings)
    tables.ensure(OUTPUT_TABLES.values())
    windows = [Window(f"baseline_{n}d", int(n), end) for n in sorted(set(window_lengths))]
    refs = build(tables, windows, DayConfig(ds=end))
    return {w.name: {"/".join(k): list(p.days) for k, p in refs[w.name].items()} for w in windows}
