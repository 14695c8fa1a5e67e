"""The thresholds object: defaults, validation with clear errors, per-model overrides from the
TOML file, and the rules that read it (drift verdict, alerts, gate, summary) moving with it."""
from __future__ import annotations

import pytest

from offline_eval.config import ConfigError
from offline_eval.thresholds import DEFAULT, ThresholdConfig, Thresholds, load


def write(tmp_path, text: str):
    path = tmp_path / "thresholds.toml"
    path.write_text(text)
    return path


def test_the_shipped_file_keeps_the_defaults():
    from tests.conftest import ROOT

    config = load(ROOT / "conf" / "thresholds.toml")
    assert config.defaults == DEFAULT == Thresholds()
    assert config.for_model("home_feed_ctr") == DEFAULT and config.for_model("other") == DEFAULT
    assert (DEFAULT.psi_minor, DEFAULT.psi_severe, DEFAULT.p_value, DEFAULT.sigma, DEFAULT.min_days,
            DEFAULT.ctr_drop, DEFAULT.srm_alpha) == (0.1, 0.2, 0.01, 3.0, 3, 0.10, 0.001)


def test_defaults_and_per_model_overrides(tmp_path):
    config = load(write(tmp_path, "[defaults]\nctr_drop = 0.2\nsigma = 4\n\n[models.search]\nctr_drop = 0.05\n"))
    assert config.defaults.ctr_drop == 0.2 and config.defaults.sigma == 4
    assert config.for_model("search").ctr_drop == 0.05 and config.for_model("search").sigma == 4  # inherits
    assert config.for_model("home_feed_ctr") == config.defaults


@pytest.mark.parametrize("text, message", [
    ("[defaults]\npsi_minor = 0.3\n", "threshold psi_minor=0.3: must be 0 < psi_minor < psi_severe"),
    ("[defaults]\nctr_drop = 1.5\n", "threshold ctr_drop=1.5: must be a share between 0 and 1"),
    ("[defaults]\nmin_days = 2.5\n", "threshold min_days=2.5: expected a number (int)"),
    ("[defaults]\nsigma = 'three'\n", "threshold sigma='three': expected a number (float)"),
    ("[defaults]\nctr_dorp = 0.1\n", "[defaults]: unknown thresholds ['ctr_dorp']"),
    ("[models.search]\nrow_count_low = 2\n",
     "threshold row_count_low=2: must be 0 < row_count_low < 1 < row_count_high"),
    ("[models.'../x']\nctr_drop = 0.1\n", "invalid model name '../x'"),
    ("[alerts]\nctr_drop = 0.1\n", "unknown sections ['alerts']"),
    ("[defaults\n", "not a readable TOML file"),
])
def test_bad_thresholds_are_refused_with_their_name(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text))
    assert message in str(err.value)


def test_a_missing_file_means_defaults_unless_it_was_named(tmp_path, monkeypatch):
    monkeypatch.delenv("OFFLINE_EVAL_THRESHOLDS", raising=False)
    assert load(tmp_path / "none.toml") == ThresholdConfig()
    monkeypatch.setenv("OFFLINE_EVAL_THRESHOLDS", str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError, match="no such file"):
        load()


def test_the_rules_follow_the_thresholds():
    from offline_eval.io.validation import feature_findings, row_count_bounds
    from offline_eval.stats.alerts import ctr_drop_alerts, threshold_alerts
    from offline_eval.stats.drift import verdict

    strict = Thresholds(psi_minor=0.05, psi_severe=0.1, p_value=0.05, sigma=2.0, ctr_drop=0.05,
                        row_count_low=0.5, row_count_high=2.0, null_share_jump=0.1)
    assert verdict(0.08, 0.03) == "none" and verdict(0.08, 0.03, strict) == "minor"
    assert verdict(0.15, 1e-9) == "minor" and verdict(0.15, 1e-9, strict) == "severe"
    key = ("control", "all", "ctr")
    base = {key: (0.080, 0.005, 7.0)}
    assert ctr_drop_alerts({key: 0.074}, base, "p") == []  # -7.5%
    assert [a["rule"] for a in ctr_drop_alerts({key: 0.074}, base, "p", strict)] == ["ctr_drop"]
    assert threshold_alerts({key: 0.069}, base, "b") == []  # 2.2 sd below
    assert [a["rule"] for a in threshold_alerts({key: 0.069}, base, "b", thresholds=strict)] == ["baseline_3sd"]
    assert row_count_bounds(1000, strict) == {"min_rows": 500, "max_rows": 2000}
    before = {"f_x": {"null_share": 0.1, "distinct": 50}}
    now = {"f_x": {"null_share": 0.3, "distinct": 40}}
    assert feature_findings(now, before) == [] and [f.check for f in feature_findings(now, before, strict)] == [
        "null_share"]
