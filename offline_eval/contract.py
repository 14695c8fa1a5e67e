"""The data contract as code: input and output tables, their columns and Spark SQL types.

docs/data_contract.md explains the meaning of each column and the attribution rules; this
module is what the generator writes, what the GX suites check and what the jobs select.
Every table is partitioned by ``ds`` (string, yyyy-MM-dd), the last column.

Model input features are the impression columns prefixed ``f_`` (numeric) and ``c_``
(categorical); drift monitoring discovers them by prefix.
"""
from __future__ import annotations

from dataclasses import dataclass

PARTITION_COLUMN = "ds"
NUMERIC_FEATURE_PREFIX = "f_"
CATEGORICAL_FEATURE_PREFIX = "c_"

VARIANTS = ("control", "treatment")


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, spark sql type), without ds
    keys: tuple[str, ...]  # columns that must be non-null and, together, unique
    description: str
    # Partition columns, outermost first; ds is always the last.
    partitions: tuple[tuple[str, str], ...] = ((PARTITION_COLUMN, "string"),)

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    @property
    def partition_names(self) -> list[str]:
        return [c for c, _ in self.partitions]

    @property
    def all_columns(self) -> list[str]:
        return [*self.column_names, *self.partition_names]

    def ddl_columns(self) -> str:
        return ", ".join(f"`{c}` {t}" for c, t in (*self.columns, *self.partitions))


IMPRESSION_FEATURES_NUMERIC = (
    ("f_user_tenure_days", "int"),
    ("f_user_orders_90d", "int"),
    ("f_user_sessions_7d", "int"),
    ("f_user_avg_order_value", "double"),  # null when the user has no order in 90 days
    ("f_item_price", "double"),
    ("f_item_age_days", "int"),
    ("f_item_ctr_7d", "double"),
    ("f_hour", "int"),
)
IMPRESSION_FEATURES_CATEGORICAL = (
    ("c_device", "string"),
    ("c_region", "string"),
    ("c_item_category", "string"),
    ("c_traffic_source", "string"),
)

IMPRESSIONS = TableSpec(
    "impressions",
    (
        ("request_id", "string"),
        ("user_id", "bigint"),
        ("item_id", "bigint"),
        ("position", "int"),
        ("score", "double"),
        ("model_name", "string"),
        ("model_version", "string"),
        ("experiment_id", "string"),
        ("variant", "string"),
        ("impression_ts", "timestamp"),
        *IMPRESSION_FEATURES_NUMERIC,
        *IMPRESSION_FEATURES_CATEGORICAL,
    ),
    keys=("request_id", "item_id"),
    description="One row per item shown in a recommendation response, with the model's score "
    "and its input features at serving time.",
)
CLICKS = TableSpec(
    "clicks",
    (("request_id", "string"), ("user_id", "bigint"), ("item_id", "bigint"), ("click_ts", "timestamp")),
    keys=("request_id", "item_id", "click_ts"),
    description="A click on a shown item, joined to its impression by (request_id, item_id).",
)
ADD_TO_CART = TableSpec(
    "add_to_cart",
    (
        ("cart_event_id", "string"),
        ("user_id", "bigint"),
        ("item_id", "bigint"),
        ("quantity", "int"),
        ("event_ts", "timestamp"),
    ),
    keys=("cart_event_id",),
    description="An add-to-cart event; attributed to the user's last click on the item that day.",
)
ORDERS = TableSpec(
    "orders",
    (
        ("order_id", "string"),
        ("user_id", "bigint"),
        ("item_id", "bigint"),
        ("quantity", "int"),
        ("price", "double"),
        ("order_ts", "timestamp"),
    ),
    keys=("order_id",),
    description="An order line; attributed to the user's last click on the item that day.",
)
USERS = TableSpec(
    "users",
    (
        ("user_id", "bigint"),
        ("signup_date", "date"),
        ("region", "string"),
        ("acquisition_channel", "string"),
    ),
    keys=("user_id",),
    description="Daily snapshot of all users signed up by ds.",
)
ITEMS = TableSpec(
    "items",
    (("item_id", "bigint"), ("category", "string"), ("price", "double"), ("first_listed_date", "date")),
    keys=("item_id",),
    description="Daily snapshot of the catalogue: every item listed by ds.",
)
SESSIONS = TableSpec(
    "sessions",
    (
        ("session_id", "string"),
        ("user_id", "bigint"),
        ("experiment_id", "string"),
        ("variant", "string"),
        ("platform", "string"),
        ("session_start_ts", "timestamp"),
    ),
    keys=("session_id",),
    description="App sessions with the user's experiment assignment; the denominator of "
    "cold-start coverage and the exposure log of A/B readouts.",
)

