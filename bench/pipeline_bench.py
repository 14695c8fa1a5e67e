"""`make bench-pipeline`: the whole daily evaluation of one day, ours against a DuckDB SQL
reference on the same Parquet files, at 1M and 10M impressions a day.

* ours: on a running Spark engine (its start-up is timed apart, once), in a fresh client
  process: the day's seven input partitions read once into the engine's cache (what the
  validate task does before its GX suites), then compute (every metrics_daily metric per model
  version, variant and segment, the day's profile and sample, written to their tables) and
  drift (every feature against the previous day's stored profile: PSI, KS, JS, Wasserstein,
  chi-square, concept drift, alerts, written to their tables).
* duckdb: the core numbers from the same files, in SQL: funnel counts (impressions, clicks,
  add-to-carts, orders, GMV, exposed users), CTR, CVR and GMV per user per version, variant and segment, with
  the same attribution rules (a click on a shown item; an add-to-cart or order to the user's
  last click on the item at or before it, ASOF JOIN); and the PSI of every feature against the
  previous day on the same bins (the fine grid of offline_eval.stats.grid, deciles of the
  previous day), with both days scanned.

Each run is a fresh process (peak RSS of the Python process alone: the engine is another
process); ours and DuckDB alternate, ``--repeats`` times each, and the medians are reported.
Writes bench/results/pipeline.json and its section of docs/benchmarks.md.

``--stages`` profiles the compute step instead (no DuckDB, no drift, nothing written to
docs/): each step of ``metrics.day.evaluate`` and each write of ``io.results.write_day`` is
timed in the client, and its Spark jobs (tagged per step) are counted and timed from the
engine's UI REST API. ``--compare-with DIR`` (a copy of the ``offline_eval`` package, e.g.
an earlier revision's) runs that copy and the working tree alternately on the same data, and
checks that both write the same tables. Writes bench/results/pipeline_stages.json.
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from private_engine import private_engine  # noqa: E402
from sections import replace_section  # noqa: E402

REF, DAY = "2026-06-17", "2026-06-18"  # the previous day and the evaluated one (the promotion starts)
CORE = ("impressions", "clicks", "add_to_carts", "orders", "gmv", "exposed_users", "ctr", "cvr", "gmv_per_user")


def scenario(rows: int):
    from offline_eval.generator import Scenario

    return Scenario(start=REF, days=2, impressions_per_day=rows, promo_day=1, experiment_start="2026-06-01")


def settings(db: str):
    import dataclasses

    from offline_eval.config import Settings

    return dataclasses.replace(Settings.from_env(), database=db)


# ---------------------------------------------------------------- steps (run in subprocesses)

def step_prepare(db: str, rows: int) -> dict:
    """The two days' input tables and the previous day's stored profile (the baseline)."""
    from offline_eval.config import DayConfig
    from offline_eval.contract import OUTPUT_TABLES
    from offline_eval.io.spark import get_spark
    from offline_eval.io.tables import Tables
    from offline_eval.jobs import baselines, generate

    s = settings(db)
    t0 = time.monotonic()
    generate.run(scenario(rows), s)
    tables = Tables(get_spark(s), s)
    tables.ensure(OUTPUT_TABLES.values())
    if REF not in tables.partitions("profiles_daily"):
        baselines.profile_from_raw(tables, DayConfig(ds=REF))
    return {"prepare_s": time.monotonic() - t0, "location": str(tables.location("impressions").parent)}


def step_ours(db: str) -> dict:
    from offline_eval.config import DayConfig
    from offline_eval.contract import INPUT_TABLES
    from offline_eval.io.snapshot import DaySnapshot
    from offline_eval.io.spark import get_spark
    from offline_eval.io.tables import Tables
    from offline_eval.jobs import compute, drift

    s = settings(db)
    spark = get_spark(s, tag="bench-pipeline")
    tables = Tables(spark, s)
    day = DayConfig(ds=DAY)
    t0 = time.monotonic()
    snapshot = DaySnapshot(tables, DAY)
    for name in INPUT_TABLES:  # one read per partition, into the engine's cache
        snapshot.create(name).count()
    t1 = time.monotonic()
    compute.run(day, s, spark=spark)
    t2 = time.monotonic()
    drift.run(day, s, spark=spark)
    t3 = time.monotonic()
    metrics = {f"{r['model_version']}|{r['variant']}|{r['segment']}|{r['metric']}": r["value"]
               for r in tables.rows("metrics_daily", [DAY]) if r["metric"] in CORE}
    psi = {f"{r['model_version']}|{r['column']}": r["psi"] for r in tables.rows("drift_daily", [DAY])
           if r["reference"] == "previous_day"}
    spark.stop()
    return {"compute_s": t3 - t0, "read_s": t1 - t0, "metrics_s": t2 - t1, "drift_s": t3 - t2,
            "driver_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "metrics": metrics, "psi": psi}


STAGES_UI_PORT = 4077  # the stage profile reads the jobs of each step from the engine's UI
STAGE_TAG = "bench-stage-"


def _ui_jobs() -> list[dict]:
    base = f"http://127.0.0.1:{STAGES_UI_PORT}/api/v1/applications"
    with urllib.request.urlopen(base, timeout=30) as r:
        app = json.load(r)[0]["id"]
    with urllib.request.urlopen(f"{base}/{app}/jobs", timeout=60) as r:
        return json.load(r)


def _job_seconds(job: dict) -> float:
    from datetime import datetime

    def at(s: str) -> datetime:
        return datetime.strptime(s.replace("GMT", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")

    return (at(job["completionTime"]) - at(job["submissionTime"])).total_seconds() if "completionTime" in job else 0.0


def _canonical(rows: list[dict]) -> list[list]:
    """Rows as sorted lists of values, floats rounded to 12 significant digits (also inside the
    JSON payloads of profiles_daily): the same aggregates summed in another order may differ in
    the last bits."""
    def value(v: object) -> object:
        if isinstance(v, float):
            return float(f"{v:.12g}")
        if isinstance(v, (list, tuple)):
            return [value(x) for x in v]
        if isinstance(v, dict):
            return {k: value(x) for k, x in v.items()}
        if isinstance(v, str) and v[:1] in "{[":
            try:
                return value(json.loads(v))
            except ValueError:
                return v
        return v if isinstance(v, (int, str, type(None))) else str(v)

    return sorted(([value(r[k]) for k in sorted(r)] for r in rows), key=lambda r: json.dumps(r, sort_keys=True))


def step_stages(db: str, dump: str = "") -> dict:
    """The compute step of one day, its steps timed one by one (see the module's docstring)."""
    from offline_eval import thresholds
    from offline_eval.config import DayConfig
    from offline_eval.contract import INPUT_TABLES, OUTPUT_TABLES
    from offline_eval.io.results import write_day
    from offline_eval.io.snapshot import DaySnapshot
    from offline_eval.io.spark import get_spark
    from offline_eval.io.tables import Tables
    from offline_eval.metrics.day import evaluate

    s = settings(db)
    spark = get_spark(s, tag="bench-stages")
    tables = Tables(spark, s)
    tables.ensure(OUTPUT_TABLES.values())
    day = DayConfig(ds=DAY)
    seconds: dict[str, float] = {}
    run = f"{os.getpid()}-"

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        tag = f"{STAGE_TAG}{run}{name}"
        spark.addTag(tag)
        t0 = time.monotonic()
        try:
            yield
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.monotonic() - t0
            spark.removeTag(tag)

    t0 = time.monotonic()
    snapshot = DaySnapshot(tables, DAY)
    with stage("read"):
        for name in INPUT_TABLES:
            snapshot.create(name).count()
    t1 = time.monotonic()
    prior = tables.read_range("orders", day.ds_offset(-day.repurchase_lookback_days), day.ds_offset(-1))
    # One pass at a time, so that each stage's seconds are its own (a copy of an older release,
    # --compare-with, may not have the parameter: it ran them one at a time anyway).
    serial = {"workers": 1} if "workers" in inspect.signature(evaluate).parameters else {}
    result = evaluate(snapshot.read, prior, day, thresholds.load().defaults, stage=stage, **serial)
    t2 = time.monotonic()
    write_day(tables, result, stage=stage)
    t3 = time.monotonic()
    snapshot.drop(INPUT_TABLES)
    jobs: dict[str, dict] = {}
    for job in _ui_jobs():
        names = [t.split(STAGE_TAG + run, 1)[1] for t in job.get("jobTags", []) if STAGE_TAG + run in t]
        for name in names:
            # Counts and seconds per stage only: a job's name under Spark Connect is the first line
            # of the client's plan, the same for every job, so a list of them said nothing.
            j = jobs.setdefault(name, {"jobs": 0, "job_s": 0.0, "tasks": 0})
            j["jobs"] += 1
            j["job_s"] += _job_seconds(job)
            j["tasks"] += job.get("numTasks", 0)
    if dump:
        tables_out = {t: _canonical(tables.rows(t, [DAY]))
                      for t in ("metrics_daily", "security_daily", "profiles_daily", "samples_daily")}
        Path(dump).write_text(json.dumps(tables_out))
    spark.stop()
    return {"read_s": t1 - t0, "evaluate_s": t2 - t1, "write_s": t3 - t2, "compute_s": t3 - t1,
            "stages": {k: {"s": v, **jobs.get(k, {"jobs": 0, "job_s": 0.0, "tasks": 0})} for k, v in seconds.items()}}


def _grid_bucket_sql(x: str) -> str:
    """The bucket of offline_eval.stats.grid (b with B[b-1] < x <= B[b]) in SQL, from the logarithm."""
    from offline_eval.stats import grid

    n, p0, j0 = len(grid._POSITIVE), float(grid._POSITIVE[0]), int(grid._J_MIN)
    lg = math.log(grid.GAMMA)
    return (f"CASE WHEN {x} > {p0!r} THEN {n} + least(ceil(ln({x}) / {lg!r})::BIGINT - ({j0}), {n}) "
            f"WHEN {x} >= -{p0!r} THEN {n} "
            f"ELSE {n - 1} - greatest(least(floor(ln(-{x}) / {lg!r})::BIGINT - ({j0}), {n - 1}), 0) END")


def step_duckdb(location: str) -> dict:
    import duckdb
    import numpy as np

    from offline_eval.contract import categorical_features, numeric_features
    from offline_eval.stats.drift import psi

    def files(table: str, ds: str) -> str:
        return f"read_parquet('{location}/{table}/ds={ds}/*.parquet')"

    con = duckdb.connect()
    con.execute(f"SET threads TO {os.cpu_count()}")
    t0 = time.monotonic()
    con.execute(f"CREATE TEMP TABLE imp AS SELECT * FROM {files('impressions', DAY)}")
    con.execute(f"""
        CREATE TEMP TABLE clicked AS
        SELECT DISTINCT c.request_id, c.item_id, c.click_ts, i.user_id
        FROM {files('clicks', DAY)} c JOIN imp i USING (request_id, item_id) WHERE c.click_ts IS NOT NULL""")
    # The user's last click on the item at or before an event; equal click times: the largest request id.
    con.execute("""CREATE TEMP TABLE last_click AS SELECT user_id, item_id, click_ts, max(request_id) AS request_id
                   FROM clicked GROUP BY ALL""")
    metrics = con.execute(f"""
        WITH carts AS (
            SELECT c.request_id, c.item_id, count(*) AS carts
            FROM {files('add_to_cart', DAY)} e ASOF JOIN last_click c
              ON e.user_id = c.user_id AND e.item_id = c.item_id AND c.click_ts <= e.event_ts
            GROUP BY ALL),
        bought AS (
            SELECT c.request_id, c.item_id, count(*) AS orders, sum(e.quantity * e.price) AS gmv
            FROM {files('orders', DAY)} e ASOF JOIN last_click c
              ON e.user_id = c.user_id AND e.item_id = c.item_id AND c.click_ts <= e.order_ts
            GROUP BY ALL),
        rows AS (
            SELECT i.model_version, i.variant, i.user_id,
                   (k.request_id IS NOT NULL)::INT AS clicked, coalesce(c.carts, 0) AS carts,
                   coalesce(b.orders, 0) AS orders,
                   coalesce(b.gmv, 0.0) AS gmv,
                   CASE WHEN u.signup_date IS NULL THEN NULL
                        WHEN date_diff('day', u.signup_date, DATE '{DAY}') BETWEEN 0 AND 6 THEN 'new_users'
                        ELSE 'returning_users' END AS user_segment,
                   CASE WHEN t.first_listed_date IS NULL THEN NULL
                        WHEN date_diff('day', t.first_listed_date, DATE '{DAY}') BETWEEN 0 AND 6 THEN 'new_items'
                        ELSE 'old_items' END AS item_segment
            FROM imp i
            LEFT JOIN (SELECT DISTINCT request_id, item_id FROM clicked) k USING (request_id, item_id)
            LEFT JOIN carts c USING (request_id, item_id)
            LEFT JOIN bought b USING (request_id, item_id)
            LEFT JOIN {files('users', DAY)} u USING (user_id)
            LEFT JOIN {files('items', DAY)} t USING (item_id)),
        segmented AS (
            SELECT *, 'all' AS segment FROM rows
            UNION ALL SELECT *, user_segment FROM rows WHERE user_segment IS NOT NULL
            UNION ALL SELECT *, item_segment FROM rows WHERE item_segment IS NOT NULL)
        SELECT model_version, variant, segment, count(*) AS impressions, sum(clicked) AS clicks,
               sum(carts) AS carts, sum(orders) AS orders, sum(gmv) AS gmv, count(DISTINCT user_id) AS exposed_users
        FROM segmented GROUP BY ALL""").fetchall()
    out: dict[str, float | None] = {}
    for version, variant, segment, imps, clicks, carts, orders, gmv, users in metrics:
        values = {"impressions": imps, "clicks": clicks, "add_to_carts": carts, "orders": orders, "gmv": gmv,
                  "exposed_users": users,
                  "ctr": clicks / imps if imps else None, "cvr": orders / clicks if clicks else None,
                  "gmv_per_user": gmv / users if users else None}
        for k, v in values.items():
            out[f"{version}|{variant}|{segment}|{k}"] = None if v is None else float(v)

    numeric = [*numeric_features(), "score"]
    casts = ", ".join(f"CAST({c} AS DOUBLE) AS {c}" for c in numeric)
    counts = {}
    for ds in (REF, DAY):
        counts[ds] = con.execute(f"""
            SELECT model_version, col, {_grid_bucket_sql('x')} AS bucket, count(*) AS n
            FROM (UNPIVOT (SELECT model_version, {casts} FROM {files('impressions', ds)})
                  ON {', '.join(numeric)} INTO NAME col VALUE x)
            WHERE NOT isnan(x) GROUP BY ALL""").fetchall()
    psis: dict[str, float] = {}
    by = {ds: {} for ds in counts}
    for ds, rows in counts.items():
        for version, col, bucket, n in rows:
            by[ds].setdefault((version, col), {})[int(bucket)] = int(n)
    for key, ref in by[REF].items():
        cur = by[DAY].get(key)
        if not cur:
            continue
        buckets = np.array(sorted(ref))
        cum = np.cumsum([ref[b] for b in buckets]) / sum(ref.values())
        deciles = np.unique(buckets[np.minimum(np.searchsorted(cum, np.arange(1, 10) / 10 - 1e-12), len(buckets) - 1)])
        def coarse(c: dict, deciles: np.ndarray = deciles) -> np.ndarray:
            b = np.array(list(c))
            return np.bincount(np.searchsorted(deciles, b, side="left"), weights=np.array(list(c.values())),
                               minlength=len(deciles) + 1)
        psis[f"{key[0]}|{key[1]}"] = psi(coarse(ref), coarse(cur))
    for col in categorical_features():
        got = {ds: {} for ds in (REF, DAY)}
        for ds in got:
            for version, value, n in con.execute(
                    f"SELECT model_version, coalesce({col}, '__null__'), count(*) FROM {files('impressions', ds)} "
                    "GROUP BY ALL").fetchall():
                got[ds].setdefault(version, {})[value] = n
        for version, ref in got[REF].items():
            cur = got[DAY].get(version)
            if cur:
                keys = sorted(set(ref) | set(cur))
                psis[f"{version}|{col}"] = psi(np.array([ref.get(k, 0) for k in keys]),
                                               np.array([cur.get(k, 0) for k in keys]))
    return {"compute_s": time.monotonic() - t0, "metrics": out, "psi": psis,
            "driver_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


STEPS = {"prepare": step_prepare, "ours": step_ours, "duckdb": step_duckdb, "stages": step_stages}


# ---------------------------------------------------------------- driver

def run_step(name: str, *args: object, timeout: int = 3600, package: Path | None = None) -> dict:
    """Run one step in a fresh process; ``package``: a directory holding another copy of the
    ``offline_eval`` package, imported instead of the working tree's."""
    env = dict(os.environ)
    if package is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(package), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, __file__, "--step", name, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def max_abs_diff(a: dict, b: dict) -> tuple[float, int]:
    """Largest |a - b| over the keys both have (None equal to None), and how many were compared."""
    shared = sorted(set(a) & set(b))
    gaps = []
    for k in shared:
        x, y = a[k], b[k]
        if x is None or y is None:
            gaps.append(0.0 if x is None and y is None else math.inf)
        else:
            gaps.append(abs(x - y))
    return (max(gaps) if gaps else math.nan), len(shared)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--step")
    p.add_argument("--rows", default="1000000,10000000")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--engine-memory", default="8g", help="driver memory of the benchmark's own engine")
    p.add_argument("--stages", action="store_true", help="profile the compute step stage by stage (no DuckDB)")
    p.add_argument("--compare-with", type=Path, action="append", help="with --stages: a directory holding another "
                   "copy of the offline_eval package, run alternately with the working tree's (repeatable)")
    p.add_argument("--no-tree", action="store_true", help="with --compare-with: run only the given copies")
    p.add_argument("args", nargs="*")
    a = p.parse_args()
    if a.step:
        args = [int(x) if x.isdigit() else x for x in a.args]
        print(json.dumps(STEPS[a.step](*args), default=float))
        return 0
    if a.stages:
        return stages_main(a)

    with private_engine(ROOT / ".local" / "bench" / "pipeline", 15077, a.engine_memory) as engine_start:
        print(f"engine up in {engine_start:.1f}s", flush=True)
        results: dict = {"engine_start_s": round(engine_start, 2), "rows": {}, "repeats": a.repeats,
                         "machine": f"{os.cpu_count()} cores", "engine_memory": a.engine_memory}
        for rows in [int(x) for x in a.rows.split(",")]:
            db = f"bench_pipeline_{rows}"
            prep = run_step("prepare", db, rows)
            print(f"== {rows:,} impressions a day: prepared in {prep['prepare_s']:.0f}s", flush=True)
            ours, duck = [], []
            for i in range(a.repeats):
                ours.append(run_step("ours", db))
                duck.append(run_step("duckdb", prep["location"]))
                print(
                    f"   run {i + 1}: ours {ours[-1]['compute_s']:.1f}s (read {ours[-1]['read_s']:.1f}, compute "
                    f"{ours[-1]['metrics_s']:.1f}, drift {ours[-1]['drift_s']:.1f}), duckdb {duck[-1]['compute_s']:.1f}s",
                    flush=True,
                )
            o, d = statistics.median(r["compute_s"] for r in ours), statistics.median(r["compute_s"] for r in duck)
            m_gap, m_n = max_abs_diff(ours[-1]["metrics"], duck[-1]["metrics"])
            p_gap, p_n = max_abs_diff(ours[-1]["psi"], duck[-1]["psi"])
            results["rows"][str(rows)] = {
                "ours_s": round(o, 2), "duckdb_s": round(d, 2), "ratio": round(o / d, 2),
                "driver_rss_mb": round(max(r["driver_rss_mb"] for r in ours), 1),
                "max_abs_diff": max(m_gap, p_gap),
                "compared": {"metrics": m_n, "psi": p_n, "metrics_max_abs_diff": m_gap, "psi_max_abs_diff": p_gap},
                "ours_runs_s": [round(r["compute_s"], 2) for r in ours],
                "duckdb_runs_s": [round(r["compute_s"], 2) for r in duck],
                "ours_parts_s": {k: round(statistics.median(r[k] for r in ours), 2)
                                 for k in ("read_s", "metrics_s", "drift_s")},
                "duckdb_driver_rss_mb": round(max(r["driver_rss_mb"] for r in duck), 1),
            }
            print(f"   {rows:,}: ours {o:.1f}s, duckdb {d:.1f}s, ratio {o / d:.2f}x, metrics differ by at most "
                  f"{m_gap:.1e} ({m_n} numbers), PSI by at most {p_gap:.1e} ({p_n})", flush=True)
    out = ROOT / "bench" / "results" / "pipeline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results)
    return 0


def stages_main(a: argparse.Namespace) -> int:
    """The compute step per stage, the working tree (and ``--compare-with``'s copy) alternating."""
    variants: dict[str, Path | None] = {p.name: p.resolve() for p in a.compare_with or []}
    if not a.no_tree:
        variants["tree"] = None
    dumps = ROOT / ".local" / "bench" / "stages"
    dumps.mkdir(parents=True, exist_ok=True)
    results: dict = {"rows": {}, "repeats": a.repeats, "machine": f"{os.cpu_count()} cores",
                     "variants": {k: str(v) if v else "working tree" for k, v in variants.items()}}
    # Its own state dir and port: the tables of the benchmark proper are left as they are.
    with private_engine(ROOT / ".local" / "bench" / "stages", 15078, a.engine_memory, ui_port=STAGES_UI_PORT) as engine_start:
        print(f"engine up in {engine_start:.1f}s", flush=True)
        for rows in [int(x) for x in a.rows.split(",")]:
            db = f"bench_pipeline_{rows}"
            prep = run_step("prepare", db, rows)
            print(f"== {rows:,} impressions a day: prepared in {prep['prepare_s']:.0f}s", flush=True)
            runs: dict[str, list[dict]] = {v: [] for v in variants}
            for i in range(a.repeats):
                for v, package in variants.items():
                    r = run_step("stages", db, dumps / f"{rows}_{v}.json", package=package)
                    runs[v].append(r)
                    print(f"   run {i + 1} {v}: compute {r['compute_s']:.1f}s (evaluate {r['evaluate_s']:.1f}, "
                          f"write {r['write_s']:.1f}); " + ", ".join(
                              f"{k} {x['s']:.1f}s/{x['jobs']}j" for k, x in r["stages"].items()), flush=True)
            summary = {}
            for v, rs in runs.items():
                names = list(dict.fromkeys(k for r in rs for k in r["stages"]))
                summary[v] = {
                    "compute_s": round(statistics.median(r["compute_s"] for r in rs), 2),
                    "compute_runs_s": [round(r["compute_s"], 2) for r in rs],
                    "runs": rs,
                    "stages": {k: {"s": round(statistics.median(r["stages"].get(k, {"s": 0.0})["s"] for r in rs), 2),
                                   "jobs": max(r["stages"].get(k, {"jobs": 0})["jobs"] for r in rs),
                                   "job_s": round(statistics.median(r["stages"].get(k, {"job_s": 0.0})["job_s"]
                                                                    for r in rs), 2)}
                               for k in names},
                }
                total = sum(x["s"] for k, x in summary[v]["stages"].items() if k != "read")
                print(f"   {rows:,} {v}: compute median {summary[v]['compute_s']:.1f}s "
                      f"(runs {summary[v]['compute_runs_s']})", flush=True)
                for k, x in summary[v]["stages"].items():
                    share = f"{100 * x['s'] / total:4.0f}%" if k != "read" and total else "     "
                    print(f"      {k:<22} {x['s']:6.2f}s {share}  {x['jobs']:3d} jobs  {x['job_s']:6.2f}s in jobs")
            if len(variants) > 1:
                written = {v: json.loads((dumps / f"{rows}_{v}.json").read_text()) for v in variants}
                first = next(iter(written.values()))
                same = all(w == first for w in written.values())
                summary["same_tables"] = same
                print(f"   {rows:,}: all write the same tables (floats to 12 digits): {same}", flush=True)
            results["rows"][str(rows)] = summary
    out = ROOT / "bench" / "results" / "pipeline_stages.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def write_markdown(results: dict) -> None:
    rows = results["rows"]
    lines = [
        "## The daily evaluation against DuckDB (`make bench-pipeline`)",
        "",
        f"bench/pipeline_bench.py, {results['machine']}, the engine in local mode with "
        f"{results['engine_memory']} of driver memory; engine start-up {results['engine_start_s']:.1f} s "
        f"(once, not in the times below). Times are medians of {results['repeats']} fresh-process runs, "
        "ours and DuckDB alternating (bench/results/pipeline.json has every run).",
        "",
        "| impressions a day | ours | DuckDB | ours / DuckDB | ours: read / compute / drift | Python driver peak RSS | largest difference (metrics; PSI) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, r in rows.items():
        parts = r["ours_parts_s"]
        c = r["compared"]
        lines.append(f"| {int(n):,} | {r['ours_s']:.1f} s | {r['duckdb_s']:.1f} s | {r['ratio']:.2f}x | "
                     f"{parts['read_s']:.1f} / {parts['metrics_s']:.1f} / {parts['drift_s']:.1f} s | "
                     f"{r['driver_rss_mb']:.0f} MB | {c['metrics_max_abs_diff']:.1e} ({c['metrics']} numbers); "
                     f"{c['psi_max_abs_diff']:.1e} ({c['psi']}) |")
    sizes = sorted(rows, key=int)
    if len(sizes) > 1:
        a, b = rows[sizes[0]], rows[sizes[-1]]
        lines += [
            "",
            f"From {int(sizes[0]):,} to {int(sizes[-1]):,} impressions ({int(sizes[-1]) // int(sizes[0])}x the "
            f"rows) our time grows {b['ours_s'] / a['ours_s']:.1f}x and DuckDB's {b['duckdb_s'] / a['duckdb_s']:.1f}x; "
            f"the Python driver's peak memory goes from {a['driver_rss_mb']:.0f} to {b['driver_rss_mb']:.0f} MB.",
        ]
    lines += [
        "",
        "Ours: the seven input partitions read once into the engine's cache, then compute (every "
        "metrics_daily metric per version, variant and segment, the profile, the sample, written to their tables) "
        "and drift (every feature against the previous day's stored profile, written to drift_daily, "
        "concept_drift_daily and alerts_daily). The GX suites of the validate task are not in these times. "
        "DuckDB: funnel counts, CTR, CVR and GMV per user per version, variant and segment, and the PSI of every "
        "feature on the same grid deciles, from both days' Parquet files, with no table written.",
    ]
    replace_section(ROOT / "docs" / "benchmarks.md", "pipeline", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
