"""The demo generator as the previous release wrote it, in Spark: the reference that
``offline_eval.fastgen`` must reproduce row for row (tests/test_fastgen.py)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from offline_eval.contract import INPUT_TABLES
from offline_eval.generator import (
    DEVICES,
    NEW_WINDOW_DAYS,
    REGIONS,
    SLOTS_PER_REQUEST,
    USER_APPEAL_SD,
    Scenario,
    _position_weights,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

_MASK53 = (1 << 53) - 1
_TWO53 = float(1 << 53)


class _Rng:
    """Counter-based randomness: uniform(salt, *keys) is a pure function of its inputs."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def uniform(self, salt: str, *cols: Column) -> Column:
        from pyspark.sql import functions as F

        h = F.xxhash64(F.lit(self.seed), F.lit(salt), *cols)
        return h.bitwiseAND(F.lit(_MASK53)) / F.lit(_TWO53)

    def normal(self, salt: str, *cols: Column) -> Column:
        from pyspark.sql import functions as F

        u1 = F.lit(1.0) - self.uniform(salt + ":1", *cols)  # (0, 1]
        u2 = self.uniform(salt + ":2", *cols)
        return F.sqrt(F.lit(-2.0) * F.log(u1)) * F.cos(F.lit(2 * math.pi) * u2)

    def choice(self, salt: str, options: tuple[str, ...], weights: tuple[float, ...], *cols: Column) -> Column:
        from pyspark.sql import functions as F

        u = self.uniform(salt, *cols)
        total = sum(weights)
        expr, cum = None, 0.0
        for option, weight in zip(options[:-1], weights[:-1], strict=True):
            cum += weight / total
            expr = F.when(u < cum, option) if expr is None else expr.when(u < cum, option)
        return expr.otherwise(options[-1]) if expr is not None else F.lit(options[-1])


def generate(spark: SparkSession, sc: Scenario) -> dict[str, DataFrame]:
    """All input tables for the scenario's days, keyed by table name, in contract column order."""
    from pyspark.sql import functions as F

    rng = _Rng(sc.seed)
    days = _days(spark, sc)
    users = _users(spark, sc, rng)
    items = _items(spark, sc, rng)
    sessions = _sessions(spark, sc, rng, days, users)
    # Clicks, carts and orders all derive from impressions: compute it once.
    impressions = _impressions(spark, sc, rng, sessions, items).persist()
    clicks, carts, orders = _funnel(sc, rng, impressions)

    user_snap = users.crossJoin(F.broadcast(days)).where(F.col("signup_date") <= F.col("date"))
    item_snap = items.crossJoin(F.broadcast(days)).where(F.col("first_listed_date") <= F.col("date"))
    out = {
        "users": user_snap,
        "items": item_snap,
        "sessions": sessions,
        "impressions": impressions,
        "clicks": clicks,
        "add_to_cart": carts,
        "orders": orders,
    }
    return {name: df.select(*INPUT_TABLES[name].all_columns) for name, df in out.items()}


def _days(spark: SparkSession, sc: Scenario) -> DataFrame:
    from pyspark.sql import functions as F

    return (
        spark.range(sc.days)
        .select(F.col("id").cast("int").alias("k"))
        .withColumn("date", F.date_add(F.lit(sc.start).cast("date"), F.col("k")))
        .withColumn("ds", F.date_format("date", "yyyy-MM-dd"))
        .withColumn("promo", F.col("k") >= sc.promo_day)
        .withColumn("in_experiment", F.col("k") >= sc.experiment_day)
    )


def _block_size(sc: Scenario, offset: Column, per_day: int, promo_per_day: int) -> Column:
    from pyspark.sql import functions as F

    return F.when(offset >= sc.promo_day, promo_per_day).otherwise(per_day)


