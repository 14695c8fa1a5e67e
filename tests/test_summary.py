"""The printed summary and its root-cause lines, on published metrics written by hand."""
from __future__ import annotations

import json

from offline_eval.summary import daily_summary


def _rows(ret: tuple[float, float], new: tuple[float, float]) -> list[dict]:
    rows = []
    for seg, (clicks, imps) in (("returning_users", ret), ("new_users", new)):
        rows.append({"segment": seg, "metric": "ctr", "value": clicks / imps, "numerator": clicks, "denominator": imps})
    c, i = ret[0] + new[0], ret[1] + new[1]
    rows.append({"segment": "all", "metric": "ctr", "value": c / i, "numerator": c, "denominator": i})
    return rows


def test_a_ctr_drop_is_flagged_and_split_into_mix_and_rate(settings, tmp_path):
    import dataclasses

    s = dataclasses.replace(settings, reports_dir=tmp_path)
    days = {"2026-06-17": _rows((80, 800), (4, 200)),    # CTR 8.4%: new users 20% of impressions
            "2026-06-18": _rows((50, 500), (10, 500))}   # CTR 6.0%: same rates, new users 50%
    for ds, rows in days.items():
        d = tmp_path / "m" / "v1" / ds
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(rows))
    out = daily_summary(s, "m", "2026-06-17", "2026-06-18")
    assert "-28.6%  <<" in out  # 6.0 / 8.4 - 1
    assert "Why v1 moved on 2026-06-18 (vs 2026-06-17)" in out
    assert "8.40% -> 6.00% (-2.40 pts): mix -2.40 pts, rate +0.00 pts; new users 20% -> 50% of impressions" in out
