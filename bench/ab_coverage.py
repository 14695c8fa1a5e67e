"""Coverage of the pipeline's A/B readout on the demo scenario, over many seeds.

For each seed the generator builds the whole scenario in Spark (no files), and the readout
runs through the same code as the DAG (``jobs.ab_readout.readout_experiment``) on an
in-memory view of the tables. The generator's true relative lifts are known exactly
(``Scenario.ground_truth``), so we count how often each 95% interval covers the truth and
average the z-scores (estimate - truth) / SE: a bias would show as a mean z away from 0.

    python bench/ab_coverage.py --seeds 40 --impressions-per-day 20000 --out docs/ab_coverage.json
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

from pyspark.sql import functions as F

from offline_eval.generator import Scenario, generate
from offline_eval.io.spark import get_spark
from offline_eval.jobs.ab_readout import readout_experiment

# (readout metric, ground-truth key)
TRUTHS = (("ctr", "ctr_relative_lift"), ("cvr", "cvr_relative_lift"),
          ("orders_per_user", "orders_per_user_relative_lift"), ("gmv_per_user", "gmv_per_user_relative_lift"))


class GeneratedTables:
    """The two read methods of ``io.tables.Tables`` the readout uses, over generated frames."""

    def __init__(self, frames: dict) -> None:
        self.frames = frames

    def read_range(self, table: str, start: str, end: str):
        return self.frames[table].where(F.col("ds").between(start, end))

    def read(self, table: str, ds: str):
        return self.frames[table].where(F.col("ds") == ds)


def one_seed(spark, seed: int, impressions_per_day: int) -> dict:
    sc = Scenario(seed=seed, impressions_per_day=impressions_per_day)
    frames = {k: v.cache() for k, v in generate(spark, sc).items()
              if k in ("sessions", "impressions", "clicks", "add_to_cart", "orders")}
    end = sc.dates[-1]
    readout = readout_experiment(GeneratedTables(frames), sc.experiment_id, end)
    truth = sc.ground_truth()["treatment_vs_control"]
    out = {"seed": seed}
    rows = {r["metric"]: r for r in readout["metrics"]}
    for metric, key in TRUTHS:
        r = rows[metric]
        lift, lo, hi = r["rel_lift"], r["rel_ci_low"], r["rel_ci_high"]
        se = (hi - lo) / (2 * 1.959963984540054)
        out[metric] = {"rel_lift": lift, "ci": [lo, hi], "truth": truth[key],
                       "covered": lo <= truth[key] <= hi, "z": (lift - truth[key]) / se}
    spark.catalog.clearCache()  # the generator's and the readout's cached frames of this seed
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=40)
    p.add_argument("--first-seed", type=int, default=1000)
    p.add_argument("--impressions-per-day", type=int, default=20_000)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    spark = get_spark(tag="ab-coverage")
    results = []
    t0 = time.monotonic()
    for i, seed in enumerate(range(a.first_seed, a.first_seed + a.seeds), 1):
        results.append(one_seed(spark, seed, a.impressions_per_day))
        cov = {m: sum(r[m]["covered"] for r in results) for m, _ in TRUTHS}
        print(
            f"[{i}/{a.seeds}] seed {seed} ({time.monotonic() - t0:.0f}s): covered so far {cov}",
            file=sys.stderr,
            flush=True,
        )
    summary = {}
    for metric, _ in TRUTHS:
        zs = [r[metric]["z"] for r in results]
        n = len(zs)
        summary[metric] = {
            "truth": results[0][metric]["truth"], "seeds": n,
            "coverage": sum(r[metric]["covered"] for r in results) / n,
            "mean_rel_lift": statistics.fmean(r[metric]["rel_lift"] for r in results),
            "mean_z": statistics.fmean(zs), "se_mean_z": (statistics.stdev(zs) / math.sqrt(n)) if n > 1 else None,
            "sd_z": statistics.stdev(zs) if n > 1 else None,
        }
    report = {"impressions_per_day": a.impressions_per_day, "first_seed": a.first_seed, "summary": summary,
              "runs": results, "seconds": round(time.monotonic() - t0, 1)}
    print(json.dumps(summary, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