def _users(spark: SparkSession, sc: Scenario, rng: _Rng) -> DataFrame:
    """Base users signed up long before the window, then one signup block per day."""
    from pyspark.sql import functions as F

    start = F.lit(sc.start).cast("date")
    base = (
        spark.range(sc.base_users)
        .withColumnRenamed("id", "user_id")
        .withColumn("signup_offset", -(F.lit(8) + F.floor(rng.uniform("signup", F.col("user_id")) * 720)).cast("int"))
        .withColumn("promo_user", F.lit(False))
    )
    block = max(sc.signups_per_day, sc.promo_signups_per_day)
    new = (
        spark.range((sc.days + NEW_WINDOW_DAYS - 1) * block)
        .withColumn("signup_offset", (F.floor(F.col("id") / block) - (NEW_WINDOW_DAYS - 1)).cast("int"))
        .withColumn("idx", F.col("id") % block)
        .where(F.col("idx") < _block_size(sc, F.col("signup_offset"), sc.signups_per_day, sc.promo_signups_per_day))
        .select((F.col("id") + sc.base_users).alias("user_id"), "signup_offset")
        .withColumn("promo_user", F.col("signup_offset") >= sc.promo_day)
    )
    uid = F.col("user_id")
    region_weights_promo = (0.05, 0.05, 0.05, 0.05, 0.1, 0.2, 0.25, 0.25)
    region_weights = (0.2, 0.18, 0.15, 0.13, 0.12, 0.1, 0.07, 0.05)
    return (
        base.unionByName(new)
        .withColumn("signup_date", F.date_add(start, F.col("signup_offset")))
        .withColumn(
            "region",
            F.when(F.col("promo_user"), rng.choice("region_p", REGIONS, region_weights_promo, uid)).otherwise(
                rng.choice("region", REGIONS, region_weights, uid)
            ),
        )
        .withColumn(
            "acquisition_channel",
            F.when(
                F.col("promo_user"),
                rng.choice("acq_p", ("promo_ad", "organic", "referral"), (0.75, 0.15, 0.10), uid),
            ).otherwise(rng.choice("acq", ("organic", "referral", "paid_search"), (0.6, 0.15, 0.25), uid)),
        )
    )


def _items(spark: SparkSession, sc: Scenario, rng: _Rng) -> DataFrame:
    """Base catalogue plus daily new listings; lognormal prices over ``categories`` categories."""
    from pyspark.sql import functions as F

    start = F.lit(sc.start).cast("date")
    base = spark.range(sc.base_items).withColumn(
        "listed_offset", -(F.lit(NEW_WINDOW_DAYS + 1) + F.floor(rng.uniform("listed", F.col("id")) * 365)).cast("int")
    )
    n = sc.new_items_per_day
    new = (
        spark.range((sc.days + NEW_WINDOW_DAYS - 1) * n)
        .withColumn("listed_offset", (F.floor(F.col("id") / n) - (NEW_WINDOW_DAYS - 1)).cast("int"))
        .withColumn("id", F.col("id") + sc.base_items)
    )
    iid = F.col("item_id")
    cat_idx = F.floor(F.pow(rng.uniform("cat", iid), F.lit(1.5)) * sc.categories).cast("int")
    mu = F.lit(math.log(15.0)) + (cat_idx % 9) * F.lit(0.25)
    return (
        base.unionByName(new)
        .withColumnRenamed("id", "item_id")
        .withColumn("first_listed_date", F.date_add(start, F.col("listed_offset")))
        .withColumn("category", F.format_string("cat_%02d", cat_idx))
        .withColumn("price", F.round(F.exp(mu + F.lit(0.6) * rng.normal("price", iid)), 2))
        # Latent appeal, mean 1: multiplies the click probability.
        .withColumn("quality", F.exp(F.lit(0.5) * rng.normal("quality", iid) - F.lit(0.125)))
    )


