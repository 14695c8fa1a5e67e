"""The demo scenario: synthetic e-commerce recommendation logs with a known ground truth.

``Scenario`` holds the knobs and the ground truth (docs/demo_scenario.md); ``offline_eval.fastgen``
draws the rows, a day at a time. Every random draw is a hash of (seed, salt, row keys) turned
into a uniform number (Spark's xxhash64), so the output is identical for a seed however it is
chunked. The original Spark implementation is kept in ``tests/reference/spark_generator.py``;
a test checks that both give the same rows.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass

from offline_eval.config import ConfigError, validate_identifier
from offline_eval.dates import days_between, offset, validate_ds

NEW_WINDOW_DAYS = 7  # a user / item is "new" for 7 days after signup / listing
SLOTS_PER_REQUEST = 10
DEVICES = ("app_ios", "app_android", "web", "mini_program")
REGIONS = tuple(f"r{i}" for i in range(1, 9))


USER_APPEAL_SD = 0.6
CRAWLER_SOURCE = "c0ffee0c0ffee0"  # the crawler's client hash in the requests log


@dataclass(frozen=True)
class Scenario:
    """Knobs of the demo world. Defaults are the story in docs/demo_scenario.md."""

    # 2026-06-01 .. 06-07: history before the experiment (v1 only), the CUPED pre-period;
    # 2026-06-08 .. 06-21: the A/B test, the two weeks the demo evaluates.
    start: str = "2026-06-01"
    days: int = 21
    impressions_per_day: int = 200_000
    seed: int = 618
    promo_day: int = 17  # day index of the promotion start (2026-06-18 by default)
    model_name: str = "home_feed_ctr"
    experiment_id: str = "exp_home_feed_v2"
    # First day of the A/B test; before it every user gets the control model and no experiment
    # (experiment_id null), which gives the readout a clean pre-period for CUPED.
    experiment_start: str = "2026-06-08"
    control_version: str = "v1"
    treatment_version: str = "v2"
    base_users: int = 40_000
    signups_per_day: int = 2_500
    promo_signups_per_day: int = 8_000
    base_items: int = 20_000
    new_items_per_day: int = 300
    categories: int = 36
    new_user_share: float = 0.20
    promo_new_user_share: float = 0.50
    ctr_returning: float = 0.095
    ctr_new: float = 0.020
    promo_ctr_returning: float = 0.088
    promo_ctr_new: float = 0.014
    cart_rate_returning: float = 0.25
    cart_rate_new: float = 0.15
    order_rate_returning: float = 0.45
    order_rate_new: float = 0.35
    treatment_ctr_lift: float = 0.06
    treatment_order_lift: float = 0.03
    new_item_share: float = 0.10
    new_item_ctr_factor: float = 0.8
    coverage_gap: float = 0.03  # share of new-user sessions that get no recommendation
    promo_coverage_gap: float = 0.08
    # Serving (the requests log): log-normal latency per arm with a slow tail, retries, errors.
    latency_median_ms_control: float = 38.0
    latency_median_ms_treatment: float = 42.0
    latency_sigma: float = 0.35
    slow_share: float = 0.01  # requests 3x..8x slower (a cold cache, a slow feature store)
    retry_share: float = 0.02  # requests that needed one retry or more (15% of them two)
    error_share: float = 0.004  # sessions with one failed request (503/500) before their page
    # A crawler on one day other than the promotion: one source, a few logged-in sessions at
    # night, a page every half second, never a click; served by the default model outside the
    # experiment. Its requests are crawler_share of the day's organic requests.
    crawler_day: int | None = 10  # 2026-06-11 by default
    crawler_sessions: int = 4
    crawler_share: float = 0.12

    def __post_init__(self) -> None:
        validate_ds(self.start)
        validate_ds(self.experiment_start)
        for name in ("model_name", "experiment_id", "control_version", "treatment_version"):
            validate_identifier(getattr(self, name), name)
        if self.days < 1 or self.impressions_per_day < SLOTS_PER_REQUEST:
            raise ConfigError("days must be >= 1 and impressions_per_day >= 10")
        if self.base_users < 1 or self.signups_per_day < 1 or self.promo_signups_per_day < 1:
            raise ConfigError("base_users, signups_per_day and promo_signups_per_day must be >= 1")
        if self.base_items % SLOTS_PER_REQUEST or self.new_items_per_day % SLOTS_PER_REQUEST:
            raise ConfigError("base_items and new_items_per_day must be multiples of 10")
        if self.crawler_requests and self.crawler_day == self.promo_day:
            raise ConfigError("crawler_day must differ from promo_day (two incidents, two causes)")
        if self.crawler_sessions < 1 or not 0 <= self.crawler_share < 1:
            raise ConfigError("crawler_sessions must be >= 1 and crawler_share within [0, 1)")

    @classmethod
    def sized(cls, base_users: int, base_items: int, **kwargs: object) -> Scenario:
        """A world of ``base_users`` and ``base_items`` with the demo's proportions: signups a
        sixteenth of the users a day (a fifth during the promotion), new items 1.5% of the
        catalogue a day in tens (at least 10). `offline-eval generate` and the tests size their
        worlds with it."""
        return cls(base_users=base_users, base_items=base_items, signups_per_day=max(1, base_users // 16),
                   promo_signups_per_day=max(1, base_users // 5),
                   new_items_per_day=max(10, base_items * 3 // 200 // 10 * 10), **kwargs)

    @property
    def start_date(self) -> dt.date:
        return dt.date.fromisoformat(self.start)

    @property
    def dates(self) -> list[str]:
        return [offset(self.start, k) for k in range(self.days)]

    @property
    def experiment_day(self) -> int:
        """Day index of the experiment start (0 if it started before the window)."""
        return max(0, days_between(self.start, self.experiment_start))

    @property
    def promo_ds(self) -> str:
        return offset(self.start, self.promo_day)

    @property
    def crawler_requests(self) -> int:
        """Requests the crawler makes on its day (0 when there is none in the window)."""
        if self.crawler_day is None or not 0 <= self.crawler_day < self.days:
            return 0
        return round(self.crawler_share * (self.impressions_per_day // SLOTS_PER_REQUEST))

    @property
    def crawler_ds(self) -> str | None:
        return offset(self.start, self.crawler_day) if self.crawler_requests else None

    def ground_truth(self) -> dict:
        """Expected values the pipeline should recover (in expectation, before sampling noise)."""
        pos = _position_weights()
        item_factor = (1 - self.new_item_share) + self.new_item_share * self.new_item_ctr_factor
        lift_avg = 1 + self.treatment_ctr_lift / 2

        def phase(share_sessions: float, gap: float, r: float, n: float) -> dict:
            ctr_ret, ctr_new = r * item_factor, n * item_factor
            # Unserved new-user sessions (the cold-start gap) never reach the impressions log.
            share_new = share_sessions * (1 - gap) / (1 - share_sessions * gap)
            return {
                "new_user_share_of_sessions": share_sessions,
                "new_user_share_of_requests": share_new,
                "ctr_returning_control": ctr_ret,
                "ctr_new_control": ctr_new,
                "ctr_all_control": (1 - share_new) * ctr_ret + share_new * ctr_new,
                "ctr_all_both_arms": ((1 - share_new) * ctr_ret + share_new * ctr_new) * lift_avg,
            }

        return {
            "scenario": asdict(self),
            "position_weights": pos,
            "before_promo": phase(self.new_user_share, self.coverage_gap, self.ctr_returning, self.ctr_new),
            "promo": phase(
                self.promo_new_user_share, self.promo_coverage_gap, self.promo_ctr_returning, self.promo_ctr_new
            ),
            "crawler": None if not self.crawler_requests else {
                "ds": self.crawler_ds,
                "source": CRAWLER_SOURCE,
                "sessions": self.crawler_sessions,
                "requests": self.crawler_requests,
                "impressions_at_most": self.crawler_requests * SLOTS_PER_REQUEST,
                "clicks": 0,
                "served_by": self.control_version,
                "experiment_id": None,
            },
            "serving": {
                "latency_median_ms": {self.control_version: self.latency_median_ms_control,
                                      self.treatment_version: self.latency_median_ms_treatment},
                "error_share_of_sessions": self.error_share,
                "retry_share": self.retry_share,
            },
            "treatment_vs_control": {
                "experiment_start": self.experiment_start,
                "ctr_relative_lift": self.treatment_ctr_lift,
                "cvr_relative_lift": self.treatment_order_lift,
                "orders_per_user_relative_lift": (1 + self.treatment_ctr_lift) * (1 + self.treatment_order_lift) - 1,
                "gmv_per_user_relative_lift": (1 + self.treatment_ctr_lift) * (1 + self.treatment_order_lift) - 1,
            },
        }


def _position_weights() -> list[float]:
    """Position bias 1/log2(1+pos), normalised to mean 1 over the 10 slots."""
    raw = [1 / math.log2(1 + p) for p in range(1, SLOTS_PER_REQUEST + 1)]
    mean = sum(raw) / len(raw)
    return [w / mean for w in raw]
