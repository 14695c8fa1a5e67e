"""generate: write the synthetic scenario into the Hive tables, a day at a time (idempotent:
each day's partitions are replaced as a whole).

The rows come from ``offline_eval.fastgen`` (numpy, the same rows as the Spark generator of
``tests/reference``, about 4 s for the demo's 21 days) and are written as Parquet files straight
into the tables' partition directories, then registered with the metastore: the engine does
not have to move 6 million rows it would only write back to disk.
"""
from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from dataclasses import asdict

from offline_eval.config import Settings
from offline_eval.contract import INPUT_TABLES
from offline_eval.fastgen import TABLES, generate_day
from offline_eval.generator import Scenario
from offline_eval.io.spark import get_spark
from offline_eval.io.tables import Tables

log = logging.getLogger(__name__)

CHUNK_SESSIONS = 100_000  # about 1M impressions per chunk: bounded memory at any size


def run(scenario: Scenario, settings: Settings | None = None, force: bool = False) -> dict:
    """Generate and write the scenario; a no-op when the same scenario was already written."""
    settings = settings or Settings.from_env()
    stamp = settings.home / "generated" / f"{settings.database}.scenario.json"
    wanted = json.dumps(asdict(scenario), sort_keys=True)
    spark = get_spark(settings, tag="offline-eval-generate")
    tables = Tables(spark, settings)
    tables.ensure(INPUT_TABLES.values())
    if (not force and stamp.exists() and stamp.read_text() == wanted
            and set(scenario.dates) <= set(tables.partitions("impressions"))):
        log.info("scenario already generated (%s); use --force to rewrite it", stamp)
        return {"skipped": True, "dates": scenario.dates}
    stamp.unlink(missing_ok=True)  # a half-written scenario is never taken for a complete one
    counts = dict.fromkeys(TABLES, 0)
    t0 = time.monotonic()
    for k, ds in enumerate(scenario.dates):
        with ExitStack() as stack:  # the day's seven partitions are replaced together, or not at all
            files = {name: stack.enter_context(tables.partition_files(name, ds)) for name in TABLES}
            for chunk in generate_day(scenario, k, chunk_sessions=CHUNK_SESSIONS):
                for name in TABLES:
                    files[name].write(chunk[name])
        for name in TABLES:
            counts[name] += files[name].rows
        log.info("[%d/%d] %s: %d impressions (%.1fs)", k + 1, scenario.days, ds, files["impressions"].rows,
                 time.monotonic() - t0)
    for name in TABLES:
        tables.register_partitions(name, scenario.dates)
    truth = scenario.ground_truth()
    path = settings.home / "generated" / "ground_truth.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(truth, indent=2, default=str))
    stamp.write_text(wanted)
    log.info("generated %d days in %.1fs: %s", scenario.days, time.monotonic() - t0,
             ", ".join(f"{n} {c}" for n, c in counts.items()))
    return {
        "rows": counts,
        "ground_truth": str(path),
        "dates": scenario.dates,
        "seconds": round(time.monotonic() - t0, 1),
    }
