"""Everything one day yields, from its input DataFrames, in as few passes as possible:

* the ``metrics_daily`` rows (business metrics per version, variant and segment, and the
  model-quality metrics);
* the day's profile per model version (``stats.profile.Profile``): grid counts and moments
  of every numeric feature and the score, category counts, score bins per user segment and
  the day's metric values;
* a bounded, deterministic sample of the impressions per version (the Evidently report's data).

The inputs come from a ``read(table)`` callable, so the same code evaluates a validated
snapshot (the compute task) and the raw partitions of a day the pipeline never evaluated (a
reference window's history, built by the baselines task).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from offline_eval.config import DayConfig
from offline_eval.contract import IMPRESSIONS, METRICS_DAILY, categorical_features, numeric_features
from offline_eval.metrics import BROADCAST_ROWS_MAX
from offline_eval.metrics.ab import MetricSpec, arm_moments
from offline_eval.metrics.catalog import catalog_coverage
from offline_eval.metrics.daily import (
    SEGMENTS,
    cells_of,
    daily_metrics,
    headline_metrics,
    sessions_with_newness,
    with_prior_buyers,
    with_segments,
)
from offline_eval.metrics.funnel import IMPRESSION_KEYS, impression_funnel
from offline_eval.metrics.profile import Group, categorical_counts, numeric_profiles
from offline_eval.metrics.quality import QualityCells, quality_cells, quality_metrics
from offline_eval.metrics.sample import bounded_sample
from offline_eval.metrics.serving import CLEAN_METRICS, Security, security, security_metrics, system_metrics
from offline_eval.stats.ab import Moments
from offline_eval.stats.profile import MAX_DAILY_CATEGORIES, MetricStats, NumericProfile, Profile, fold_rare
from offline_eval.stats.quality import ScoreBins
from offline_eval.thresholds import DEFAULT, Thresholds

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

VERSION_KEYS = ("model_name", "model_version")
NUMERIC_MONITORED = (*numeric_features(IMPRESSIONS), "score")
CATEGORICAL_MONITORED = tuple(categorical_features(IMPRESSIONS))
SAMPLE_COLUMNS = (*numeric_features(IMPRESSIONS), *categorical_features(IMPRESSIONS), "score")
SAMPLE_LABEL = "clicked"
PROFILE_SEGMENTS = ("all", "new_users", "returning_users")  # score bins kept per user segment

Reader = Callable[[str], "DataFrame"]
# Names each step of ``evaluate`` for whoever times it (the compute job's log, the benchmark's
# per-stage profile): ``stage(name)`` is entered around the step's Spark work.
Stage = Callable[[str], AbstractContextManager]
T = TypeVar("T")
# The metrics whose daily lifts carry intervals (stats/lifts.py), defined as in the readout.
LIFT_SPECS = (MetricSpec("ctr", "ratio", "clicks", denominator="impressions"),
              MetricSpec("cvr", "ratio", "orders", denominator="clicks"),
              MetricSpec("gmv_per_user", "mean", "gmv"))


@dataclass
class DayResult:
    ds: str
    metrics: list[dict]  # metrics_daily rows (without ds)
    profiles: dict[tuple[str, str], Profile]
    sample: DataFrame  # model_name, model_version and SAMPLE_COLUMNS, up to sample_rows per version
    findings: list[dict]  # security_daily rows (without ds)

    @property
    def models(self) -> list[tuple[str, str]]:
        return sorted(self.profiles)


def _untimed(_name: str) -> AbstractContextManager:
    return nullcontext()


@contextmanager
def _cached(df: DataFrame) -> Iterator[DataFrame]:
    """``df`` cached for the block, and released after it."""
    cached = df.cache()
    try:
        yield cached
    finally:
        cached.unpersist()


def evaluate(read: Reader, prior_orders: DataFrame, day: DayConfig, thresholds: Thresholds = DEFAULT, *,
             stage: Stage = _untimed, workers: int = 3) -> DayResult:
    """Evaluate one day. ``read(table)`` returns the day's partition of an input table;
    ``prior_orders`` the orders of the repurchase lookback window before it; ``thresholds``
    the security layer's rules.

    ``workers``: how many of the day's independent passes run at once (threads of this client
    sharing its Spark session; the engine runs their jobs side by side). The main line is the
    business metrics, then the security metrics; the quality aggregates, the security layer's
    inputs, the system and catalogue metrics and the category counts start beside it at once,
    the numeric profile as soon as the business metrics have named the versions. 1 runs them one after
    another (the stage profile of bench/pipeline_bench.py, whose stage times would otherwise
    overlap)."""
    impressions = read("impressions")
    users, items, clicks, requests = read("users"), read("items"), read("clicks"), read("requests")
    with stage("count_clicks"):
        few_clicks = clicks.count() <= BROADCAST_ROWS_MAX  # a count of the cached day: no read
    funnel = impression_funnel(impressions, clicks, read("add_to_cart"), read("orders"), few_clicks=few_clicks)
    rows = (
        funnel.transform(lambda df: with_segments(df, users, items, day.ds, day.new_user_days, day.new_item_days))
        .transform(lambda df: with_prior_buyers(df, prior_orders))
    )
    # Cached for its consumers (the business metrics, quality, unit moments, the security
    # layer). Computing them again per consumer instead was measured (bench/pipeline_bench.py
    # --stages): cheaper on an idle engine at 1M impressions, slower under load, so not taken.
    with _cached(rows) as rows, ThreadPoolExecutor(max(workers - 1, 1), thread_name_prefix="evaluate") as pool:
        def side(fn: Callable[[], T]) -> Callable[[], T]:
            """``fn`` started beside the main line (``workers`` > 1) or run when its result is asked for."""
            if workers > 1:
                return pool.submit(fn).result
            return fn

        def serving_inputs() -> tuple[Security, list[dict], list[dict]]:
            with stage("security"):
                sec = security(requests, impressions, clicks, read("orders"), items, thresholds)
            with stage("system"):
                system = system_metrics(requests)
            with stage("catalog"):
                catalog = catalog_coverage(impressions, items, day.ds, day.new_item_days)
            return sec, system, catalog

        def categorical() -> dict[Group, dict[str, dict[str, int]]]:
            with stage("categorical_profile"):
                return categorical_counts(impressions, VERSION_KEYS, CATEGORICAL_MONITORED)

        def quality_part() -> QualityCells:
            with stage("quality"):
                return quality_cells(rows, few_clicks=few_clicks)

        quality_parts = side(quality_part)
        serving_parts = side(serving_inputs)
        categorical_parts = side(categorical)
        sessions = sessions_with_newness(read("sessions"), users, day.ds, day.new_user_days)
        with _cached(cells_of(rows)) as cells:
            with stage("business"):
                business = [r.asDict() for r in daily_metrics(rows, sessions, day.ds, cells=cells).collect()]
            with stage("unit_moments"):
                moments = unit_moments(cells)
        # The business metrics name every (model, version, variant) and count their impressions:
        # the passes below need not look them up again.
        variants = {(m["model_name"], m["model_version"], m["variant"]) for m in business}
        sizes: dict[tuple, int] = {}
        for m in business:
            if m["metric"] == "impressions" and m["segment"] == "all":
                key = (m["model_name"], m["model_version"])
                sizes[key] = sizes.get(key, 0) + int(m["value"])

        def numeric_part() -> dict[Group, dict[str, NumericProfile]]:
            with stage("numeric_profile"):
                return numeric_profiles(impressions, VERSION_KEYS, NUMERIC_MONITORED, groups=list(sizes))

        numeric_parts = side(numeric_part)
        quality, bins = quality_metrics(quality_parts(), day.ds, SEGMENTS, variants)
        sec, system, catalog = serving_parts()
        with stage("security_metrics"):
            serving = [
                *catalog,
                *system,
                *security_metrics(requests, rows, sec,
                                  lambda r: [x.asDict() for x in headline_metrics(r, day.ds, CLEAN_METRICS).collect()],
                                  business + system),
            ]
        numeric, categorical_values = numeric_parts(), categorical_parts()
    metrics = [{c: m[c] for c in METRICS_DAILY.column_names} for m in (*business, *quality, *serving)]
    profiles = {}
    for key in sorted(set(numeric) | {(m["model_name"], m["model_version"]) for m in metrics}):
        profiles[key] = Profile(
            *key, (day.ds,),
            numeric=numeric.get(key, {}),
            categorical={c: fold_rare(v, rare_share=0.0, keep=MAX_DAILY_CATEGORIES)
                         for c, v in categorical_values.get(key, {}).items()},
            score_bins=segment_bins(bins, key),
            metrics={(m["variant"], m["segment"], m["metric"]): MetricStats({day.ds: m["value"]})
                     for m in metrics if (m["model_name"], m["model_version"]) == key and _finite(m["value"])},
            moments={(variant, metric): mom for (name, version, variant, metric), mom in moments.items()
                     if (name, version) == key},
        )
    with stage("sample"):
        sample = labelled(bounded_sample(impressions, (*SAMPLE_COLUMNS, *IMPRESSION_KEYS), day.sample_rows,
                                         seed=day.ds, sizes=sizes), clicks)
    return DayResult(day.ds, metrics, profiles, sample, sec.findings)


def labelled(sample: DataFrame, clicks: DataFrame) -> DataFrame:
    """The sample with ``clicked`` (1 if the click log has a click on that impression, as the
    funnel counts it), without the impression keys: the join is of the bounded sample with the
    day's distinct clicked keys, so it stays small whatever the day's size."""
    from pyspark.sql import functions as F

    keys = list(IMPRESSION_KEYS)
    hit = clicks.where("click_ts IS NOT NULL").select(*keys).distinct().withColumn("_hit", F.lit(1))
    return (sample.join(hit, on=keys, how="left")
            .withColumn(SAMPLE_LABEL, F.coalesce(F.col("_hit"), F.lit(0)).cast("int"))
            .select("model_name", "model_version", *SAMPLE_COLUMNS, SAMPLE_LABEL))


def unit_moments(cells: DataFrame) -> dict[tuple[str, str, str, str], Moments]:
    """Per (model, version, variant, metric): the per-user sums behind the lifted metrics (CTR
    and CVR as ratios of per-user sums, GMV per user as a mean), with the readout's own metric
    specs and aggregation (``metrics.ab``), so a daily lift and an A/B readout use one method.
    ``cells``: the business metrics' ``metrics.daily.cells_of(rows)``; a user's sums are the
    sums of their cells."""
    from pyspark.sql import functions as F

    units = (cells.groupBy(*VERSION_KEYS, "variant", "user_id")
             .agg(*[F.sum(c).alias(c) for c in ("impressions", "clicks", "orders", "gmv")])
             .withColumn("arm", F.concat_ws("\u0000", *VERSION_KEYS, "variant")))
    out = {}
    for r in arm_moments(units, "arm", LIFT_SPECS).collect():
        name, version, variant = r["variant"].split("\u0000")
        for i, spec in enumerate(LIFT_SPECS):
            out[(name, version, variant, spec.name)] = Moments(
                int(r["n"]), *(float(r[f"m{i}__{s}"]) for s in ("sum_y", "sum_y2", "sum_x", "sum_x2", "sum_xy")))
    return out


def segment_bins(bins: dict[tuple, ScoreBins], key: tuple[str, str]) -> dict[str, ScoreBins]:
    """Score bins of one model version per user segment, summed over its variants."""
    out: dict[str, ScoreBins] = {}
    for (name, version, _variant, segment), b in bins.items():
        if (name, version) == key and segment in PROFILE_SEGMENTS:
            out[segment] = out[segment].merged(b) if segment in out else b
    return out


def _finite(x: float | None) -> bool:
    return x is not None and x == x and abs(x) != float("inf")
