"""The validated snapshot of a day: its input partitions, read once and cached in the engine.

The validate task reads each input partition of ``ds``, caches it and registers it as a
global temporary view; the GX suites run on those cached DataFrames, and the compute task of
the same day reads the same views (``global_temp`` is shared by every session of the engine),
so the day's files are read once, and compute evaluates exactly the data that passed the gate.
compute drops the snapshot when it is done. If the engine restarted in between (or the views
are gone for any other reason), compute says so and validates again before computing.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from offline_eval.dates import validate_ds
from offline_eval.io.tables import GLOBAL_TEMP

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from offline_eval.io.tables import Tables

log = logging.getLogger(__name__)


class DaySnapshot:
    def __init__(self, tables: Tables, ds: str) -> None:
        self.tables = tables
        self.spark = tables.spark
        self.ds = validate_ds(ds)

    def view(self, table: str) -> str:
        # database and table are validated SQL names, ds a validated date: a safe identifier
        self.tables.qualified(table)
        return f"oe_{self.tables.database}__{table}__{self.ds.replace('-', '')}"

    def create(self, table: str) -> DataFrame:
        """Read the partition (contract columns), cache it and register it; replaces an older
        snapshot of the same partition, whose cached data may predate a fix of the files."""
        self.drop([table])
        df = self.tables.read(table, self.ds, require=False).cache()  # the caller checked the partition
        df.createOrReplaceGlobalTempView(self.view(table))
        return self.read(table)

    def read(self, table: str) -> DataFrame:
        return self.spark.table(f"{GLOBAL_TEMP}.{self.view(table)}")

    def exists(self, tables: Iterable[str]) -> bool:
        return all(self.spark.catalog.tableExists(f"{GLOBAL_TEMP}.{self.view(t)}") for t in tables)

    def drop(self, tables: Iterable[str]) -> None:
        for t in tables:
            # Dropping a cached view uncaches it too.
            self.spark.catalog.dropGlobalTempView(self.view(t))
