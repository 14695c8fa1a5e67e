"""Every decision threshold of the pipeline, in one validated object.

``Thresholds`` holds the drift bands and significance level, the alert rules, the SRM level of
A/B readouts, the input gate's rules and the sample size of the Evidently reports. The values
below are the defaults; ``conf/thresholds.toml`` (or the file named by
``OFFLINE_EVAL_THRESHOLDS``) may change them for all models (``[defaults]``) and per model
(``[models.<model_name>]``). docs/thresholds.md lists them with their meaning.

The statistics code (stats/) receives a ``Thresholds``; only ``load`` reads a file.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from offline_eval.config import ConfigError, resource_dir, validate_identifier


@dataclass(frozen=True)
class Thresholds:
    # Drift (stats/drift.py): a column drifts when p < p_value and its PSI is in a band.
    psi_minor: float = 0.1
    psi_severe: float = 0.2
    p_value: float = 0.01
    # Alerts (stats/alerts.py): outside mean +- sigma sd of a baseline of at least min_days
    # days; CTR more than ctr_drop below the previous day or the baseline.
    sigma: float = 3.0
    min_days: int = 3
    ctr_drop: float = 0.10
    # New users with at least one impression among the day's new users: below this, an alert.
    new_user_coverage_min: float = 0.95
    # A/B readouts (stats/ab.py): the sample-ratio mismatch check's level.
    srm_alpha: float = 0.001
    # Input gate (io/validation.py): row counts against the trailing validated days, feature
    # null shares and dominant categories against the previous day.
    row_count_low: float = 0.2
    row_count_high: float = 5.0
    row_count_trailing_days: int = 7
    null_share_jump: float = 0.5
    all_null: float = 0.95
    dominant_share: float = 0.5
    dominant_jump: float = 0.3
    # System layer (metrics/serving.py): error rate above error_rate_max; P95 latency more than
    # latency_rise above the reference.
    error_rate_max: float = 0.05
    latency_rise: float = 0.05
    # Security layer: burst sources (robust z of log10 requests above burst_z, at least
    # burst_min_requests), automated sessions (at least automated_min_requests, no click, mean
    # gap under automated_max_gap_s), and the share of impressions that raises bot_traffic.
    burst_min_requests: int = 100
    burst_z: float = 5.0
    automated_min_requests: int = 50
    automated_max_gap_s: float = 2.0
    bot_share_alert: float = 0.02
    # Evidently reports: rows sampled per model version and day.
    sample_rows: int = 50_000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            wanted = int if f.type in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (wanted is int and
                                                                                   not isinstance(value, int)):
                raise ConfigError(f"threshold {f.name}={value!r}: expected a number ({wanted.__name__})")
        rules = [
            ("psi_minor", 0 < self.psi_minor < self.psi_severe, "0 < psi_minor < psi_severe"),
            ("p_value", 0 < self.p_value < 1, "between 0 and 1"),
            ("sigma", self.sigma > 0, "positive"),
            ("min_days", self.min_days >= 2, "at least 2 (a standard deviation needs two days)"),
            ("ctr_drop", 0 < self.ctr_drop < 1, "a share between 0 and 1"),
            ("new_user_coverage_min", 0 < self.new_user_coverage_min <= 1, "a share in (0, 1]"),
            ("srm_alpha", 0 < self.srm_alpha < 1, "between 0 and 1"),
            ("row_count_low", 0 < self.row_count_low < 1 < self.row_count_high,
             "0 < row_count_low < 1 < row_count_high"),
            ("row_count_trailing_days", 1 <= self.row_count_trailing_days <= 366, "1..366"),
            ("null_share_jump", 0 < self.null_share_jump <= 1, "a share in (0, 1]"),
            ("all_null", 0 < self.all_null <= 1, "a share in (0, 1]"),
            ("dominant_share", 0 < self.dominant_share <= 1, "a share in (0, 1]"),
            ("dominant_jump", 0 < self.dominant_jump <= 1, "a share in (0, 1]"),
            ("sample_rows", 100 <= self.sample_rows <= 5_000_000, "100..5000000"),
            ("error_rate_max", 0 < self.error_rate_max < 1, "a share between 0 and 1"),
            ("latency_rise", self.latency_rise > 0, "positive"),
            ("burst_min_requests", self.burst_min_requests >= 1, "at least 1"),
            ("burst_z", self.burst_z > 0, "positive"),
            ("automated_min_requests", self.automated_min_requests >= 2, "at least 2"),
            ("automated_max_gap_s", self.automated_max_gap_s > 0, "positive"),
            ("bot_share_alert", 0 < self.bot_share_alert < 1, "a share between 0 and 1"),
        ]
        for name, ok, rule in rules:
            if not ok:
                raise ConfigError(f"threshold {name}={getattr(self, name)!r}: must be {rule}")

    def replace(self, values: dict[str, Any], source: str) -> Thresholds:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown thresholds {unknown} (known: {sorted(known)})")
        return dataclasses.replace(self, **values)


DEFAULT = Thresholds()


@dataclass(frozen=True)
class ThresholdConfig:
    """The thresholds of every model: the defaults, and each model's overrides applied to them."""

    defaults: Thresholds = DEFAULT
    models: dict[str, Thresholds] = field(default_factory=dict)
    source: str = "built-in defaults"

    def for_model(self, model_name: str) -> Thresholds:
        return self.models.get(model_name, self.defaults)


def default_path() -> Path:
    return Path(os.environ.get("OFFLINE_EVAL_THRESHOLDS") or resource_dir("conf") / "thresholds.toml")


def load(path: Path | None = None) -> ThresholdConfig:
    """The thresholds file (``conf/thresholds.toml`` unless ``OFFLINE_EVAL_THRESHOLDS`` names
    another); the built-in defaults when there is none. Any unknown name or out-of-range value
    is a ConfigError naming the file, the section and the threshold."""
    path = path or default_path()
    if not path.is_file():
        if os.environ.get("OFFLINE_EVAL_THRESHOLDS"):
            raise ConfigError(f"OFFLINE_EVAL_THRESHOLDS={path}: no such file")
        return ThresholdConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable TOML file ({exc})") from None
    unknown = sorted(set(raw) - {"defaults", "models"})
    if unknown:
        raise ConfigError(f"{path}: unknown sections {unknown} (expected [defaults] and [models.<model_name>])")
    defaults = DEFAULT.replace(_table(raw.get("defaults", {}), path, "[defaults]"), f"{path} [defaults]")
    models = {}
    for name, values in _table(raw.get("models", {}), path, "[models]").items():
        validate_identifier(name, "model name")
        section = f"{path} [models.{name}]"
        models[name] = defaults.replace(_table(values, path, f"[models.{name}]"), section)
    return ThresholdConfig(defaults, models, str(path))


def _table(value: object, path: Path, section: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path} {section}: expected a table of name = value")
    return value
