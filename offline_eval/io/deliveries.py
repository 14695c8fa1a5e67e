"""What was delivered to whom: the ledger that keeps a rerun from sending an alert twice, and
the outbox where the embedded stack's deliveries land as files.

The ledger is one JSON file per day under ``<home>/alerting/deliveries/<ds>.json``:
``{message_id: {"digest", "recipient", "channel", "tier", "sends"}}``. A message is sent when
its id is new, sent as an update when its digest changed (the alert's numbers or symptoms
moved), and skipped otherwise. It is written after every successful send, atomically, so a
crash between two sends resends nothing that went out.
"""
from __future__ import annotations

import email.message
import email.utils
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline_eval.config import Settings
from offline_eval.dates import validate_ds
from offline_eval.io.paths import write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from offline_eval.reporting.alerts import Message


def ledger_file(settings: Settings, ds: str) -> Path:
    return settings.home / "alerting" / "deliveries" / f"{validate_ds(ds)}.json"


def read_ledger(settings: Settings, ds: str) -> dict[str, dict[str, Any]]:
    path = ledger_file(settings, ds)
    return json.loads(path.read_text()) if path.is_file() else {}


def deliver(settings: Settings, messages: Iterable[Message], send: Callable[[Message], None]) -> dict[str, int]:
    """Send each message that is new or changed since its last delivery (an update), record it;
    returns the counts ``sent``, ``updated`` and ``unchanged``."""
    counts = {"sent": 0, "updated": 0, "unchanged": 0}
    for m in messages:
        ledger = read_ledger(settings, m.ds)
        digest = m.digest
        before = ledger.get(m.message_id)
        if before and before["digest"] == digest:
            counts["unchanged"] += 1
            continue
        send(m.as_update() if before else m)
        counts["updated" if before else "sent"] += 1
        ledger[m.message_id] = {"digest": digest, "recipient": m.recipient, "channel": m.channel, "tier": m.tier,
                                "sends": (before or {}).get("sends", 0) + 1}
        write_json_atomic(ledger_file(settings, m.ds), ledger)
    return counts


def outbox_dir(settings: Settings) -> Path:
    return settings.home / "outbox"


def write_outbox(folder: Path, m: Message, sender: str = "offline-eval@localhost") -> Path:
    """The message as it would be sent: an RFC 5322 ``.eml`` for e-mail, the HTTP request for a
    webhook; named ``<ds>/<tier>-<recipient>-<message_id>[-update-N]``."""
    day = folder / validate_ds(m.ds)
    day.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^a-z0-9_-]", "_", f"{m.tier}-{m.recipient}-{m.message_id}")
    n = len(list(day.glob(f"{stem}*")))
    if n:
        stem += f"-update-{n}"
    if m.channel == "email":
        msg = email.message.EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(m.to), m.subject
        msg["Date"] = email.utils.formatdate(localtime=False)
        msg["X-Offline-Eval-Tier"] = m.tier
        msg.set_content(m.text)
        msg.add_alternative(m.html, subtype="html")
        path = day / f"{stem}.eml"
        write_text_atomic(path, msg.as_string())
    else:
        path = day / f"{stem}.json"
        write_json_atomic(path, {"method": "POST", "connection": m.conn_id,
                                 "headers": {"Content-Type": "application/json"}, "body": m.payload})
    return path
