"""Hive tables: create, read a partition, overwrite exactly one set of partitions.

All table names and ds values are validated before they are interpolated into SQL.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from offline_eval.config import Settings, validate_ds, validate_sql_name
from offline_eval.contract import INPUT_TABLES, OUTPUT_TABLES, PARTITION_COLUMN, TableSpec
from offline_eval.errors import DataError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ALL_TABLES: dict[str, TableSpec] = {**INPUT_TABLES, **OUTPUT_TABLES}


class MissingPartitionError(DataError):
    """An input partition the run depends on does not exist."""

    def __init__(self, table: str, ds: str) -> None:
        super().__init__(f"table {table}: partition ds={ds} does not exist (check: partition_exists)")
        self.table = table
        self.ds = ds


class Tables:
    """The pipeline's Hive database: the only place that turns a table name into SQL."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.settings = settings
        self.database = validate_sql_name(settings.database, "database name")

    def qualified(self, table: str) -> str:
        validate_sql_name(table, "table name")
        return f"`{self.database}`.`{table}`"

    def ensure(self, specs: Iterable[TableSpec] | None = None) -> None:
        """Create the database and tables if missing (Parquet, partitioned by ds)."""
        self.spark.sql(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        for spec in specs if specs is not None else ALL_TABLES.values():
            self.spark.sql(
                f"CREATE TABLE IF NOT EXISTS {self.qualified(spec.name)} ({spec.ddl_columns()}) "
                f"USING parquet PARTITIONED BY ({', '.join(f'`{c}`' for c in spec.partition_names)})"
            )

    def partitions(self, table: str) -> list[str]:
        rows = self.spark.sql(f"SHOW PARTITIONS {self.qualified(table)}").collect()
        return sorted(r[0].split("=", 1)[1] for r in rows)

    def has_partition(self, table: str, ds: str) -> bool:
        ds = validate_ds(ds)
        qualified = self.qualified(table)
        if not self.spark.catalog.tableExists(f"{self.database}.{table}"):
            return False
        rows = self.spark.sql(
            f"SHOW PARTITIONS {qualified} PARTITION (`{PARTITION_COLUMN}`='{ds}')"
        ).collect()
        return bool(rows)

    def read(self, table: str, ds: str, *, require: bool = True) -> DataFrame:
        """One partition of a table, with the contract's columns in contract order."""
        from pyspark.sql import functions as F

        ds = validate_ds(ds)
        if require and not self.has_partition(table, ds):
            raise MissingPartitionError(f"{self.database}.{table}", ds)
        df = self.spark.table(self.qualified(table)).where(F.col(PARTITION_COLUMN) == ds)
        spec = ALL_TABLES.get(table)
        return df.select(*spec.all_columns) if spec else df

    def read_range(self, table: str, start: str, end: str) -> DataFrame:
        """Partitions start <= ds <= end (inclusive); missing days are simply absent."""
        from pyspark.sql import functions as F

        start, end = validate_ds(start), validate_ds(end)
        return self.spark.table(self.qualified(table)).where(F.col(PARTITION_COLUMN).between(start, end))

    def overwrite(self, df: DataFrame, table: str, *, expected_ds: Iterable[str] | None = None) -> None:
        """Replace exactly the ds partitions present in ``df`` (dynamic partition overwrite).

        ``expected_ds``, when given, guards against writing partitions the caller did not
        mean to touch (a task pinned to one ds must never write another).
        """
        spec = ALL_TABLES[table]
        out = df.select(*spec.all_columns)
        if expected_ds is not None:
            allowed = sorted({validate_ds(d) for d in expected_ds})
            present = sorted(r[0] for r in out.select(PARTITION_COLUMN).distinct().collect())
            stray = [d for d in present if d not in allowed]
            if stray:
                raise ValueError(f"refusing to write {table}: partitions {stray} outside {allowed}")
        out.write.insertInto(self.qualified(table).replace("`", ""), overwrite=True)

    def read_baseline(self, window_days: int, end: str) -> DataFrame:
        """The stored baselines of one window (all model versions)."""
        from pyspark.sql import functions as F

        end = validate_ds(end)
        df = self.spark.table(self.qualified("baselines"))
        return df.where((F.col("window_days") == int(window_days)) & (F.col(PARTITION_COLUMN) == end))

    def drop_partition(self, table: str, ds: str) -> None:
        ds = validate_ds(ds)
        self.spark.sql(
            f"ALTER TABLE {self.qualified(table)} DROP IF EXISTS PARTITION (`{PARTITION_COLUMN}`='{ds}')"
        )
