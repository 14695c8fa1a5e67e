"""
### offline_eval_baseline_weekly / offline_eval_baseline_daily

Stored references for drift and alert thresholds, per model version, in the `baselines`
table keyed by (model, version, window end, window length):

* quantile grid (999 edges) and deciles of every `f_*` feature and of the score, with counts;
  category frequencies (rare values folded into `__other__`);
* score bins per user segment: P(click | score), calibration, AUC of the window;
* mean and standard deviation of every daily metric over the window (thresholds: mean +- 3 sd).

**weekly**: the run for the week `[Mon, next Mon)` builds the 7- and 28-day windows ending on
that Sunday. Daily runs of the following week compare against it.
**daily**: the run for day D builds the 1-day window of D, the "previous day" reference of D+1.

A baseline depends only on the raw partitions of its window, so the daily DAG builds a missing
one itself with the same code: these DAGs keep the table filled ahead of time, and a rerun
replaces a window with identical rows.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag

from offline_eval.orchestration import schedule_args, spark_job

_RETRY = {"retries": 1, "retry_delay": timedelta(minutes=5)}


@dag(
    dag_id="offline_eval_baseline_weekly",
    **schedule_args("0 0 * * 1", **_RETRY),
    tags=["offline-eval", "baseline", "weekly", "spark"],
    doc_md=__doc__,
)
def offline_eval_baseline_weekly() -> None:
    # The interval [Mon, next Mon) ends on Sunday = data_interval_end - 1 day.
    spark_job("build", "build_baseline.py",
              ["--end", "{{ macros.ds_add(data_interval_end | ds, -1) }}", "--windows", "7,28"], retries=1)


@dag(
    dag_id="offline_eval_baseline_daily",
    **schedule_args(**_RETRY),
    tags=["offline-eval", "baseline", "daily", "spark"],
    doc_md=__doc__,
)
def offline_eval_baseline_daily() -> None:
    spark_job("build", "build_baseline.py", ["--end", "{{ ds }}", "--windows", "1"], retries=1)


offline_eval_baseline_weekly()
offline_eval_baseline_daily()