REQUESTS = TableSpec(
    "requests",
    (
        ("request_id", "string"),  # a served request's id is its impressions' request_id
        ("session_id", "string"),
        ("user_id", "bigint"),
        ("model_name", "string"),
        ("model_version", "string"),
        ("variant", "string"),
        ("source", "string"),  # the client: a hash of its IP address / device, never the address
        ("request_ts", "timestamp"),
        ("latency_ms", "double"),  # end to end, including retries
        ("status", "int"),  # HTTP status of the response
        ("retries", "int"),
        ("n_items", "int"),  # items in the response (0 for an error)
    ),
    keys=("request_id",),
    description="The serving log: one row per recommendation request, served or failed; the "
    "system layer (latency, errors, retries, load) and the security layer (request sources, "
    "automated sessions).",
)

INPUT_TABLES: dict[str, TableSpec] = {
    t.name: t for t in (IMPRESSIONS, CLICKS, ADD_TO_CART, ORDERS, USERS, ITEMS, SESSIONS, REQUESTS)
}

METRICS_DAILY = TableSpec(
    "metrics_daily",
    (
        ("model_name", "string"),
        ("model_version", "string"),
        ("variant", "string"),
        ("segment", "string"),
        ("metric", "string"),
        ("value", "double"),
        ("numerator", "double"),
        ("denominator", "double"),
    ),
    keys=("model_name", "model_version", "variant", "segment", "metric"),
    description="Long-format daily metrics per model version, variant and segment.",
)

DRIFT_DAILY = TableSpec(
    "drift_daily",
    (
        ("model_name", "string"),
        ("model_version", "string"),
        ("reference", "string"),  # previous_day | baseline_7d
        ("reference_end", "string"),  # last day of the reference window
        ("column", "string"),
        ("type", "string"),  # numeric | categorical
        ("psi", "double"),
        ("ks", "double"),
        ("ks_error_bound", "double"),
        ("js", "double"),
        ("wasserstein", "double"),
        ("chi2_p", "double"),
        ("p_value", "double"),  # the test behind the verdict: KS (numeric) or chi-square (categorical)
        ("n_reference", "bigint"),
        ("n_current", "bigint"),
        ("verdict", "string"),  # none | minor | severe | no data
        ("psi_edges", "array<double>"),  # the PSI bins' edges (the reference's deciles); numeric only
    ),
    keys=("model_name", "model_version", "reference", "column"),
    description="Daily drift of every monitored input feature and the score, per model version, "
    "against the previous day and the weekly baseline.",
)

_PROFILE_COLUMNS = (
    ("model_name", "string"),
    ("model_version", "string"),
    ("kind", "string"),  # numeric | categorical | score_bins | metric | moments
    ("name", "string"),  # feature, "score" or metric name
    ("variant", "string"),  # metric rows only
    ("segment", "string"),  # metric and score_bins rows
    ("n", "double"),  # numeric: non-missing values; categorical, score_bins: rows; metric: days with a value
    ("mean", "double"),  # numeric: mean; metric: mean of the daily values
    ("std", "double"),  # numeric: sample std; metric: sample std of the daily values
    ("payload", "string"),  # JSON: grid counts and moments, category counts, score bins, daily values
)

PROFILES_DAILY = TableSpec(
    "profiles_daily",
    _PROFILE_COLUMNS,
    keys=("model_name", "model_version", "kind", "name", "variant", "segment"),
    description="Each day's mergeable profile per model version: fine-grid counts and moments of every "
    "numeric feature and the score, category counts, score bins per user segment, the day's metric values. "
    "References are merges of these.",
)

BASELINES = TableSpec(
    "baselines",
    _PROFILE_COLUMNS,
    keys=("model_name", "model_version", "kind", "name", "variant", "segment"),
    description="Stored references per model version and window, merged from profiles_daily: grid counts "
    "and moments, category frequencies (rare ones folded), score bins and daily-metric mean/std. "
    "ds is the window's last day.",
    partitions=(("window_days", "int"), (PARTITION_COLUMN, "string")),
)

SAMPLES_DAILY = TableSpec(
    "samples_daily",
    (
        ("model_name", "string"),
        ("model_version", "string"),
        *IMPRESSION_FEATURES_NUMERIC,
        *IMPRESSION_FEATURES_CATEGORICAL,
        ("score", "double"),
        ("clicked", "int"),  # 1 if the impression has a click; null in partitions written before it
    ),
    keys=(),
    description="A bounded, deterministic sample of each day's impressions per model version with its "
    "click label (the Evidently report's current and reference data, its model quality on the sample).",
)

