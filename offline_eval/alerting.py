"""Who hears of which alert: tiers, routes, recipients and the promotion calendar.

``conf/alerting.yaml`` (or the file named by ``OFFLINE_EVAL_ALERTING``) says, for every model
or per model (``models.<model_name>`` overrides the top level key by key):

* ``tiers``: the tier (severe, medium, minor) each rule raises; ``rule[metric]`` overrides it
  for one metric (``drift_severe[score]: severe``); a mapping ``{all: medium, segments: minor}``
  gives the population as a whole and its segments (new users, new items, ...) their own tier;
* ``routes``: the recipients of each tier (``minor: []`` is recorded and shown, never sent);
* ``recipients``: a channel per recipient: ``email`` (an Airflow SMTP connection and
  addresses) or ``webhook`` (an Airflow HTTP connection);
* ``promotions``: business periods whose CTR rule is widened by ``ctr_drop_widen``.

docs/alerting.md describes every key. Parsing is pure; only ``load`` reads a file.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline_eval.config import resource_dir, validate_identifier
from offline_eval.dates import parse_ds
from offline_eval.errors import ConfigError

TIERS = ("severe", "medium", "minor")  # most urgent first
CHANNELS = ("email", "webhook")
RULES = ("day_failed", "baseline_3sd", "ctr_drop", "new_user_coverage", "drift_severe", "drift_minor",
         "serving_error_rate", "latency_p95_up", "bot_traffic", "unknown_item_ids")
_TIER_KEY = re.compile(r"^(?P<rule>[a-z][a-z0-9_]*)(?:\[(?P<metric>[A-Za-z0-9_]+)\])?$")
_EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")


@dataclass(frozen=True)
class Recipient:
    name: str
    channel: str  # email | webhook
    conn_id: str  # the Airflow connection the notifier uses
    to: tuple[str, ...] = ()  # e-mail addresses (email channel)


@dataclass(frozen=True)
class Promotion:
    name: str
    start: dt.date
    end: dt.date
    ctr_drop_widen: float


@dataclass(frozen=True)
class Routing:
    """The routing of one model (the top level with that model's overrides applied)."""

    tiers: dict[str, str | dict[str, str]]
    routes: dict[str, tuple[str, ...]]
    recipients: dict[str, Recipient]
    promotions: tuple[Promotion, ...] = ()

    def tier(self, rule: str, metric: str | None = None, segment: str = "all") -> str:
        tier = self.tiers.get(f"{rule}[{metric}]") or self.tiers.get(rule)
        if tier is None:
            raise ConfigError(f"alerting: no tier for rule {rule!r} (add it under tiers:)")
        if isinstance(tier, dict):
            return tier["all" if segment == "all" else "segments"]
        return tier

    def recipients_of(self, tier: str) -> list[Recipient]:
        return [self.recipients[name] for name in self.routes.get(tier, ())]

    def promotion(self, ds: str | dt.date) -> Promotion | None:
        day = parse_ds(ds)
        return next((p for p in self.promotions if p.start <= day <= p.end), None)

    def ctr_drop_widen(self, ds: str | dt.date) -> float:
        promo = self.promotion(ds)
        return promo.ctr_drop_widen if promo else 0.0


DEFAULT_TIERS: dict[str, str | dict[str, str]] = {
                 "day_failed": "severe", "drift_severe[score]": "severe", "serving_error_rate": "severe",
                 "bot_traffic": "severe", "drift_severe": "medium",
                 # ~60 metric x segment pairs per version and day: 3-sd moves of a segment are common
                 "baseline_3sd": {"all": "medium", "segments": "minor"}, "ctr_drop": "medium",
                 "new_user_coverage": "medium", "unknown_item_ids": "medium", "drift_minor": "minor",
                 "latency_p95_up": "minor"}


@dataclass(frozen=True)
class AlertingConfig:
    default: Routing
    models: dict[str, Routing] = field(default_factory=dict)
    source: str = "built-in defaults"

    def for_model(self, model_name: str) -> Routing:
        return self.models.get(model_name, self.default)


BUILT_IN = AlertingConfig(Routing(dict(DEFAULT_TIERS), {t: () for t in TIERS}, {}))


def parse(raw: Any, source: str) -> AlertingConfig:
    """The YAML document ``raw`` -> a validated configuration; every error names ``source`` and
    the key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    known = {"tiers", "routes", "recipients", "promotions", "models"}
    _no_unknown(raw, known, source)
    default = _routing(raw, None, source)
    models = {}
    for name, section in (raw.get("models") or {}).items():
        validate_identifier(name, "model name")
        if not isinstance(section, dict):
            raise ConfigError(f"{source} models.{name}: expected a mapping")
        _no_unknown(section, known - {"models"}, f"{source} models.{name}")
        models[name] = _routing(section, default, f"{source} models.{name}")
    return AlertingConfig(default, models, source)


def _no_unknown(section: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")


def _routing(section: dict, base: Routing | None, where: str) -> Routing:
    tiers = dict(base.tiers if base else DEFAULT_TIERS)
    for key, tier in (section.get("tiers") or {}).items():
        m = _TIER_KEY.match(str(key))
        if not m or m["rule"] not in RULES:
            raise ConfigError(f"{where} tiers.{key}: not a rule (one of {RULES}, optionally rule[metric])")
        if isinstance(tier, dict):
            if set(tier) != {"all", "segments"} or not set(tier.values()) <= set(TIERS):
                raise ConfigError(f"{where} tiers.{key}={tier!r}: a tier, or {{all: <tier>, segments: <tier>}} "
                                  f"with tiers among {TIERS}")
        elif tier not in TIERS:
            raise ConfigError(f"{where} tiers.{key}={tier!r}: one of {TIERS}")
        tiers[str(key)] = tier
    recipients = dict(base.recipients if base else {})
    for name, spec in (section.get("recipients") or {}).items():
        recipients[name] = _recipient(name, spec, f"{where} recipients.{name}")
    routes = dict(base.routes if base else {t: () for t in TIERS})
    for tier, names in (section.get("routes") or {}).items():
        if tier not in TIERS:
            raise ConfigError(f"{where} routes.{tier}: not a tier (one of {TIERS})")
        if not isinstance(names, list):
            raise ConfigError(f"{where} routes.{tier}: expected a list of recipient names")
        routes[tier] = tuple(names)
    for tier, names in routes.items():
        missing = [n for n in names if n not in recipients]
        if missing:
            raise ConfigError(f"{where} routes.{tier}: recipients {missing} are not defined under recipients:")
    promotions = tuple(base.promotions if base else ())
    if "promotions" in section:
        promotions = tuple(_promotion(p, f"{where} promotions[{i}]")
                           for i, p in enumerate(section["promotions"] or []))
    return Routing(tiers, routes, recipients, promotions)


def _recipient(name: str, spec: Any, where: str) -> Recipient:
    validate_identifier(name, "recipient name")
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping with channel, conn_id and (email) to")
    _no_unknown(spec, {"channel", "conn_id", "to"}, where)
    channel = spec.get("channel")
    if channel not in CHANNELS:
        raise ConfigError(f"{where}.channel={channel!r}: one of {CHANNELS}")
    conn_id = spec.get("conn_id") or ("smtp_default" if channel == "email" else "")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", conn_id or ""):
        raise ConfigError(f"{where}.conn_id={conn_id!r}: an Airflow connection id ([A-Za-z0-9_.-])")
    to = spec.get("to") or []
    to = [to] if isinstance(to, str) else to
    if channel == "email":
        bad = [a for a in to if not isinstance(a, str) or not _EMAIL.match(a)]
        if not to or bad:
            raise ConfigError(f"{where}.to: one or more e-mail addresses (bad: {bad})")
    elif to:
        raise ConfigError(f"{where}.to: a webhook recipient has no addresses (its URL is the connection's)")
    return Recipient(name, channel, conn_id, tuple(to))


def _promotion(spec: Any, where: str) -> Promotion:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping with name, start, end, ctr_drop_widen")
    _no_unknown(spec, {"name", "start", "end", "ctr_drop_widen"}, where)
    try:
        start, end = parse_ds(str(spec["start"])), parse_ds(str(spec.get("end", spec["start"])))
    except KeyError:
        raise ConfigError(f"{where}.start: required (yyyy-MM-dd)") from None
    widen = spec.get("ctr_drop_widen", 0.0)
    if isinstance(widen, bool) or not isinstance(widen, (int, float)) or not 0 <= widen < 1:
        raise ConfigError(f"{where}.ctr_drop_widen={widen!r}: a share in [0, 1)")
    if end < start:
        raise ConfigError(f"{where}: end {end} is before start {start}")
    return Promotion(str(spec.get("name") or f"{start}..{end}"), start, end, float(widen))


def default_path() -> Path:
    return Path(os.environ.get("OFFLINE_EVAL_ALERTING") or resource_dir("conf") / "alerting.yaml")


def load(path: Path | None = None) -> AlertingConfig:
    """``conf/alerting.yaml`` (or ``OFFLINE_EVAL_ALERTING``); the built-in tiers with no
    recipients when there is none."""
    import yaml

    path = path or default_path()
    if not path.is_file():
        if os.environ.get("OFFLINE_EVAL_ALERTING"):
            raise ConfigError(f"OFFLINE_EVAL_ALERTING={path}: no such file")
        return BUILT_IN
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable YAML file ({exc})") from None
    return parse(raw, str(path))
