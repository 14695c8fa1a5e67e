"""spark-submit entry point: `offline-eval baseline` (arguments as for the CLI).

    spark-submit spark_jobs/build_baseline.py --end 2026-06-14 --windows 7,28
"""
from __future__ import annotations

import sys

from offline_eval.cli import main

if __name__ == "__main__":
    sys.exit(main(["baseline", *sys.argv[1:]]))
