"""offline-eval: the command line for people and for the DAG's tasks.

Heavy libraries (pyspark, mlflow, evidently, GX) are imported by the subcommand that needs
them, so ``offline-eval --help`` is instant.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from offline_eval.config import ConfigError, DayConfig, Settings, validate_identifier
from offline_eval.dates import parse_ds, validate_ds

log = logging.getLogger("offline_eval")


def _setup_logging(verbose: bool) -> None:
    """The console shows the pipeline's own progress (INFO) and the libraries' warnings and errors;
    their INFO chatter and Python warnings (deprecations, pyspark's UserWarnings) only with -v."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("offline_eval").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.DEBUG if verbose else logging.ERROR)
    for noisy in ("py4j", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)


def _day(args: argparse.Namespace) -> DayConfig:
    return DayConfig(
        ds=args.ds, cadence=getattr(args, "cadence", "daily"), sample_rows=getattr(args, "sample_rows", 50_000)
    )


def cmd_generate(args: argparse.Namespace) -> object:
    from offline_eval.generator import Scenario
    from offline_eval.jobs import generate

    start = parse_ds(args.start)
    scenario = Scenario.sized(
        args.base_users, args.base_items, start=args.start, days=args.days,
        impressions_per_day=args.impressions_per_day, seed=args.seed,
        promo_day=(parse_ds(args.promo_date) - start).days, experiment_start=validate_ds(args.experiment_start),
    )
    return generate.run(scenario, force=args.force)


def cmd_validate(args: argparse.Namespace) -> object:
    from offline_eval.jobs import validate

    return validate.run(_day(args))


def cmd_compute(args: argparse.Namespace) -> object:
    from offline_eval.jobs import compute

    return compute.run(_day(args))


def cmd_publish(args: argparse.Namespace) -> object:
    from offline_eval.jobs import publish

    return publish.run(_day(args), dag_run_id=args.dag_run_id)


def cmd_run_day(args: argparse.Namespace) -> object:
    """The daily DAG's tasks in one process, without Airflow (debugging, notebooks)."""
    from offline_eval.io.spark import get_spark
    from offline_eval.jobs import baselines, compute, drift, publish, validate

    day = _day(args)
    spark = get_spark(tag=f"offline-eval-run-day-{day.ds}")
    return {
        "validate": validate.run(day, spark=spark),
        "compute": compute.run(day, spark=spark),
        "baselines": baselines.run(day, spark=spark),
        "drift": drift.run(day, spark=spark),
        "publish": publish.run(day, dag_run_id="cli", spark=spark),
    }


def cmd_baselines(args: argparse.Namespace) -> object:
    from offline_eval.jobs import baselines

    if args.ds:
        if args.end:
            raise ConfigError("--ds (the references of a day) and --end (windows ending on a day): give one")
        return baselines.run(DayConfig(ds=args.ds))
    if not args.end:
        raise ConfigError("give --ds DAY (the references of that day) or --end DAY --windows 7,28")
    try:
        windows = [int(w) for w in args.windows.split(",") if w.strip()]
    except ValueError as exc:
        raise ConfigError(f"--windows {args.windows!r}: comma-separated day counts, e.g. 7,28") from exc
    if not windows or min(windows) < 2 or max(windows) > 366:
        raise ConfigError(f"--windows {args.windows!r}: each window must be 2..366 days")
    return baselines.run_windows(validate_ds(args.end), windows)


def cmd_weekly(args: argparse.Namespace) -> object:
    from offline_eval.jobs import weekly

    return weekly.run(args.end)


def cmd_engine(args: argparse.Namespace) -> object:
    from offline_eval.io.engine import Engine

    engine = Engine(Settings.from_env())
    if args.action == "start" and args.foreground:
        engine.run_foreground()  # does not return
    if args.action == "start":
        print(engine.start().describe())
    elif args.action == "stop":
        print("stopped the Spark engine" if engine.stop() else f"no Spark engine was running from {engine.pid_file}")
    else:
        status = engine.status()
        print(status.describe())
        return None if status.running else 1
    return None


def cmd_summary(args: argparse.Namespace) -> object:
    from offline_eval.io.spark import get_spark
    from offline_eval.io.tables import Tables
    from offline_eval.summary import daily_summary

    model, start, end = validate_identifier(args.model, "model name"), validate_ds(args.start), validate_ds(args.end)
    if start > end:
        raise ConfigError(f"--start {start} is after --end {end}")
    settings = Settings.from_env()
    tables = Tables(get_spark(settings, tag="offline-eval-summary"), settings)
    print(daily_summary(tables, model, start, end))
    return None


def cmd_readout(args: argparse.Namespace) -> object:
    from offline_eval.jobs import readout

    specs = parse_specs(args.metric, args.ratio, args.covariate)
    result = readout.run(
        args.input, args.variant_col, args.control, specs, args.out,
        alpha=args.alpha, correction=args.correction, equal_var=args.equal_var,
        html_path=args.html, markdown_path=args.markdown, guardrails=args.guardrail,
    )
    if args.out:  # the file holds the JSON; the terminal gets the readable table
        from offline_eval.reporting.ab import to_markdown

        print(to_markdown(result, title=f"A/B readout of {args.input}"))
        return None
    return result


def parse_specs(metrics: Sequence[str], ratios: Sequence[str], covariates: Sequence[str]) -> list:
    """``COL:proportion|mean``, ``NUM/DEN`` and ``METRIC=COL`` from the command line, as
    ``metrics.ab.MetricSpec``s."""
    from offline_eval.metrics.ab import MetricSpec

    covs: dict[str, str] = {}
    for item in covariates:
        name, sep, col = item.partition("=")
        if not sep or not name or not col:
            raise ConfigError(f"--covariate {item!r}: expected METRIC=COLUMN")
        covs[name] = col
    specs: list[MetricSpec] = []
    for item in metrics:
        col, sep, kind = item.rpartition(":")
        if not sep or not col or kind not in ("proportion", "mean"):
            raise ConfigError(f"--metric {item!r}: expected COLUMN:proportion or COLUMN:mean")
        specs.append(MetricSpec(col, kind, col, covariate=covs.pop(col, None)))
    for item in ratios:
        num, sep, den = item.partition("/")
        if not sep or not num or not den:
            raise ConfigError(f"--ratio {item!r}: expected NUMERATOR_COLUMN/DENOMINATOR_COLUMN")
        specs.append(MetricSpec(item, "ratio", num, denominator=den))
    if covs:
        raise ConfigError(f"--covariate for unknown metrics {sorted(covs)}; covariates apply to --metric columns")
    if not specs:
        raise ConfigError("give at least one --metric or --ratio")
    names = [m.name for m in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"metrics listed twice: {names}")
    return specs


def cmd_ab_readout(args: argparse.Namespace) -> object:
    from offline_eval.jobs import ab_readout

    result = ab_readout.run(args.ds, experiment=args.experiment or None, start=args.start or None,
                            pre_days=args.pre_days, alpha=args.alpha, correction=args.correction)
    if args.mlflow:
        result["mlflow"] = ab_readout.publish(args.ds, experiment=args.experiment or None, dag_run_id=args.dag_run_id)
    return result


def cmd_ab_publish(args: argparse.Namespace) -> object:
    from offline_eval.jobs import ab_readout

    return ab_readout.publish(args.ds, experiment=args.experiment or None, dag_run_id=args.dag_run_id)


def cmd_drift(args: argparse.Namespace) -> object:
    from offline_eval.jobs import drift

    if args.ds:
        if args.reference or args.current:
            raise ConfigError("--ds (a day of the pipeline) or --reference/--current (two tables): give one")
        return drift.run(_day(args))
    if not (args.reference and args.current):
        raise ConfigError("give --ds DAY, or --reference TABLE and --current TABLE")
    cols = [c for c in (args.columns or "").split(",") if c]
    cats = [c for c in (args.categorical or "").split(",") if c]
    result = drift.run_files(args.reference, args.current, args.out, columns=cols or None, categorical=cats)
    if args.out:
        for c in result["columns"]:
            print(f"{c['column']:<32} {c['type']:<12} psi={_fmt(c.get('psi'))} ks={_fmt(c.get('ks'))} "
                  f"js={_fmt(c.get('js'))} chi2_p={_fmt(c.get('chi2_p'))} -> {c['verdict']}")
        return None
    return result


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _add_day_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ds", required=True, help="partition date yyyy-MM-dd to evaluate")
    p.add_argument("--cadence", default="daily", choices=["daily", "weekly"],
                   help="names the MLflow run of the day (weekly: the run of a weekly evaluation)")
    p.add_argument("--sample-rows", type=int, default=50_000, help="max rows per model version in the Evidently sample")


def build_parser() -> argparse.ArgumentParser:
    from offline_eval import __version__

    parser = argparse.ArgumentParser(prog="offline-eval", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, library logs and warnings")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write synthetic logs of the demo scenario into the Hive tables")
    g.add_argument("--start", default="2026-06-01", help="first day to write")
    g.add_argument("--days", type=int, default=21, help="number of days to write from --start")
    g.add_argument("--promo-date", default="2026-06-18", help="first day of the promotion (new-user surge)")
    g.add_argument("--experiment-start", default="2026-06-08",
                   help="first day of the v1/v2 A/B test; earlier days are v1 only (the CUPED pre-period)")
    g.add_argument("--impressions-per-day", type=int, default=200_000, help="impressions of each day")
    g.add_argument("--seed", type=int, default=618, help="the same seed writes the same rows")
    g.add_argument(
        "--base-users", type=int, default=40_000, help="users signed up before the window (signups scale with it)"
    )
    g.add_argument("--base-items", type=int, default=20_000, help="catalogue size before the window, a multiple of 10")
    g.add_argument("--force", action="store_true", help="rewrite even if this scenario was already generated")
    g.set_defaults(func=cmd_generate)

    commands: dict[str, tuple[Callable, str]] = {
        "validate": (cmd_validate, "run the GX suites on one day's input partitions (cached for compute)"),
        "compute": (cmd_compute, "metrics_daily, the day's profile and sample, from the validated day"),
        "run-day": (cmd_run_day, "validate, compute, baselines, drift and publish one day without Airflow"),
    }
    for name, (func, help_) in commands.items():
        p = sub.add_parser(name, help=help_)
        _add_day_args(p)
        p.set_defaults(func=func)
    p = sub.add_parser("publish", help="Evidently reports and MLflow runs for one computed day")
    _add_day_args(p)
    p.add_argument("--dag-run-id", default="manual", help="recorded as a tag of the MLflow runs")
    p.set_defaults(func=cmd_publish)

    r = sub.add_parser(
        "readout",
        help="A/B readout of an exposure table (CSV or Parquet, one row per unit)",
        description="SRM check, then every metric of every arm against control: lift, interval, p-value. "
        "Metric columns may be 0/1, true/false or numbers; nulls count as 0.",
    )
    r.add_argument("--input", required=True, help="CSV (with header) or Parquet file or directory")
    r.add_argument("--variant-col", required=True, help="column holding the arm of each unit")
    r.add_argument("--control", required=True, help="value of --variant-col for the control arm")
    r.add_argument("--metric", action="append", default=[], metavar="COL:proportion|mean",
                   help="per-unit metric; repeat for several")
    r.add_argument("--ratio", action="append", default=[], metavar="NUM_COL/DEN_COL",
                   help="ratio of sums (e.g. clicks/impressions), delta-method variance; repeatable")
    r.add_argument("--covariate", action="append", default=[], metavar="METRIC=COL",
                   help="pre-period column for CUPED on --metric METRIC; repeatable")
    r.add_argument("--guardrail", action="append", default=[], metavar="METRIC",
                   help="mark a metric as a guardrail in the readout; repeatable")
    r.add_argument("--alpha", type=float, default=0.05, help="significance level; intervals are 1 - alpha")
    r.add_argument("--correction", choices=["none", "holm", "bh"], default="none",
                   help="multiple-testing adjustment across all metric x arm comparisons")
    r.add_argument("--equal-var", action="store_true", help="Student's t instead of Welch for mean metrics")
    r.add_argument("--out", help="write the readout JSON here (otherwise it is printed)")
    r.add_argument("--html", help="also write the HTML readout (table, forest plot, SRM banner)")
    r.add_argument("--markdown", help="also write the Markdown readout")
    r.set_defaults(func=cmd_readout)

    a = sub.add_parser("ab-readout", help="A/B readout of the pipeline's experiments from the Hive logs")
    a.add_argument("--ds", required=True, help="last day of the readout window")
    a.add_argument("--experiment", default="", help="experiment id (default: every experiment running on --ds)")
    a.add_argument("--start", default="", help="first day of the window (default: the experiment's first day)")
    a.add_argument("--pre-days", type=int, default=7, help="days before the experiment used as CUPED covariates")
    a.add_argument("--alpha", type=float, default=0.05, help="significance level; intervals are 1 - alpha")
    a.add_argument("--correction", choices=["none", "holm", "bh"], default="holm",
                   help="multiple-testing adjustment across all metric x arm comparisons")
    a.add_argument("--mlflow", action="store_true", help="also log the readout to MLflow")
    a.add_argument("--dag-run-id", default="manual", help="recorded as a tag of the MLflow run")
    a.set_defaults(func=cmd_ab_readout)
    ap = sub.add_parser("ab-publish", help="log the A/B readouts written for --ds to MLflow")
    ap.add_argument("--ds", required=True, help="last day of the readout window")
    ap.add_argument("--experiment", default="", help="experiment id (default: every readout written for --ds)")
    ap.add_argument("--dag-run-id", default="manual", help="recorded as a tag of the MLflow run")
    ap.set_defaults(func=cmd_ab_publish)

    d = sub.add_parser("drift", help="drift of a day against its references, or of any two tables (CSV or Parquet)",
                       description="With --ds: the day's profile against the previous day and the weekly baseline "
                       "-> drift_daily, concept_drift_daily, alerts_daily. With --reference/--current: PSI (10 bins "
                       "at the reference deciles; one bin per category), KS with its error bound, Jensen-Shannon "
                       "distance, Wasserstein / reference std, chi-square of every column.")
    d.add_argument("--ds", help="a day of the pipeline (yyyy-MM-dd)")
    d.add_argument("--sample-rows", type=int, default=50_000, help=argparse.SUPPRESS)
    d.add_argument("--reference", help="reference table (CSV or Parquet)")
    d.add_argument("--current", help="current table (CSV or Parquet)")
    d.add_argument("--columns", help="comma-separated columns (default: all shared columns)")
    d.add_argument("--categorical", help="comma-separated columns to treat as categorical (strings always are)")
    d.add_argument("--out", help="write the JSON here (otherwise it is printed)")
    d.set_defaults(func=cmd_drift)

    b = sub.add_parser("baselines", aliases=["baseline"],
                       help="the references of a day (--ds), or the windows ending on a day (--end)",
                       description="References are merges of the stored daily profiles (profiles_daily): grid "
                       "counts and moments of every f_* feature and the score, category frequencies, score bins "
                       "per user segment, mean/std of every daily metric. A day of a window without a profile "
                       "(never evaluated) is profiled from its raw partitions first. Windows longer than a day "
                       "are stored in the baselines table (partition window_days, ds=end).")
    b.add_argument(
        "--ds", help="the day whose references to build: the previous day and the 7 days ending the last Sunday"
    )
    b.add_argument("--end", help="last day of the windows (weekly baselines: a Sunday)")
    b.add_argument("--windows", default="7,28", help="with --end: comma-separated window lengths (default 7,28)")
    b.set_defaults(func=cmd_baselines)

    w = sub.add_parser("weekly", help="evaluate the week ending --end (a Sunday): metrics_weekly, report, MLflow run",
                       description="The week's metrics from the days the daily pipeline stored (ratios of the "
                       "week's sums, model quality from the week's merged score bins), the 7 days side by side "
                       "with the week's incidents and its drift against the week before, in "
                       "reports/<model>/<version>/weekly/<end>/ and one MLflow run per version (cadence weekly).")
    w.add_argument("--end", required=True, help="the week's last day, a Sunday (yyyy-MM-dd)")
    w.set_defaults(func=cmd_weekly)

    e = sub.add_parser("engine", help="start, stop or show the embedded Spark engine (a Spark Connect server)",
                       description="The Spark Connect server every task talks to, at SPARK_REMOTE "
                       "(default sc://127.0.0.1:15002), with the Hive metastore and warehouse under "
                       "OFFLINE_EVAL_HOME. `status` exits 1 when it is not running.")
    e.add_argument("action", choices=["start", "stop", "status"], help="what to do with the engine")
    e.add_argument("--foreground", action="store_true", help="start: run the server in this process (containers)")
    e.set_defaults(func=cmd_engine)

    s = sub.add_parser("summary", help="print per version and day: CTR, CVR, GMV per user, new-user share")
    s.add_argument("--model", default="home_feed_ctr", help="model name")
    s.add_argument("--start", required=True, help="first day (yyyy-MM-dd)")
    s.add_argument("--end", required=True, help="last day (yyyy-MM-dd)")
    s.set_defaults(func=cmd_summary)
    for p in sub.choices.values():  # every option shows its default in --help
        p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    # Exit codes (see offline_eval.orchestration): 2 bad configuration, 3 bad input data,
    # 1 anything else. The DAGs retry only 1.
    from offline_eval.errors import DataError

    try:
        result = args.func(args)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    except DataError as exc:
        log.error("%s", exc)
        return 3
    except Exception as exc:  # noqa: BLE001 - one clear line for the operator, traceback in debug
        log.error("%s: %s", type(exc).__name__, exc)
        log.debug("traceback", exc_info=True)
        return 1
    if isinstance(result, int):
        return result
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
