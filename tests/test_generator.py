"""The generator is deterministic for a seed and produces the scenario it documents."""
from __future__ import annotations

import hashlib

import pandas as pd
import pyarrow as pa
import pytest

from offline_eval.fastgen import TABLES, generate_day
from offline_eval.generator import Scenario, _position_weights

SMALL = dict(impressions_per_day=3_000, base_users=600, signups_per_day=60, promo_signups_per_day=150,
             base_items=300, new_items_per_day=30, days=3, promo_day=2, start="2026-06-16")


def frames(sc: Scenario) -> dict[str, pd.DataFrame]:
    """Every table of every day, with its ds."""
    out: dict[str, list] = {t: [] for t in TABLES}
    for k, ds in enumerate(sc.dates):
        for chunk in generate_day(sc, k):
            for t in TABLES:
                out[t].append(chunk[t].append_column("ds", pa.array([ds] * chunk[t].num_rows, pa.string())))
    return {t: pa.concat_tables(parts).to_pandas() for t, parts in out.items()}


def _fingerprint(df: pd.DataFrame) -> str:
    rows = sorted(map(repr, df.itertuples(index=False)))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def test_same_seed_same_rows_other_seed_other_rows():
    a, b, c = frames(Scenario(**SMALL)), frames(Scenario(**SMALL)), frames(Scenario(**SMALL, seed=7))
    for name in ("impressions", "orders", "sessions"):
        assert _fingerprint(a[name]) == _fingerprint(b[name])
    assert _fingerprint(a["impressions"]) != _fingerprint(c["impressions"])


def test_requests_never_show_an_item_twice():
    imp = frames(Scenario(**SMALL))["impressions"]
    assert not imp.duplicated(["request_id", "item_id"]).any()
    assert (imp.position.min(), imp.position.max()) == (1, 10)


def test_new_user_share_jumps_on_the_promotion_day():
    imp = frames(Scenario(**{**SMALL, "impressions_per_day": 20_000}))["impressions"]
    share = imp.assign(new=imp.f_user_tenure_days < 7).groupby("ds").new.mean()
    # Impressions come from served sessions; new users lose a few more sessions to the cold-start gap.
    assert share["2026-06-16"] == pytest.approx(0.2, abs=0.02)
    assert share["2026-06-18"] == pytest.approx(0.5, abs=0.03)


def test_treatment_lifts_ctr_about_six_percent():
    # Item appeal is drawn per item: with a few hundred items its realised mean is far from 1,
    # so this test uses the default catalogue size.
    sc = Scenario(**{**SMALL, "impressions_per_day": 200_000, "days": 1, "promo_day": 5,
                     "base_items": 20_000, "new_items_per_day": 300})
    f = frames(sc)
    clicked = f["clicks"][["request_id", "item_id"]].drop_duplicates().assign(c=1)
    rows = f["impressions"].merge(clicked, on=["request_id", "item_id"], how="left").fillna({"c": 0})
    rates = rows.groupby("variant").c.mean()
    # 100k impressions per arm: the standard error of the ratio is about 1.6%.
    assert rates["treatment"] / rates["control"] - 1 == pytest.approx(0.06, abs=0.035)
    truth = sc.ground_truth()["before_promo"]["ctr_all_both_arms"]
    assert (rates["treatment"] + rates["control"]) / 2 == pytest.approx(truth, rel=0.05)


def test_position_weights_have_mean_one():
    w = _position_weights()
    assert sum(w) / len(w) == pytest.approx(1.0)
    assert w[0] > w[1] > w[-1]


def test_no_experiment_before_its_start():
    sc = Scenario(**{**SMALL, "start": "2026-06-09", "experiment_start": "2026-06-10", "promo_day": 5})
    sessions = frames(sc)["sessions"]
    got = {(r.ds, r.experiment_id, r.variant) for r in sessions[["ds", "experiment_id", "variant"]]
           .drop_duplicates().itertuples(index=False)}
    assert got == {("2026-06-09", None, "control"),
                   ("2026-06-10", sc.experiment_id, "control"), ("2026-06-10", sc.experiment_id, "treatment"),
                   ("2026-06-11", sc.experiment_id, "control"), ("2026-06-11", sc.experiment_id, "treatment")}


def test_sized_worlds_keep_the_demos_proportions():
    from offline_eval.generator import Scenario

    # the demo's own world (the dataclass defaults, docs/demo_scenario.md) is its 40k x 20k size
    assert Scenario.sized(40_000, 20_000) == Scenario()
    small = Scenario.sized(2_000, 1_000)  # the tests' world: 2000 // 16, 2000 // 5, at least 10 items
    assert (small.signups_per_day, small.promo_signups_per_day, small.new_items_per_day) == (125, 400, 10)
