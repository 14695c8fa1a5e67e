"""spark-submit entry point: `offline-eval generate` (arguments as for the CLI).

    spark-submit spark_jobs/generate_logs.py --start 2026-06-08 --days 14
"""
from __future__ import annotations

import sys

from offline_eval.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
