"""notify: the day's incidents to the people the routing names (conf/alerting.yaml).

Reads the day's alerts (``alerts_daily``, written by drift with their tier, context and
incident) through the IO layer, groups them into incidents, renders one message per incident
and recipient, and hands each new or changed one to ``send`` (the Airflow task passes the
notifiers of the Airflow providers; the command line writes to the outbox). The delivery ledger
keeps a rerun from sending the same message twice.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from offline_eval import alerting
from offline_eval.config import DayConfig, Settings
from offline_eval.io import results
from offline_eval.io.deliveries import deliver
from offline_eval.io.paths import day_report_dir
from offline_eval.io.spark import get_spark
from offline_eval.io.tables import Tables
from offline_eval.reporting.alerts import Message, incident_message
from offline_eval.stats.incidents import Incident, group

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def links(settings: Settings, incident: Incident) -> dict[str, str]:
    """The day's Evidently report and MLflow run of the incident's version (as publish wrote them)."""
    folder = day_report_dir(settings, incident.model_name, incident.model_version, incident.ds)
    out = {"report": (folder / "report.html").resolve().as_uri()}
    run_file = folder / "mlflow_run.json"
    if run_file.is_file():
        run = json.loads(run_file.read_text())
        out["mlflow run"] = f"{settings.mlflow_ui_url}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}"
    return out


def messages(settings: Settings, ds: str, rows: list[dict[str, Any]],
             config: alerting.AlertingConfig | None = None) -> list[Message]:
    config = config or alerting.load()
    out = []
    for incident in group(rows, ds):
        routing = config.for_model(incident.model_name)
        names = {r.name: r for t in alerting.TIERS for r in routing.recipients_of(t)}
        for recipient in names.values():
            m = incident_message(incident, recipient, routing, links(settings, incident))
            if m is not None:
                out.append(m)
    return out


def run(day: DayConfig, send: Callable[[Message], None], settings: Settings | None = None,
        spark: SparkSession | None = None) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    spark = spark or get_spark(settings, tag=f"offline-eval-notify-{day.ds}")
    rows = results.day_rows(Tables(spark, settings), "alerts_daily", [day.ds]).get(day.ds, [])
    planned = messages(settings, day.ds, rows)
    counts = deliver(settings, planned, send)
    incidents = len({r["incident_id"] for r in rows})
    log.info("ds=%s: %d alerts in %d incidents; %d messages: %d sent, %d updates, %d already delivered",
             day.ds, len(rows), incidents, len(planned), counts["sent"], counts["updated"], counts["unchanged"])
    return {"ds": day.ds, "alerts": len(rows), "incidents": incidents, "messages": len(planned), **counts}
