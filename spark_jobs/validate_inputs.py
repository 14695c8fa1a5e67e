"""spark-submit entry point: `offline-eval validate` (arguments as for the CLI).

    spark-submit spark_jobs/validate_inputs.py --ds 2026-06-18
"""
from __future__ import annotations

import sys

from offline_eval.cli import main

if __name__ == "__main__":
    sys.exit(main(["validate", *sys.argv[1:]]))
