"""Typed rows of the result tables: what a day's evaluation yields, field for field the columns
of its table in ``contract.py`` (less the partition columns), each able to produce that row.
tests/test_records.py checks that the fields and the contract cannot disagree.

Profiles and references have their own types (``stats.profile.Profile``, ``NumericProfile``);
their table rows are the IO layer's storage format (``io/profiles.py``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from offline_eval.contract import ALERTS_DAILY, CONCEPT_DRIFT_DAILY, DRIFT_DAILY, METRICS_DAILY, TableSpec


class Record:
    TABLE: ClassVar[TableSpec]

    def to_row(self) -> dict[str, Any]:
        """The table row (without its partition columns), keyed by the contract's columns."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class MetricRow(Record):
    TABLE: ClassVar[TableSpec] = METRICS_DAILY
    model_name: str
    model_version: str
    variant: str
    segment: str
    metric: str
    value: float | None
    numerator: float | None
    denominator: float | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> MetricRow:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class DriftRow(Record):
    """One column of one model version against one reference."""

    TABLE: ClassVar[TableSpec] = DRIFT_DAILY
    model_name: str
    model_version: str
    reference: str  # previous_day | baseline_7d
    reference_end: str
    column: str
    type: str  # numeric | categorical
    psi: float | None
    ks: float | None
    ks_error_bound: float | None
    js: float | None
    wasserstein: float | None
    chi2_p: float | None
    p_value: float | None  # the test behind the verdict: KS (numeric) or chi-square (categorical)
    n_reference: int
    n_current: int
    verdict: str  # none | minor | severe | no data
    psi_edges: list[float] | None

    @classmethod
    def of(cls, key: tuple[str, str], reference: str, reference_end: str, result: Mapping[str, Any]) -> DriftRow:
        """From a comparison of ``stats.drift`` (``compare_numeric``/``compare_categorical``)."""
        return cls(key[0], key[1], reference, reference_end, result["column"], result["type"], result.get("psi"),
                   result.get("ks"), result.get("ks_error_bound"), result.get("js"), result.get("wasserstein"),
                   result.get("chi2_p"), result.get("ks_p", result.get("chi2_p")), result["n_reference"],
                   result["n_current"], result["verdict"], result.get("psi_edges"))

    @property
    def drifted(self) -> bool:
        return self.verdict in ("minor", "severe")


@dataclass(frozen=True)
class ConceptDriftRow(Record):
    TABLE: ClassVar[TableSpec] = CONCEPT_DRIFT_DAILY
    model_name: str
    model_version: str
    segment: str
    reference: str
    reference_end: str
    mean_abs_change: float | None
    mean_rel_change: float | None
    buckets: str  # JSON: per score bucket of the reference, CTR then and now

    @classmethod
    def of(cls, key: tuple[str, str], segment: str, reference: str, reference_end: str,
           result: Mapping[str, Any]) -> ConceptDriftRow:
        """From ``stats.quality.concept_drift``."""
        return cls(key[0], key[1], segment, reference, reference_end, result["mean_abs_change"],
                   result["mean_rel_change"], json.dumps(result["buckets"]))


@dataclass(frozen=True)
class AlertRow(Record):
    TABLE: ClassVar[TableSpec] = ALERTS_DAILY
    alert_id: str  # stable across reruns: see ``alert_id``
    model_name: str
    model_version: str
    rule: str  # stats.alerts.RULES
    tier: str  # severe | medium | minor
    reference: str
    variant: str | None
    segment: str
    metric: str
    value: float | None
    threshold: float | None = None
    baseline_mean: float | None = None
    baseline_std: float | None = None
    lower: float | None = None
    upper: float | None = None
    z: float | None = None
    relative_change: float | None = None
    numerator: float | None = None
    denominator: float | None = None
    incident_id: str | None = None
    cause: str | None = None
    context: str | None = None  # JSON (stats.incidents.context)

    @classmethod
    def of(cls, key: tuple[str, str], ds: str, alert: Mapping[str, Any]) -> AlertRow:
        """From a rule of ``stats.alerts`` (a dict with the rule's own fields), with its tier and
        what ``stats.incidents.explain`` added."""
        fields = {f.name for f in dataclasses.fields(cls)} - {"alert_id", "model_name", "model_version"}
        unknown = set(alert) - fields
        if unknown:
            raise ValueError(f"alert fields {sorted(unknown)} are not columns of alerts_daily")
        return cls(alert_id(key, ds, alert), key[0], key[1], **alert)


def alert_id(key: tuple[str, str], ds: str, alert: Mapping[str, Any]) -> str:
    """Stable across reruns: the same alert of the same day gets the same id."""
    parts = [key[0], key[1], ds, alert["rule"], alert["reference"], str(alert.get("variant")), alert["segment"],
             alert["metric"]]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


RECORDS: tuple[type[Record], ...] = (MetricRow, DriftRow, ConceptDriftRow, AlertRow)
