"""Routing of alerts (conf/alerting.yaml): tiers, recipients, promotions, and its errors."""
from __future__ import annotations

import pytest

from offline_eval import alerting
from offline_eval.errors import ConfigError

DOC = {
    "tiers": {"drift_severe[score]": "severe", "drift_severe": "medium", "drift_minor": "minor"},
    "routes": {"severe": ["owner", "oncall"], "medium": ["ds"], "minor": []},
    "recipients": {
        "owner": {"channel": "email", "to": ["owner@example.com"]},
        "oncall": {"channel": "webhook", "conn_id": "oncall_hook"},
        "ds": {"channel": "email", "conn_id": "smtp_ds", "to": "ds@example.com"},
    },
    "promotions": [{"name": "sale", "start": "2026-06-18", "end": "2026-06-21", "ctr_drop_widen": 0.15}],
    "models": {"feed": {"routes": {"medium": ["owner"]}, "tiers": {"ctr_drop": "severe"}, "promotions": []}},
}


def test_the_routing_table():
    cfg = alerting.parse(DOC, "t.yaml")
    r = cfg.for_model("other_model")
    assert [(rule, metric, r.tier(rule, metric)) for rule, metric in (
        ("drift_severe", "score"), ("drift_severe", "c_device"), ("drift_minor", "score"), ("ctr_drop", "ctr"),
        ("baseline_3sd", "auc"), ("new_user_coverage", "new_user_coverage"), ("day_failed", None))] == [
        ("drift_severe", "score", "severe"), ("drift_severe", "c_device", "medium"),
        ("drift_minor", "score", "minor"), ("ctr_drop", "ctr", "medium"), ("baseline_3sd", "auc", "medium"),
        ("new_user_coverage", "new_user_coverage", "medium"), ("day_failed", None, "severe")]
    assert [x.name for x in r.recipients_of("severe")] == ["owner", "oncall"]
    assert r.recipients_of("minor") == []
    # baseline_3sd: the population as a whole is medium, a segment of it minor.
    assert (r.tier("baseline_3sd", "auc", "all"), r.tier("baseline_3sd", "auc", "new_users")) == ("medium", "minor")
    owner, oncall = r.recipients_of("severe")
    assert (owner.channel, owner.conn_id, owner.to) == ("email", "smtp_default", ("owner@example.com",))
    assert (oncall.channel, oncall.conn_id, oncall.to) == ("webhook", "oncall_hook", ())
    assert r.recipients["ds"].to == ("ds@example.com",)
    assert (r.ctr_drop_widen("2026-06-17"), r.ctr_drop_widen("2026-06-18"), r.ctr_drop_widen("2026-06-21"),
            r.ctr_drop_widen("2026-06-22")) == (0.0, 0.15, 0.15, 0.0)
    # A model's section overrides key by key and keeps the rest.
    feed = cfg.for_model("feed")
    assert feed.tier("ctr_drop") == "severe" and feed.tier("drift_severe", "score") == "severe"
    assert [x.name for x in feed.recipients_of("medium")] == ["owner"]
    assert [x.name for x in feed.recipients_of("severe")] == ["owner", "oncall"]
    assert feed.ctr_drop_widen("2026-06-18") == 0.0


@pytest.mark.parametrize(("patch", "message"), [
    ({"tiers": {"ctr_dorp": "medium"}}, r"tiers\.ctr_dorp: not a rule"),
    ({"tiers": {"ctr_drop": "high"}}, r"tiers\.ctr_drop='high': one of"),
    ({"tiers": {"ctr_drop": {"all": "medium"}}}, r"tiers\.ctr_drop=.*segments: <tier>"),
    ({"routes": {"severe": ["nobody"]}}, r"routes\.severe: recipients \['nobody'\] are not defined"),
    ({"routes": {"urgent": []}}, r"routes\.urgent: not a tier"),
    ({"recipients": {"x": {"channel": "pager"}}}, r"recipients\.x\.channel='pager'"),
    ({"recipients": {"x": {"channel": "email", "to": ["not an address"]}}}, r"recipients\.x\.to"),
    ({"recipients": {"x": {"channel": "webhook", "conn_id": "a b"}}}, r"conn_id='a b'"),
    ({"recipients": {"x": {"channel": "webhook", "conn_id": "h", "to": ["a@b.c"]}}}, r"has no addresses"),
    ({"promotions": [{"start": "2026-06-18", "ctr_drop_widen": 1.5}]}, r"promotions\[0\]\.ctr_drop_widen=1\.5"),
    ({"promotions": [{"start": "18/06/2026"}]}, r"invalid ds"),
    ({"promotions": [{"start": "2026-06-18", "end": "2026-06-01"}]}, r"end 2026-06-01 is before start"),
    ({"colour": "red"}, r"unknown keys \['colour'\]"),
])
def test_bad_configuration_names_file_and_key(patch, message):
    with pytest.raises(ConfigError, match=message) as err:
        alerting.parse({**DOC, **patch}, "conf/x.yaml")
    assert "conf/x.yaml" in str(err.value) or "invalid ds" in str(err.value)


def test_the_shipped_file_loads_and_routes_the_three_tiers(monkeypatch):
    monkeypatch.delenv("OFFLINE_EVAL_ALERTING", raising=False)
    r = alerting.load().for_model("home_feed_ctr")
    assert {x.name for x in r.recipients_of("severe")} == {"model_owner", "on_call"}
    assert r.recipients["model_owner"].to == ("home-feed-owners@example.com",)  # the model's override
    assert [x.name for x in r.recipients_of("medium")] == ["data_science"] and r.recipients_of("minor") == []
    monkeypatch.setenv("OFFLINE_EVAL_ALERTING", "/nonexistent/alerting.yaml")
    with pytest.raises(ConfigError, match="OFFLINE_EVAL_ALERTING=/nonexistent/alerting.yaml: no such file"):
        alerting.load()
