"""publish fetches the report samples one version ahead: each version gets its own day's and
the day before's sample, in order, and no more than two versions' samples are ever asked for
before the first is used (a sample can be millions of rows)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from offline_eval.io import results
from offline_eval.jobs import publish


def test_samples_come_per_version_one_version_ahead(monkeypatch):
    asked: list[tuple[str, str, str]] = []
    monkeypatch.setattr(results, "sample", lambda tables, ds, name, version: asked.append((ds, name, version))
                        or f"{name} {version} {ds}")
    models = [("m", "v1"), ("m", "v2"), ("m", "v3")]
    with ThreadPoolExecutor(2) as pool:
        each = publish._samples(pool, None, ("2026-06-18", "2026-06-17"), models)
        got = []
        for key, current, reference in each:
            got.append((key, current, reference))
            if key == ("m", "v1"):
                seen = {a[2] for a in list(asked)}
                assert seen <= {"v1", "v2"}  # nothing of v3 before v1 is published
    assert got == [(("m", v), f"m {v} 2026-06-18", f"m {v} 2026-06-17") for v in ("v1", "v2", "v3")]
    assert sorted(asked) == sorted((ds, "m", v) for v in ("v1", "v2", "v3") for ds in ("2026-06-18", "2026-06-17"))


def test_no_versions_no_samples():
    with ThreadPoolExecutor(1) as pool:
        assert list(publish._samples(pool, None, ("2026-06-18", "2026-06-17"), [])) == []
