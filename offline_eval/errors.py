"""Exceptions that say the input data, not the code or the cluster, is at fault.

The command line exits with code 3 on these (see ``offline_eval.orchestration``), so the
DAGs fail the task at once instead of retrying something only a data fix can cure.
"""
from __future__ import annotations


class DataError(RuntimeError):
    """Input data is missing or does not meet its contract. Messages name table, partition,
    column and check."""
