"""`offline-eval readout`: an A/B readout of any exposure table (CSV or Parquet, one row per
unit) through the same Spark aggregation and statistics as the pipeline."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from offline_eval.config import ConfigError, Settings
from offline_eval.errors import DataError
from offline_eval.io.files import read_table
from offline_eval.io.paths import write_json_atomic, write_text_atomic
from offline_eval.io.spark import get_spark
from offline_eval.metrics.ab import MetricSpec, arm_moments
from offline_eval.reporting.ab import to_html, to_markdown
from offline_eval.stats.ab import Moments
from offline_eval.stats.readout import build_readout

log = logging.getLogger(__name__)
_SUFFIXES = ("sum_y", "sum_y2", "sum_x", "sum_x2", "sum_xy")


def collect_moments(
    df, variant_col: str, specs: Sequence[MetricSpec], source: str = "input"
) -> tuple[dict[str, dict[str, Moments]], dict[str, int]]:
    """Per-arm moments of every metric; only one small row per arm reaches the driver."""
    missing = sorted({variant_col, *[c for m in specs for c in (m.column, m.x_column) if c]} - set(df.columns))
    if missing:
        raise DataError(f"{source}: columns {missing} not found (check: required columns; columns are {df.columns})")
    arms: dict[str, dict[str, Moments]] = {}
    counts: dict[str, int] = {}
    rows = arm_moments(df, variant_col, specs).collect()
    bad = {k.split("__", 1)[1]: sum(int(r[k]) for r in rows) for k in (rows[0].asDict() if rows else {}) if k.startswith("invalid__")}
    bad = {c: n for c, n in bad.items() if n}
    if bad:
        raise DataError(f"{source}: columns with values that are neither numbers nor true/false "
                        f"(check: numeric metric values): {bad}")
    for row in rows:
        counts[row["variant"]] = int(row["n"])
        arms[row["variant"]] = {
            m.name: Moments(int(row["n"]), *[float(row[f"m{i}__{s}"]) for s in _SUFFIXES]) for i, m in enumerate(specs)
        }
    return arms, counts


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
    settings = settings or Settings.from_env()
    spark = get_spark(settings, tag="offline-eval-readout")
    arms, counts = collect_moments(read_table(spark, input_path), variant_col, specs, source=str(input_path))
    if control not in counts:
        raise DataError(f"{input_path}: control arm {control!r} not found in column {variant_col} "
                        f"(arms: {sorted(counts)})")
    readout = build_readout(
        arms, counts, [(m.name, m.kind, m.covariate is not None) for m in specs], control,
        alpha=alpha, correction=correction, equal_var=equal_var, guardrails=guardrails,
    )
    readout["input"] = {"path": str(input_path), "variant_col": variant_col}
    if out:
        write_json_atomic(Path(out), readout)
        log.info("readout of %s (%d arms, %d metrics) -> %s", input_path, len(counts), len(specs), out)
    title = f"A/B readout of {Path(input_path).name}"
    if html_path:
        write_text_atomic(Path(html_path), to_html(readout, title=title, context={"input": str(input_path)}))
    if markdown_path:
        write_text_atomic(Path(markdown_path), to_markdown(readout, title=title))
    return readout


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
