"""The two kinds of failure a retry cannot cure.

The command line exits with code 3 on a ``DataError`` and 2 on a ``ConfigError`` (``cli.main``),
and the DAGs' tasks fail at once on both, without a retry (plugins/offline_eval_airflow/tasks.py).
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is malformed; the message names the field and the value."""


class DataError(RuntimeError):
    """Input data is missing or does not meet its contract. Messages name table, partition,
    column and check."""
