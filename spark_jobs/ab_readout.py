"""spark-submit entry point: `offline-eval ab-readout` (arguments as for the CLI).

    spark-submit spark_jobs/ab_readout.py --ds 2026-06-21 [--experiment exp_home_feed_v2]
"""
from __future__ import annotations

import sys

from offline_eval.cli import main

if __name__ == "__main__":
    sys.exit(main(["ab-readout", *sys.argv[1:]]))
