"""spark-submit entry point: `offline-eval compute` (arguments as for the CLI).

    spark-submit spark_jobs/compute_metrics.py --ds 2026-06-18
"""
from __future__ import annotations

import sys

from offline_eval.cli import main

if __name__ == "__main__":
    sys.exit(main(["compute", *sys.argv[1:]]))
