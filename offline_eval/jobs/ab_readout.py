"""A/B readout of the pipeline's experiments: per-user sufficient statistics in Spark from
the logs, statistics on the driver, JSON/HTML/Markdown under reports/ab/<experiment>/<ds>/.

Window: from the experiment's first day (or ``start``) to ``end``. Exposure: users with a
session assigned to the experiment in the window. Pre-period for CUPED: the ``pre_days`` days
before the experiment's first day, when the logs have them.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline_eval import thresholds
from offline_eval.config import ConfigError, Settings, validate_identifier
from offline_eval.dates import offset, validate_ds
from offline_eval.errors import DataError
from offline_eval.io.paths import ab_report_dir, replace_dir, write_json_atomic, write_text_atomic
from offline_eval.io.spark import get_spark
from offline_eval.io.tables import Tables
from offline_eval.metrics.ab import (
    GUARDRAILS,
    EventLogs,
    experiment_moments,
    experiment_sessions,
    experiments_in,
    first_day,
)
from offline_eval.reporting.ab import to_html, to_markdown
from offline_eval.stats.readout import build_readout

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

LOOKBACK_DAYS = 120  # how far back to look for an experiment's first day
ATTRIBUTION_TAIL_DAYS = 1  # orders of the window's last clicks may land the next day


def running_experiments(tables: Tables, ds: str) -> list[str]:
    return [validate_identifier(e, "experiment id") for e in experiments_in(tables.read("sessions", ds))]


def _logs(tables: Tables, start: str, end: str) -> EventLogs:
    """The window's impressions, and its events up to ATTRIBUTION_TAIL_DAYS after it."""
    tail = offset(end, ATTRIBUTION_TAIL_DAYS)
    return EventLogs(tables.read_range("impressions", start, end), tables.read_range("clicks", start, tail),
                     tables.read_range("add_to_cart", start, tail), tables.read_range("orders", start, tail))


def readout_experiment(
    tables: Tables, experiment_id: str, end: str, *, start: str | None = None, pre_days: int = 7,
    alpha: float = 0.05, correction: str = "holm",
) -> dict[str, Any]:
    experiment_id = validate_identifier(experiment_id, "experiment id")
    sessions = experiment_sessions(tables.read_range("sessions", offset(end, -LOOKBACK_DAYS), end), experiment_id)
    first = first_day(sessions)
    if first is None:
        raise DataError(f"table sessions, partitions up to ds={end}: no sessions of experiment {experiment_id} "
                        f"(check: experiment exposure in the last {LOOKBACK_DAYS} days)")
    start = max(validate_ds(start), first) if start else first
    if start > end:
        raise ConfigError(f"readout window {start}..{end} is empty (experiment {experiment_id} starts {first})")
    pre_start, pre_end = offset(first, -pre_days), offset(first, -1)

    t0 = time.monotonic()
    pre = _logs(tables, pre_start, pre_end) if pre_days > 0 else None
    data = experiment_moments(sessions, _logs(tables, start, end), pre, experiment_id, start, end)
    if "control" not in data.counts:
        raise DataError(f"experiment {experiment_id} {start}..{end}: no control arm (arms: {sorted(data.counts)})")
    limits = thresholds.load()
    model_limits = limits.for_model(data.models[0]) if len(data.models) == 1 else limits.defaults
    readout = build_readout(data.arms, data.counts, [(m.name, m.kind, m.covariate is not None) for m in data.specs],
                            "control", alpha=alpha, correction=correction, guardrails=GUARDRAILS,
                            srm_alpha=model_limits.srm_alpha)
    readout.update({
        "experiment_id": experiment_id,
        "model_name": data.models[0] if len(data.models) == 1 else None,
        "model_versions": data.versions,
        "window": {"start": start, "end": end, "experiment_start": first},
        "pre_period": {"start": pre_start, "end": pre_end} if data.has_pre else None,
        "excluded_users_in_several_arms": data.leaked,
        "unit": "user",
    })
    log.info("readout %s %s..%s: %s users, %d metrics in %.1fs", experiment_id, start, end, data.counts,
             len(readout["metrics"]), time.monotonic() - t0)
    return readout


def write_outputs(target: Path, readout: dict[str, Any]) -> None:
    title = f"A/B readout: {readout['experiment_id']} ({readout['window']['start']} to {readout['window']['end']})"
    versions = readout.get("model_versions") or {}
    context = {"model": str(readout.get("model_name")),
               "versions": ", ".join(f"{k}={'/'.join(v)}" for k, v in sorted(versions.items())),
               "pre-period (CUPED)": (f"{readout['pre_period']['start']}..{readout['pre_period']['end']}"
                                      if readout.get("pre_period") else "none"),
               "users in several arms (excluded)": str(readout["excluded_users_in_several_arms"])}

    def fill(tmp: Path) -> None:
        write_json_atomic(tmp / "readout.json", readout)
        write_text_atomic(tmp / "readout.html", to_html(readout, title=title, context=context))
        write_text_atomic(tmp / "readout.md", to_markdown(readout, title=title))

    replace_dir(target, fill)


def run(end: str, settings: Settings | None = None, *, experiment: str | None = None, start: str | None = None,
        pre_days: int = 7, alpha: float = 0.05, correction: str = "holm", spark: SparkSession | None = None
        ) -> dict[str, Any]:
    """Read out ``experiment`` (or every experiment running on ``end``) over its window."""
    settings = settings or Settings.from_env()
    end = validate_ds(end)
    experiment = validate_identifier(experiment, "experiment id") if experiment else None
    if start is not None and validate_ds(start) > end:
        raise ConfigError(f"--start {start} is after the last day of the window {end}")
    if not 0 <= pre_days <= 366:
        raise ConfigError(f"--pre-days {pre_days}: 0..366 days before the experiment")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha {alpha}: a significance level strictly between 0 and 1")
    spark = spark or get_spark(settings, tag=f"offline-eval-ab-readout-{end}")
    tables = Tables(spark, settings)
    experiments = [experiment] if experiment else running_experiments(tables, end)
    if not experiments:
        log.info("no experiment running on %s: nothing to read out", end)
    out = {}
    for exp in experiments:
        readout = readout_experiment(
            tables, exp, end, start=start, pre_days=pre_days, alpha=alpha, correction=correction
        )
        target = ab_report_dir(settings, exp, end)
        write_outputs(target, readout)
        out[exp] = str(target)
    return {"ds": end, "readouts": out}


def publish(end: str, settings: Settings | None = None, *, dag_run_id: str = "manual",
            experiment: str | None = None) -> list[dict[str, str]]:
    """Log the readouts written for ``end`` to MLflow (no Spark needed)."""
    import json

    from offline_eval.io.mlflow_log import log_readout

    settings = settings or Settings.from_env()
    end = validate_ds(end)
    root = settings.reports_dir / "ab"
    names = [validate_identifier(experiment, "experiment id")] if experiment else sorted(
        p.name for p in root.glob("*") if (p / end / "readout.json").exists())
    out = []
    for name in names:
        report_dir = ab_report_dir(settings, name, end)
        path = report_dir / "readout.json"
        if not path.exists():
            raise DataError(f"no readout for experiment {name} on {end} at {path}: run the readout first")
        readout = json.loads(path.read_text())
        if not readout.get("model_name"):
            log.warning("readout %s mixes several models; not logged to MLflow", path)
            continue
        result = log_readout(settings, readout, report_dir, dag_run_id)
        log.info("MLflow run %s for %s %s", result["run_id"], name, end)
        out.append({"experiment": name, **result})
    return out
