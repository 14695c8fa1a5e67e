"""Storage of profiles: ``Profile`` <-> rows of ``profiles_daily`` (one day) and ``baselines``
(a merged window), and their reading and writing through ``Tables``.

One row per (model, version, kind, name, variant, segment); the payload is compact JSON:

| kind | name | payload |
| --- | --- | --- |
| numeric | feature or score | grid ``buckets`` and ``counts``, ``missing``, ``min``, ``max``, ``decile_edges`` |
| categorical | feature | ``counts`` per value |
| score_bins | score (per user segment) | rows (bin, impressions, clicks, score sum, log-loss sum) |
| metric | metric (per variant, segment) | ``values``: ds -> the day's value |
| moments | lifted metric (per variant) | per-user sums ``n, sum_y, sum_y2, sum_x, sum_x2, sum_xy`` |
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from offline_eval.dates import Window
from offline_eval.io.paths import failed_validation_days
from offline_eval.stats.ab import Moments
from offline_eval.stats.profile import MetricStats, NumericProfile, Profile, merge
from offline_eval.stats.quality import ScoreBins

if TYPE_CHECKING:
    from offline_eval.io.tables import Tables


def _json(payload: Any) -> str:
    return json.dumps(payload, allow_nan=False, separators=(",", ":"))


def _f(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def to_rows(profile: Profile) -> list[dict]:
    """The table rows of one profile (without partition columns)."""
    base = {"model_name": profile.model_name, "model_version": profile.model_version, "variant": None,
            "segment": "all"}
    rows = []
    for name, p in sorted(profile.numeric.items()):
        rows.append({**base, "kind": "numeric", "name": name, "n": float(p.n), "mean": _f(p.mean), "std": _f(p.std),
                     "payload": _json({"buckets": p.buckets.tolist(), "counts": p.counts.tolist(),
                                       "missing": p.missing, "min": _f(p.min), "max": _f(p.max),
                                       "decile_edges": p.decile_edges, "days": list(profile.days)})})
    for name, counts in sorted(profile.categorical.items()):
        rows.append({**base, "kind": "categorical", "name": name, "n": float(sum(counts.values())), "mean": None,
                     "std": None, "payload": _json({"counts": dict(sorted(counts.items()))})})
    for segment, bins in sorted(profile.score_bins.items()):
        rows.append({**base, "kind": "score_bins", "name": "score", "segment": segment, "n": bins.n, "mean": None,
                     "std": None, "payload": _json(bins.rows())})
    for (variant, segment, metric), s in sorted(profile.metrics.items(), key=lambda kv: tuple(map(str, kv[0]))):
        rows.append(
            {
                **base,
                "kind": "metric",
                "name": metric,
                "variant": variant,
                "segment": segment,
                "n": float(s.n),
                "mean": s.mean,
                "std": s.std,
                "payload": _json({"values": dict(sorted(s.values.items()))}),
            }
        )
    for (variant, metric), m in sorted(profile.moments.items()):
        rows.append({**base, "kind": "moments", "name": metric, "variant": variant, "n": float(m.n), "mean": None,
                     "std": None, "payload": _json(dataclasses.asdict(m))})
    return rows


def from_rows(rows: Iterable[dict], days: Iterable[str] = ()) -> dict[tuple[str, str], Profile]:
    """{(model, version): Profile} from the rows of one day or one window."""
    out: dict[tuple[str, str], Profile] = {}
    day_list = tuple(sorted(days))
    for r in rows:
        key = (r["model_name"], r["model_version"])
        prof = out.setdefault(key, Profile(*key, day_list))
        payload = json.loads(r["payload"]) if r["payload"] else {}
        kind, name = r["kind"], r["name"]
        if kind == "numeric":
            if payload.get("days"):
                prof.days = tuple(payload["days"])
            prof.numeric[name] = NumericProfile(np.asarray(payload["buckets"], dtype=np.int64),
                                                np.asarray(payload["counts"], dtype=np.int64), int(payload["missing"]),
                                                r["mean"], r["std"], payload["min"], payload["max"])
        elif kind == "categorical":
            prof.categorical[name] = {k: int(v) for k, v in payload["counts"].items()}
        elif kind == "score_bins":
            prof.score_bins[r["segment"]] = ScoreBins.from_rows([tuple(x) for x in payload])
        elif kind == "metric":
            prof.metrics[(r["variant"], r["segment"], name)] = MetricStats(
                {d: float(v) for d, v in payload["values"].items()})
        elif kind == "moments":
            prof.moments[(r["variant"], name)] = Moments(**payload)
    return out


def write_day(tables: Tables, profiles: Iterable[Profile], ds: str) -> int:
    """Replace the ``profiles_daily`` partition of ``ds`` with these profiles."""
    return tables.write_rows([r for p in profiles for r in to_rows(p)], "profiles_daily", ds=ds)


def read_days(tables: Tables, dates: Iterable[str]) -> dict[str, dict[tuple[str, str], Profile]]:
    """{ds: {(model, version): Profile}} for the days among ``dates`` that have a profile."""
    by_day: dict[str, list[dict]] = defaultdict(list)
    for r in tables.rows("profiles_daily", dates):
        by_day[r["ds"]].append(r)
    return {ds: from_rows(rows, [ds]) for ds, rows in sorted(by_day.items())}


def write_window(tables: Tables, profiles: Iterable[Profile], window_days: int, end: str) -> int:
    """Replace the ``baselines`` partition (window_days, end) with these merged profiles."""
    return tables.write_rows([r for p in profiles for r in to_rows(p)], "baselines", ds=end,
                             window_days=int(window_days))


def read_window(tables: Tables, window_days: int, end: str) -> dict[tuple[str, str], Profile]:
    return from_rows(r.asDict() for r in tables.read_baseline(window_days, end).collect())


def read_reference(tables: Tables, window: Window, left_out: Iterable[str] = ()) -> dict[tuple[str, str], Profile]:
    """{(model, version): reference} merged from the stored daily profiles of the window's days,
    leaving out ``left_out`` and every day whose input validation failed. Reads
    ``profiles_daily`` only: a reference never touches a raw partition."""
    skip = set(left_out) | set(failed_validation_days(tables.settings, window.dates))
    by_version: dict[tuple[str, str], list[Profile]] = defaultdict(list)
    for profiles in read_days(tables, [d for d in window.dates if d not in skip]).values():
        for key, p in profiles.items():
            by_version[key].append(p)
    return {key: merge(parts) for key, parts in sorted(by_version.items())}
