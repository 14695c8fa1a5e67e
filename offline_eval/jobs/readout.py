"""`offline-eval readout`: an A/B readout of any exposure table (CSV or Parquet, one row per
unit) through the same Spark aggregation and statistics as the pipeline."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from offline_eval import thresholds
from offline_eval.config import ConfigError, Settings
from offline_eval.io.files import prepare_output, read_table
from offline_eval.io.paths import write_json_atomic, write_text_atomic
from offline_eval.io.spark import get_spark
from offline_eval.metrics.ab import MetricSpec, check_arms, check_values, collect_file_moments
from offline_eval.reporting.ab import to_html, to_markdown
from offline_eval.stats.readout import build_readout

log = logging.getLogger(__name__)


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
        srm_alpha=thresholds.load().defaults.srm_alpha,
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
