"""Write the synthetic scenario into the Hive tables (idempotent: overwrites its own ds partitions)."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict

from offline_eval.config import Settings
from offline_eval.generator import Scenario, generate
from offline_eval.io.spark import get_spark
from offline_eval.io.tables import Tables
from offline_eval.contract import INPUT_TABLES

log = logging.getLogger(__name__)

# Facts first, then the tables derived from them, so each is computed once from the cache.
WRITE_ORDER = ("users", "items", "sessions", "impressions", "clicks", "add_to_cart", "orders")


def run(scenario: Scenario, settings: Settings | None = None, force: bool = False) -> dict:
    """Generate and write the scenario; a no-op when the same scenario was already written."""
    settings = settings or Settings.from_env()
    stamp = settings.home / "generated" / "scenario.json"
    wanted = json.dumps(asdict(scenario), sort_keys=True)
    if not force and stamp.exists() and stamp.read_text() == wanted and (settings.home / "metastore_db").exists():
        log.info("scenario already generated (%s); use --force to rewrite it", stamp)
        return {"skipped": True, "dates": scenario.dates}
    spark = get_spark("offline-eval-generate", settings)
    tables = Tables(spark, settings)
    tables.ensure(INPUT_TABLES.values())
    frames = generate(spark, scenario)
    counts: dict[str, int] = {}
    for i, name in enumerate(WRITE_ORDER, 1):
        t0 = time.monotonic()
        tables.overwrite(frames[name], name, expected_ds=scenario.dates)
        counts[name] = tables.read_range(name, scenario.dates[0], scenario.dates[-1]).count()
        log.info("[%d/%d] %s: %d rows over %d days in %.1fs", i, len(WRITE_ORDER), name, counts[name],
                 scenario.days, time.monotonic() - t0)
    truth = scenario.ground_truth()
    path = settings.home / "generated" / "ground_truth.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(truth, indent=2, default=str))
    stamp.write_text(wanted)
    return {"rows": counts, "ground_truth": str(path), "dates": scenario.dates}
