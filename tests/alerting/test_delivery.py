"""Delivering incidents: a real SMTP server (aiosmtpd) and a real HTTP webhook receiver on
127.0.0.1, reached through Airflow's notifiers and Airflow connections; the outbox; no second
send on a rerun and an update when an incident changed."""
from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("airflow.providers.smtp")
from aiosmtpd.controller import Controller  # noqa: E402
from offline_eval_airflow import notify as airflow_notify  # noqa: E402

from offline_eval import alerting  # noqa: E402
from offline_eval.config import Settings  # noqa: E402
from offline_eval.io.deliveries import deliver, read_ledger, write_outbox  # noqa: E402
from offline_eval.jobs.notify import messages  # noqa: E402
from offline_eval.stats.incidents import DayEvidence, explain  # noqa: E402
from tests.stats.test_incidents import AFTER, BEFORE, CONCEPT, CTR_ALERT, DRIFT, DRIFT_ALERT  # noqa: E402

DS = "2026-06-18"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            received.append((envelope.mail_from, list(envelope.rcpt_tos),
                             email.message_from_bytes(envelope.content, policy=email.policy.default)))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, received
    controller.stop()


@pytest.fixture
def webhook_server():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's hook name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, dict(self.headers), json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], received
    server.shutdown()


ROUTING = {
    "routes": {"severe": ["owner", "oncall"], "medium": ["ds"], "minor": []},
    "recipients": {"owner": {"channel": "email", "conn_id": "test_smtp", "to": ["owner@example.com"]},
                   "oncall": {"channel": "webhook", "conn_id": "test_oncall"},
                   "ds": {"channel": "email", "conn_id": "test_smtp", "to": ["ds@example.com", "ds2@example.com"]}},
}


def day_alerts(ctr_value: float = 0.054) -> list[dict]:
    """One incident of v1 (a severe score drift and a medium CTR drop) and one of v2 (a minor
    drift only), as alerts_daily rows."""
    evidence = DayEvidence(today=AFTER, previous_day=BEFORE, drift=DRIFT, concept=CONCEPT)
    v1 = explain([{**CTR_ALERT, "value": ctr_value}, {**DRIFT_ALERT, "tier": "severe", "metric": "score"}],
                 evidence, ("m", "v1"), DS)
    v2 = explain([{**DRIFT_ALERT, "tier": "minor", "rule": "drift_minor"}], evidence, ("m", "v2"), DS)
    return [{**a, "alert_id": f"a{i}", "model_name": "m", "model_version": v}
            for i, (v, a) in enumerate([("v1", x) for x in v1] + [("v2", x) for x in v2])]


def test_the_routing_of_one_day(tmp_path):
    settings = Settings(home=tmp_path, reports_dir=tmp_path / "reports")
    planned = messages(settings, DS, day_alerts(), alerting.parse(ROUTING, "t"))
    # v1's incident reaches all three (severe: owner and on-call; medium: data science);
    # v2's holds a minor alert only: recorded, not sent.
    assert sorted((m.recipient, m.tier) for m in planned) == [("ds", "severe"), ("oncall", "severe"),
                                                             ("owner", "severe")]
    m = next(m for m in planned if m.recipient == "owner")
    assert m.subject == "[severe] m v1 2026-06-18: population shift, 2 alerts"
    assert "Cause: new users went from 20% to 50% of impressions" in m.text
    assert "ctr vs previous_day: 7.60% -> 5.40% = mix -2.07 pts + rate -0.13 pts; new users 20% -> 50%" in m.text
    assert "ctr_drop          ctr[all] control" in m.text and "27/500" in m.text
    assert "most drifted features vs previous_day: c_traffic_source 0.56 (severe), f_x 0.12 (minor)" in m.text
    assert "report: file://" in m.text


def test_smtp_and_webhook_deliveries(tmp_path, monkeypatch, smtp_server, webhook_server):
    smtp_port, mails = smtp_server
    hook_port, posts = webhook_server
    monkeypatch.setenv("AIRFLOW_CONN_TEST_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "offline-eval@example.com",
                  "retry_limit": 0}}))
    monkeypatch.setenv("AIRFLOW_CONN_TEST_ONCALL", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": hook_port, "password": "t0ken",
        "extra": {"endpoint": "/hooks/oncall"}}))
    settings = Settings(home=tmp_path, reports_dir=tmp_path / "reports")
    config = alerting.parse(ROUTING, "t")

    first = deliver(settings, messages(settings, DS, day_alerts(), config), airflow_notify.send)
    assert first == {"sent": 3, "updated": 0, "unchanged": 0}
    assert sorted(tuple(r) for _, r, _ in mails) == [("ds@example.com", "ds2@example.com"), ("owner@example.com",)]
    sender, _, mail = mails[0]
    assert sender == "offline-eval@example.com" and mail["Subject"].startswith("[severe] m v1 2026-06-18")
    assert "population shift" in mail.get_body(("html",)).get_content()
    ((path, headers, body),) = posts
    assert path == "/hooks/oncall" and headers["Authorization"] == "Bearer t0ken"
    assert (body["tier"], body["model_version"], body["update"], len(body["alerts"])) == ("severe", "v1", False, 2)
    assert {a["rule"] for a in body["alerts"]} == {"ctr_drop", "drift_severe"}

    # The same day again: nothing is sent twice.
    assert deliver(settings, messages(settings, DS, day_alerts(), config), airflow_notify.send) == {
        "sent": 0, "updated": 0, "unchanged": 3}
    assert (len(mails), len(posts)) == (2, 1)
    # A rerun whose CTR came out differently changes the incident: sent again, as an update.
    assert deliver(settings, messages(settings, DS, day_alerts(ctr_value=0.05), config), airflow_notify.send) == {
        "sent": 0, "updated": 3, "unchanged": 0}
    assert mails[-1][2]["Subject"].startswith("[update] [severe] m v1") and posts[-1][2]["update"] is True
    assert {e["sends"] for e in read_ledger(settings, DS).values()} == {2}