def _sessions(spark: SparkSession, sc: Scenario, rng: _Rng, days: DataFrame, users: DataFrame) -> DataFrame:
    """Sessions per day: who visits (new vs returning), their variant, whether they are served."""
    from pyspark.sql import functions as F

    requests = sc.impressions_per_day // SLOTS_PER_REQUEST
    share_max = max(sc.new_user_share, sc.promo_new_user_share)
    gap_max = max(sc.coverage_gap, sc.promo_coverage_gap)
    per_day = math.ceil(requests / (1 - share_max * gap_max))
    s = F.col("s")
    k = F.col("k")
    block = max(sc.signups_per_day, sc.promo_signups_per_day)
    share_new = F.when(F.col("promo"), sc.promo_new_user_share).otherwise(sc.new_user_share)
    gap = F.when(F.col("promo"), sc.promo_coverage_gap).otherwise(sc.coverage_gap)
    is_new = rng.uniform("is_new", k, s) < share_new
    age = F.floor(rng.uniform("age", k, s) * NEW_WINDOW_DAYS).cast("int")
    signup_offset = k - age
    new_block = _block_size(sc, signup_offset, sc.signups_per_day, sc.promo_signups_per_day)
    new_uid = (
        F.lit(sc.base_users)
        + (signup_offset + NEW_WINDOW_DAYS - 1) * block
        + F.floor(rng.uniform("new_uid", k, s) * new_block)
    )
    # Some returning users visit far more often than others (heavy users have low ids).
    old_uid = F.floor(F.pow(rng.uniform("old_uid", k, s), F.lit(1.5)) * sc.base_users)
    sess = (
        spark.range(per_day)
        .withColumnRenamed("id", "s")
        .crossJoin(F.broadcast(days))
        .withColumn("is_new", is_new)
        .withColumn("user_id", F.when(F.col("is_new"), new_uid).otherwise(old_uid).cast("bigint"))
        .withColumn("served", ~(F.col("is_new") & (rng.uniform("gap", k, s) < gap)))
        # Keep about impressions_per_day / 10 served sessions per day whatever the gap.
        .where(F.col("s") < F.lit(requests) / (F.lit(1.0) - share_new * gap))
        .withColumn("session_id", F.concat_ws("-", F.col("ds"), F.lit("s"), F.col("s").cast("string")))
        .withColumn("hour", (F.lit(8) + F.floor(rng.uniform("hour", k, s) * 14)).cast("int"))
        .withColumn(
            "session_start_ts",
            F.timestamp_seconds(
                F.unix_timestamp(F.col("date").cast("timestamp"))
                + F.col("hour") * 3600
                + F.floor(rng.uniform("minute", k, s) * 3600)
            ),
        )
    )
    uid = F.col("user_id")
    promo_new = F.col("is_new") & F.col("promo")
    return (
        sess.join(users.select("user_id", "signup_date", "region", "promo_user"), on="user_id", how="left")
        .withColumn("experiment_id", F.when(F.col("in_experiment"), F.lit(sc.experiment_id)))
        .withColumn(
            "variant",
            F.when(F.col("in_experiment") & (rng.uniform("assign", uid) >= 0.5), "treatment").otherwise("control"),
        )
        .withColumn(
            "platform",
            F.when(promo_new, rng.choice("dev_p", DEVICES, (0.1, 0.3, 0.05, 0.55), k, F.col("s"))).otherwise(
                rng.choice("dev", DEVICES, (0.35, 0.35, 0.2, 0.1), k, F.col("s"))
            ),
        )
        .withColumn(
            "traffic_source",
            F.when(
                promo_new,
                rng.choice("src_p", ("promo_ad", "organic", "search", "push"), (0.75, 0.1, 0.1, 0.05), k, F.col("s")),
            )
            .when(
                F.col("is_new"),
                rng.choice("src_n", ("organic", "search", "promo_ad", "push"), (0.4, 0.3, 0.25, 0.05), k, F.col("s")),
            )
            .otherwise(
                rng.choice("src", ("organic", "push", "search", "promo_ad"), (0.55, 0.2, 0.2, 0.05), k, F.col("s"))
            ),
        )
    )


