"""The pipeline's `run-day` step as a Spark Connect client script (arguments as for the CLI):

    python spark_jobs/run_day.py --ds 2026-06-18

It reaches the engine at SPARK_REMOTE; exit code 3 is bad input data, 2 bad configuration,
1 anything else (docs/deployment.md).
"""
from __future__ import annotations

import sys

from offline_eval.cli import main

if __name__ == "__main__":
    sys.exit(main(["run-day", *sys.argv[1:]]))
