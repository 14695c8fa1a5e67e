"""Hostile names, dates and numbers on every subcommand that takes them: each is refused before
any work (the engine is not even reached: SPARK_REMOTE points at a closed port), with exit code
2 and one ERROR line that names the argument and its value. Model names and versions, experiment
ids and dates reach SQL and paths, so ``../``, quotes and SQL fragments must never get through."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, free_port

TRAVERSAL, QUOTE, SQL = "../../etc", "v1'--", "x; DROP TABLE metrics_daily"
DAY = ("--start", "2026-06-01", "--end", "2026-06-02")

CASES = [
    (["summary", "--model", TRAVERSAL, *DAY], f"invalid model name {TRAVERSAL!r}"),
    (["summary", "--model", SQL, *DAY], "invalid model name"),
    (["summary", "--start", "2026-13-01", "--end", "2026-06-02"], "invalid ds '2026-13-01'"),
    (["summary", "--start", "2026-06-03", "--end", "2026-06-02"], "--start 2026-06-03 is after --end 2026-06-02"),
    (["validate", "--ds", TRAVERSAL], f"invalid ds {TRAVERSAL!r}"),
    (["compute", "--ds", "2026-06-18' OR '1'='1"], "invalid ds \"2026-06-18' OR '1'='1\""),
    (["publish", "--ds", "20260618"], "invalid ds '20260618'"),
    (["run-day", "--ds", "2026-02-30"], "invalid ds '2026-02-30'"),
    (["drift", "--ds", "x"], "invalid ds 'x'"),
    (["ab-readout", "--ds", "2026-06-18", "--experiment", TRAVERSAL], f"invalid experiment id {TRAVERSAL!r}"),
    (["ab-readout", "--ds", "2026-06-18", "--experiment", QUOTE], f"invalid experiment id {QUOTE!r}"),
    (["ab-readout", "--ds", "2026-06-18", "--start", "2026-06-19"], "--start 2026-06-19 is after"),
    (["ab-readout", "--ds", "2026-06-18", "--start", "yesterday"], "invalid ds 'yesterday'"),
    (["ab-readout", "--ds", "2026-06-18", "--pre-days", "-1"], "--pre-days -1"),
    (["ab-readout", "--ds", "2026-06-18", "--alpha", "2"], "--alpha 2.0"),
    (["ab-publish", "--ds", "2026-06-18", "--experiment", 'a"b'], "invalid experiment id 'a\"b'"),
    (["baselines", "--end", "2026-06-21", "--windows", "7,abc"], "--windows '7,abc'"),
    (["baselines", "--end", "2026-06-21", "--windows", "1"], "each window must be 2..366 days"),
    (["baselines", "--ds", "2026-06-1"], "invalid ds '2026-06-1'"),
    (["generate", "--start", "bad"], "invalid ds 'bad'"),
    (["generate", "--days", "0"], "days must be >= 1"),
    (["generate", "--base-users", "0"], "base_users"),
    (["generate", "--base-items", "15"], "multiples of 10"),
    (["generate", "--experiment-start", "2026-06-08; rm -rf /"], "invalid ds '2026-06-08; rm -rf /'"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_bad_argument_is_refused_before_any_work(tmp_path, argv, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OFFLINE_EVAL", "MLFLOW_TRACKING"))}
    env.update(SPARK_REMOTE=f"sc://127.0.0.1:{free_port()}", OFFLINE_EVAL_HOME=str(tmp_path / "home"),
               OFFLINE_EVAL_REPORTS=str(tmp_path / "reports"))
    proc = subprocess.run([sys.executable, "-m", "offline_eval.cli", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and " ERROR offline_eval: " in lines[0], proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stderr and not (tmp_path / "reports").exists()
