"""Alert delivery through Airflow's notifiers, configured by Airflow connections.

* ``email``: the SMTP provider's ``SmtpNotifier`` on the recipient's SMTP connection
  (``smtp_default`` unless conf/alerting.yaml names another);
* ``webhook``: ``WebhookNotifier``, a small ``BaseNotifier`` that POSTs the incident as JSON to
  the URL of an HTTP connection (host, port, schema; the connection's ``endpoint`` extra as the
  path, its password as a bearer token). The HTTP provider is not installed for this alone:
  one POST with httpx (already an Airflow dependency) does the job;
* with ``OFFLINE_EVAL_OUTBOX`` set (the embedded stack), ``OutboxNotifier`` writes each message
  as it would be sent to that folder instead.

Message texts are prebuilt from data, so none of these notifiers renders them as Jinja
templates (a ``{{`` in a column name must reach the reader as is).

``notify_day_failure`` is the daily DAG's task failure callback: a failed day is a severe alert
to the severe tier's recipients of every model's routing (the day has no model yet).
"""
from __future__ import annotations

import logging
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)


class IncidentEmailNotifier(SmtpNotifier):
    """``SmtpNotifier`` with a prebuilt subject and HTML body (no template rendering)."""

    template_fields = ()


class WebhookNotifier(BaseNotifier):
    template_fields = ()

    def __init__(self, conn_id: str, payload: dict[str, Any], timeout: float = 10.0) -> None:
        super().__init__()
        self.conn_id, self.payload, self.timeout = conn_id, payload, timeout

    def url_and_headers(self) -> tuple[str, dict[str, str]]:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(self.conn_id)
        if not conn.host:
            raise ValueError(f"Airflow connection {self.conn_id}: no host (the webhook's URL)")
        host = conn.host if "://" in conn.host else f"{conn.schema or 'http'}://{conn.host}"
        port = f":{conn.port}" if conn.port else ""
        extra = conn.extra_dejson or {}
        path = str(extra.get("endpoint", ""))
        headers = {"Content-Type": "application/json", **{str(k): str(v) for k, v in
                                                          (extra.get("headers") or {}).items()}}
        if conn.password:
            headers["Authorization"] = f"Bearer {conn.password}"
        return f"{host.rstrip('/')}{port}/{path.lstrip('/')}", headers

    def notify(self, context: Any) -> None:
        import httpx

        url, headers = self.url_and_headers()
        response = httpx.post(url, json=self.payload, headers=headers, timeout=self.timeout)
        response.raise_for_status()


class OutboxNotifier(BaseNotifier):
    template_fields = ()

    def __init__(self, folder: str, message: Any) -> None:
        super().__init__()
        self.folder, self.message = folder, message

    def notify(self, context: Any) -> None:
        from pathlib import Path

        from offline_eval.io.deliveries import write_outbox

        path = write_outbox(Path(self.folder), self.message)
        log.info("outbox: %s", path)


def notifier_for(message: Any, outbox: str = "") -> BaseNotifier:
    """The Airflow notifier that delivers ``message`` (an ``offline_eval.reporting.alerts.Message``)."""
    if outbox:
        return OutboxNotifier(outbox, message)
    if message.channel == "email":
        return IncidentEmailNotifier(to=list(message.to), subject=message.subject, html_content=message.html,
                                     smtp_conn_id=message.conn_id)
    return WebhookNotifier(message.conn_id, message.payload)


def send(message: Any, outbox: str = "") -> None:
    notifier_for(message, outbox)({})


def sender() -> Any:
    """``send`` bound to this deployment's outbox setting (``OFFLINE_EVAL_OUTBOX``)."""
    from offline_eval.config import Settings

    outbox = Settings.from_env().outbox
    return lambda message: send(message, outbox)


def notify_day_failure(context: Any) -> None:
    """Task failure callback: the day failed in this task (after its retries)."""
    from offline_eval import alerting
    from offline_eval.config import Settings
    from offline_eval.io.deliveries import deliver
    from offline_eval.reporting.alerts import failure_message

    ti = context["ti"]
    ds = context.get("ds") or ""
    error = str(context.get("exception") or "the task failed (see its log)")
    config = alerting.load()
    routings = [config.default, *config.models.values()]
    recipients = {r.name: r for routing in routings for r in routing.recipients_of("severe")}
    settings = Settings.from_env()
    messages = [failure_message(ti.dag_id, ti.task_id, ds, error, getattr(ti, "log_url", "") or "", r)
                for r in recipients.values()]
    counts = deliver(settings, messages, lambda m: send(m, settings.outbox))
    log.info("day %s failed in %s: %s", ds, ti.task_id, counts)
