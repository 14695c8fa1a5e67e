"""`offline-eval readout`: an A/B readout of any exposure table (CSV or Parquet, one row per
unit) through the same Spark aggregation and statistics as the pipeline."""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from offline_eval.config import ConfigError, Settings
from offline_eval.errors import DataError
from offline_eval.io.files import prepare_output, read_table
from offline_eval.io.paths import write_json_atomic, write_text_atomic
from offline_eval.io.spark import get_spark
from offline_eval.metrics.ab import MetricSpec, collect_moments, numeric, require_columns
from offline_eval.reporting.ab import to_html, to_markdown
from offline_eval.stats.ab import Moments
from offline_eval.stats.readout import build_readout

log = logging.getLogger(__name__)
# File inputs are audited in the same aggregation as the moments: rows whose variant is null
# are grouped under _NO_ARM (a string no arm of a CSV or Parquet file is named) instead of
# being dropped unseen, and a _PRESENT column per metric column counts its non-null values.
_NO_ARM = "\x00offline-eval: no arm"
_PRESENT = "__offline_eval_present_{}"
MIN_UNITS = 2  # per arm: a variance needs two units


def run(
    input_path: str,
    variant_col: str,
    control: str,
    specs: Sequence[MetricSpec],
    out: str | None,
    *,
    alpha: float = 0.05,
    correction: str = "none",
    equal_var: bool = False,
    html_path: str | None = None,
    markdown_path: str | None = None,
    guardrails: Sequence[str] = (),
    settings: Settings | None = None,
) -> dict[str, Any]:
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be in (0, 1), got {alpha}")
    unknown = sorted(set(guardrails) - {m.name for m in specs})
    if unknown:
        raise ConfigError(f"--guardrail {unknown}: not among the metrics {[m.name for m in specs]}")
    outputs = {flag: prepare_output(path, flag) for flag, path in
               (("--out", out), ("--html", html_path), ("--markdown", markdown_path))}
    settings = settings or Settings.from_env()
    spark = get_spark(settings, tag="offline-eval-readout")
    source = str(input_path)
    df = read_table(spark, input_path)
    arms, counts, unassigned = collect_file_moments(df, variant_col, specs, source)
    check_arms(counts, unassigned, variant_col, control, source)
    check_values(df, arms, counts, specs, source)
    readout = build_readout(
        arms, counts, [(m.name, m.kind, m.covariate is not None) for m in specs], control,
        alpha=alpha, correction=correction, equal_var=equal_var, guardrails=guardrails,
    )
    readout["input"] = {"path": source, "variant_col": variant_col, "rows_without_variant": unassigned}
    context = {"input": source}
    if unassigned:
        log.warning("%s: %d rows with an empty %s left out (no arm)", source, unassigned, variant_col)
        context["rows without a variant (left out)"] = f"{unassigned:,}"
    if outputs["--out"]:
        write_json_atomic(outputs["--out"], readout)
        log.info("readout of %s (%d arms, %d metrics) -> %s", input_path, len(counts), len(specs), out)
    title = f"A/B readout of {Path(input_path).name}"
    if outputs["--html"]:
        write_text_atomic(outputs["--html"], to_html(readout, title=title, context=context))
    if outputs["--markdown"]:
        write_text_atomic(outputs["--markdown"], to_markdown(readout, title=title))
    return readout


def collect_file_moments(
    df, variant_col: str, specs: Sequence[MetricSpec], source: str
) -> tuple[dict[str, dict[str, Moments]], dict[str, int], int]:
    """collect_moments of a file, in the same single pass also counting the rows whose variant
    is null (returned apart: they belong to no arm) and the non-null values of every metric
    column (a column without any is a DataError: "nulls count as 0" would read it as all 0)."""
    from pyspark.sql import functions as F

    require_columns(df, variant_col, specs, source)
    columns = sorted({c for m in specs for c in (m.column, m.x_column) if c})
    audited = df.withColumn(variant_col, F.coalesce(F.col(variant_col).cast("string"), F.lit(_NO_ARM)))
    probes = []
    for i, c in enumerate(columns):
        audited = audited.withColumn(_PRESENT.format(i), F.col(c).isNotNull().cast("double"))
        probes.append(MetricSpec(_PRESENT.format(i), "mean", _PRESENT.format(i)))
    arms, counts = collect_moments(audited, variant_col, [*specs, *probes], source)
    unassigned = counts.pop(_NO_ARM, 0)
    arms.pop(_NO_ARM, None)
    for i, c in enumerate(columns):
        values = sum(arm.pop(_PRESENT.format(i)).sum_y for arm in arms.values())
        if counts and values == 0:
            raise DataError(f"{source}: column {c} has no values (empty in all {sum(counts.values()):,} rows "
                            f"with a variant) (check: metric values present)")
    return arms, counts, unassigned


def check_arms(counts: dict[str, int], unassigned: int, variant_col: str, control: str, source: str) -> None:
    """A comparison needs data rows, the control arm, another arm, and two units in every arm."""
    if not counts:
        if unassigned:
            raise DataError(f"{source}: column {variant_col} is empty in all {unassigned:,} rows "
                            "(check: variant assigned)")
        raise DataError(f"{source}: no data rows (check: non-empty input)")
    if control not in counts:
        raise DataError(f"{source}: control arm {control!r} not found in column {variant_col} "
                        f"(arms: {sorted(counts)})")
    if len(counts) == 1:
        raise DataError(f"{source}: column {variant_col} holds only the control arm {control!r}, "
                        "no arm to compare with it (check: at least two arms)")
    small = {arm: n for arm, n in sorted(counts.items()) if n < MIN_UNITS}
    if small:
        raise DataError(f"{source}: arms with fewer than {MIN_UNITS} units in column {variant_col}: {small} "
                        f"(check: at least {MIN_UNITS} units per arm)")


def check_values(df, arms: dict[str, dict[str, Moments]], counts: dict[str, int], specs: Sequence[MetricSpec],
                 source: str) -> None:
    """NaN or an infinity in a metric makes its sums, and every figure of it, meaningless: a
    DataError naming the column. Found from the sums (no extra pass); counted only then."""
    from pyspark.sql import functions as F

    bad: list[str] = []
    for m in specs:
        for mom in (arms[a][m.name] for a in counts):
            if not (math.isfinite(mom.sum_y) and math.isfinite(mom.sum_y2)) and m.column not in bad:
                bad.append(m.column)
            if m.x_column and not (math.isfinite(mom.sum_x) and math.isfinite(mom.sum_x2)) and m.x_column not in bad:
                bad.append(m.x_column)
    if not bad:
        return
    c = bad[0]
    v = numeric(c)
    row = df.agg(F.count(F.lit(1)).alias("rows"), F.sum(F.isnan(v).cast("long")).alias("nan"),
                 F.sum((F.abs(v) == F.lit(math.inf)).cast("long")).alias("inf"),
                 F.max(F.abs(v)).alias("largest")).first()
    nan, inf = int(row["nan"] or 0), int(row["inf"] or 0)
    if nan or inf:
        raise DataError(f"{source}: column {c} has {nan:,} NaN and {inf:,} infinite values in {int(row['rows']):,} "
                        "rows (check: finite metric values; leave a cell empty for no value, which counts as 0)")
    raise DataError(f"{source}: column {c}: its sums overflow (values up to {row['largest']:.3g}) "
                    "(check: metric scale)")


def parse_specs(metrics: Sequence[str], ratios: Sequence[str], covariates: Sequence[str]) -> list[MetricSpec]:
    """``COL:proportion|mean``, ``NUM/DEN`` and ``METRIC=COL`` from the command line."""
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