CONCEPT_DRIFT_DAILY = TableSpec(
    "concept_drift_daily",
    (
        ("model_name", "string"),
        ("model_version", "string"),
        ("segment", "string"),  # all | new_users | returning_users
        ("reference", "string"),
        ("reference_end", "string"),
        ("mean_abs_change", "double"),  # impression-weighted |CTR now - CTR then| over score buckets
        ("mean_rel_change", "double"),  # impression-weighted (CTR now / CTR then - 1)
        ("buckets", "string"),  # JSON: per score bucket of the reference, CTR then and now
    ),
    keys=("model_name", "model_version", "segment", "reference"),
    description="P(click | score) against each reference, on the reference's score deciles, per user segment.",
)

ALERTS_DAILY = TableSpec(
    "alerts_daily",
    (
        ("alert_id", "string"),  # stable: a hash of (model, version, ds, rule, reference, variant, segment, metric)
        ("model_name", "string"),
        ("model_version", "string"),
        ("rule", "string"),  # baseline_3sd | ctr_drop | new_user_coverage | drift_severe | drift_minor
        ("tier", "string"),  # severe | medium | minor (conf/alerting.yaml)
        ("reference", "string"),  # e.g. "baseline_7d (2026-06-14)"
        ("variant", "string"),
        ("segment", "string"),
        ("metric", "string"),  # the metric, or the drifted column
        ("value", "double"),  # the metric's value, or the column's PSI
        ("threshold", "double"),  # the rule's threshold: sigma, -allowed drop, floor or PSI band
        ("baseline_mean", "double"),
        ("baseline_std", "double"),
        ("lower", "double"),
        ("upper", "double"),
        ("z", "double"),
        ("relative_change", "double"),
        ("numerator", "double"),  # the counts behind value (metrics_daily's)
        ("denominator", "double"),
        ("incident_id", "string"),  # the alerts of a version and day that share a cause
        ("cause", "string"),  # the day's diagnosis, one line
        ("context", "string"),  # JSON: counts, reference counts, mix/rate split, top drift, concept drift
    ),
    keys=("alert_id",),
    description="One row per alert raised on a day, with its tier, context and incident.",
)

SECURITY_DAILY = TableSpec(
    "security_daily",
    (
        ("kind", "string"),  # burst_source | automated_session | unknown_item
        ("key", "string"),  # the source hash, the session id, or the table with unknown item ids
        ("requests", "bigint"),
        ("impressions", "bigint"),  # impressions served to it (unknown_item: rows with an unknown id)
        ("clicks", "bigint"),
        ("share_of_requests", "double"),
        ("detail", "string"),  # JSON: the rule's numbers (z, median, mean gap, source)
    ),
    keys=("kind", "key"),
    description="The security layer's findings of a day (metrics/serving.py, docs/serving.md).",
)

LIFTS_DAILY = TableSpec(
    "lifts_daily",
    (
        ("model_name", "string"),
        ("model_version", "string"),
        ("variant", "string"),
        ("metric", "string"),  # ctr | cvr | gmv_per_user | gmv
        ("reference", "string"),  # previous_day | baseline_7d | control_arm
        ("reference_label", "string"),  # e.g. "baseline_7d (2026-06-14)", "control v1"
        ("value", "double"),
        ("reference_value", "double"),
        ("rel_lift", "double"),
        ("rel_ci_low", "double"),  # 95%; null for the GMV total (a point estimate)
        ("rel_ci_high", "double"),
        ("p_value", "double"),
        ("method", "string"),
    ),
    keys=("model_name", "model_version", "variant", "metric", "reference"),
    description="Business lifts of a day against the previous day, the weekly baseline and the control arm "
    "(stats/lifts.py, the A/B readout's statistics).",
)

METRICS_WEEKLY = TableSpec(
    "metrics_weekly",
    METRICS_DAILY.columns,
    keys=METRICS_DAILY.keys,
    description="The metrics of a week (partition ds = its Sunday) per model version, variant and segment: "
    "ratios of the week's summed numerators and denominators, summed counts, model quality from the week's "
    "merged score bins (stats/weekly.py, docs/weekly.md).",
)

OUTPUT_TABLES: dict[str, TableSpec] = {
    t.name: t for t in (METRICS_DAILY, DRIFT_DAILY, PROFILES_DAILY, BASELINES, SAMPLES_DAILY, CONCEPT_DRIFT_DAILY,
                        ALERTS_DAILY, SECURITY_DAILY, LIFTS_DAILY, METRICS_WEEKLY)
}


def numeric_features(spec: TableSpec = IMPRESSIONS) -> list[str]:
    return [c for c in spec.column_names if c.startswith(NUMERIC_FEATURE_PREFIX)]


def categorical_features(spec: TableSpec = IMPRESSIONS) -> list[str]:
    return [c for c in spec.column_names if c.startswith(CATEGORICAL_FEATURE_PREFIX)]