def _impressions(spark: SparkSession, sc: Scenario, rng: _Rng, sessions: DataFrame, items: DataFrame) -> DataFrame:
    """Ten slots per served session; items drawn so that one request never shows an item twice."""
    from pyspark.sql import functions as F

    k, s, pos = F.col("k"), F.col("s"), F.col("position")
    uid = F.col("user_id")
    stride = SLOTS_PER_REQUEST
    # Item ids are laid out so that id % 10 == position - 1: distinct items within a request.
    old_item = F.floor(F.pow(rng.uniform("old_item", k, s, pos), F.lit(2.0)) * (sc.base_items // stride)) * stride + (
        pos - 1
    )
    age = F.floor(rng.uniform("item_age", k, s, pos) * NEW_WINDOW_DAYS).cast("int")
    block = k - age + (NEW_WINDOW_DAYS - 1)
    new_item = (
        F.lit(sc.base_items)
        + block * sc.new_items_per_day
        + F.floor(rng.uniform("new_item", k, s, pos) * (sc.new_items_per_day // stride)) * stride
        + (pos - 1)
    )
    tenure = F.datediff(F.col("date"), F.col("signup_date"))
    orders_90d = F.when(
        F.col("is_new"), F.when(rng.uniform("o90n", uid) < 0.1, 1).otherwise(0)
    ).otherwise(F.greatest(F.lit(0), F.floor(F.exp(F.lit(0.7) + F.lit(0.9) * rng.normal("o90", uid))) - 1))
    pos_w = _position_weights()
    pos_factor = F.element_at(F.array(*[F.lit(w) for w in pos_w]), pos)
    return (
        sessions.where("served")
        .withColumn("request_id", F.concat(F.col("session_id"), F.lit("-r")))
        .crossJoin(spark.range(1, SLOTS_PER_REQUEST + 1).select(F.col("id").cast("int").alias("position")))
        .withColumn("new_item_slot", rng.uniform("new_slot", k, s, pos) < sc.new_item_share)
        .withColumn("item_id", F.when(F.col("new_item_slot"), new_item).otherwise(old_item).cast("bigint"))
        .join(
            F.broadcast(items.select("item_id", "category", "price", "first_listed_date", "quality")),
            on="item_id",
            how="inner",
        )
        .withColumn("model_name", F.lit(sc.model_name))
        .withColumn(
            "model_version",
            F.when(F.col("variant") == "treatment", sc.treatment_version).otherwise(sc.control_version),
        )
        .withColumn("impression_ts", F.col("session_start_ts") + F.expr("INTERVAL 2 SECONDS"))
        .withColumn("pos_factor", pos_factor)
        # A user's propensity to click, mean 1 and stable across days: what CUPED's
        # pre-period covariate can explain.
        .withColumn(
            "user_appeal", F.exp(F.lit(USER_APPEAL_SD) * rng.normal("appeal", uid) - F.lit(USER_APPEAL_SD**2 / 2))
        )
        .withColumn("f_user_tenure_days", tenure.cast("int"))
        .withColumn("f_user_orders_90d", orders_90d.cast("int"))
        .withColumn(
            "f_user_sessions_7d",
            F.when(F.col("is_new"), F.lit(1) + F.floor(rng.uniform("s7n", uid) * (tenure + 1)))
            .otherwise(F.lit(1) + F.floor(F.exp(F.lit(1.2) + F.lit(0.7) * rng.normal("s7", uid))))
            .cast("int"),
        )
        .withColumn(
            "f_user_avg_order_value",
            F.when(
                F.col("f_user_orders_90d") > 0,
                F.round(F.exp(F.lit(math.log(45.0)) + F.lit(0.5) * rng.normal("aov", uid)), 2),
            ),
        )
        .withColumn("f_item_price", F.col("price"))
        .withColumn("f_item_age_days", F.datediff(F.col("date"), F.col("first_listed_date")).cast("int"))
        .withColumn(
            "f_item_ctr_7d",
            F.when(F.col("f_item_age_days") < NEW_WINDOW_DAYS, F.lit(0.05)).otherwise(
                F.round(
                    F.lit(0.08)
                    * F.col("quality")
                    * (F.lit(0.9) + F.lit(0.2) * rng.uniform("ictr", F.col("item_id"), k)),
                    5,
                )
            ),
        )
        .withColumn("f_hour", F.col("hour"))
        .withColumn("c_device", F.col("platform"))
        .withColumn("c_region", F.col("region"))
        .withColumn("c_item_category", F.col("category"))
        .withColumn("c_traffic_source", F.col("traffic_source"))
        .transform(lambda df: _click_probability(df, sc))
        .withColumn("score", _model_score(rng))
    )


def _click_probability(df: DataFrame, sc: Scenario) -> DataFrame:
    from pyspark.sql import functions as F

    promo = F.col("promo")
    base = (
        F.when(F.col("is_new") & promo, sc.promo_ctr_new)
        .when(F.col("is_new"), sc.ctr_new)
        .when(promo, sc.promo_ctr_returning)
        .otherwise(sc.ctr_returning)
    )
    item = (
        F.when(F.col("new_item_slot"), sc.new_item_ctr_factor).otherwise(1.0) * F.col("quality") * F.col("user_appeal")
    )
    untreated = F.least(F.lit(0.9), base * F.col("pos_factor") * item)
    lift = F.when(F.col("variant") == "treatment", 1 + sc.treatment_ctr_lift).otherwise(1.0)
    # Both models were trained before the promotion: they predict the pre-promotion click
    # probability, so on promotion days P(click | score) falls (concept drift).
    trained = F.when(F.col("is_new"), sc.ctr_new).otherwise(sc.ctr_returning)
    believed = F.least(F.lit(0.9), trained * F.col("pos_factor") * item)
    return (df.withColumn("p_click_base", untreated).withColumn("p_click_model", believed)
            .withColumn("p_click", F.least(F.lit(0.9), untreated * lift)))


def _model_score(rng: _Rng) -> Column:
    """Each version predicts the untreated, pre-promotion click probability with noise; v2 is sharper."""
    from pyspark.sql import functions as F

    logit = F.log(F.col("p_click_model") / (F.lit(1.0) - F.col("p_click_model")))
    noise_sd = F.when(F.col("variant") == "treatment", 0.35).otherwise(0.6)
    noisy = logit + noise_sd * rng.normal("score", F.col("request_id"), F.col("position"))
    return F.round(F.lit(1.0) / (F.lit(1.0) + F.exp(-noisy)), 6)


def _funnel(sc: Scenario, rng: _Rng, impressions: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame]:
    from pyspark.sql import functions as F

    rid, iid = F.col("request_id"), F.col("item_id")
    clicked = impressions.where(rng.uniform("click", rid, iid) < F.col("p_click")).withColumn(
        "click_ts",
        F.col("impression_ts") + F.make_dt_interval(secs=F.lit(5) + F.floor(rng.uniform("cts", rid, iid) * 115)),
    )
    cart_rate = F.when(F.col("is_new"), sc.cart_rate_new).otherwise(sc.cart_rate_returning)
    carted = (
        clicked.where(rng.uniform("cart", rid, iid) < cart_rate)
        .withColumn("cart_event_id", F.concat_ws("-", rid, iid.cast("string"), F.lit("c")))
        .withColumn("quantity", (F.lit(1) + F.floor(F.pow(rng.uniform("qty", rid, iid), F.lit(3.0)) * 3)).cast("int"))
        .withColumn(
            "event_ts",
            F.col("click_ts") + F.make_dt_interval(secs=F.lit(30) + F.floor(rng.uniform("ets", rid, iid) * 570)),
        )
    )
    order_rate = F.when(F.col("is_new"), sc.order_rate_new).otherwise(sc.order_rate_returning) * F.when(
        F.col("variant") == "treatment", 1 + sc.treatment_order_lift
    ).otherwise(1.0)
    ordered = (
        carted.where(rng.uniform("order", rid, iid) < order_rate)
        .withColumn("order_id", F.concat_ws("-", rid, iid.cast("string"), F.lit("o")))
        .withColumn(
            "order_ts",
            F.col("event_ts") + F.make_dt_interval(secs=F.lit(60) + F.floor(rng.uniform("ots", rid, iid) * 1740)),
        )
    )
    return clicked, carted, ordered