def test_the_outbox_holds_each_message_as_sent(tmp_path):
    settings = Settings(home=tmp_path, reports_dir=tmp_path / "reports", outbox=str(tmp_path / "outbox"))
    planned = messages(settings, DS, day_alerts(), alerting.parse(ROUTING, "t"))
    deliver(settings, planned, lambda m: airflow_notify.send(m, settings.outbox))
    files = sorted(p.name for p in (tmp_path / "outbox" / DS).iterdir())
    ids = {m.recipient: m.message_id for m in planned}
    assert files == [f"severe-ds-{ids['ds']}.eml", f"severe-oncall-{ids['oncall']}.json",
                     f"severe-owner-{ids['owner']}.eml"]
    mail = email.message_from_bytes((tmp_path / "outbox" / DS / files[0]).read_bytes(), policy=email.policy.default)
    assert mail["To"] == "ds@example.com, ds2@example.com" and "Cause:" in mail.get_body(("plain",)).get_content()
    hook = json.loads((tmp_path / "outbox" / DS / files[1]).read_text())
    assert hook["connection"] == "test_oncall" and hook["body"]["incident_id"] == planned[0].payload["incident_id"]
    # An update gets its own file beside the first.
    path = write_outbox(Path(settings.outbox), planned[0].as_update())
    assert path.name.endswith("-update-1.eml")


def test_html_escapes_what_comes_from_the_data(tmp_path):
    rows = day_alerts()
    for r in rows:
        r["cause"] = "<script>alert(1)</script>"
    settings = Settings(home=tmp_path, reports_dir=tmp_path / "reports")
    m = messages(settings, DS, rows, alerting.parse(ROUTING, "t"))[0]
    assert "<script>" not in m.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in m.html


@pytest.mark.parametrize(("alert", "expected"), [
    ({"rule": "baseline_3sd", "metric": "auc", "value": 0.61, "lower": 0.65, "upper": 0.75, "z": -4.2,
      "numerator": None, "denominator": 11000.0},  # quality metrics carry only a denominator
     "baseline_3sd      auc[all] control                    0.61 outside [0.65, 0.75] (z -4.2) (r)"),
    ({"rule": "baseline_3sd", "metric": "category_entropy", "value": 4.9, "lower": 5.0, "upper": 5.2, "z": -3.5,
      "numerator": None, "denominator": None},
     "baseline_3sd      category_entropy[all] control       4.9 outside [5, 5.2] (z -3.5) (r)"),
    ({"rule": "latency_p95_up", "metric": "latency_p95_ms", "value": 84.1, "baseline_mean": 80.0,
      "relative_change": 0.05125, "threshold": 0.05},
     "latency_p95_up    latency_p95_ms[all] control         84.1 ms vs 80 ms (+5.1%, allowed +5%) (r)"),
    ({"rule": "serving_error_rate", "metric": "error_rate", "value": 0.061, "threshold": 0.05, "numerator": 61.0,
      "denominator": 1000.0}, "serving_error_rate error_rate[all] control             6.10% above 5.00% (r); 61/1000"),
    ({"rule": "bot_traffic", "metric": "bot_impression_share", "value": 0.2131, "threshold": 0.02},
     "bot_traffic       bot_impression_share[all] control   21.31% above 2.00% (r)"),
    ({"rule": "unknown_item_ids", "metric": "unknown_item_ids", "value": 3.0, "threshold": 0.0},
     "unknown_item_ids  unknown_item_ids[all] control       3 above 0 (r)"),
    ({"rule": "new_user_coverage", "metric": "new_user_coverage", "value": 0.9499, "threshold": 0.95},
     "new_user_coverage new_user_coverage[all] control      94.99% below 95.00% (r)"),
])
def test_every_rule_reads_as_a_line(alert, expected):
    from offline_eval.reporting.alerts import symptom

    line = symptom({"tier": "medium", "reference": "r", "variant": "control", "segment": "all", **alert})
    assert line.split() == f"medium {expected}".split()  # the words; the columns are padded
