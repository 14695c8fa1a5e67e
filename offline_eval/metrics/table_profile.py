"""The profile of a whole table (`offline-eval drift` on two files): which columns to compare
and how, their types made to agree, one grid pass over the numeric columns and one count of
the categorical ones."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from offline_eval.config import ConfigError
from offline_eval.errors import DataError
from offline_eval.metrics.profile import categorical_counts, numeric_profiles
from offline_eval.stats.profile import Profile

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_NUMERIC = ("byte", "short", "int", "bigint", "long", "float", "double", "decimal", "boolean")


def split_columns(ref_types: dict[str, str], cur_types: dict[str, str], columns: Sequence[str] | None,
                  categorical: Sequence[str], source: str) -> tuple[list[str], list[str]]:
    """Columns to compare, split into numeric and categorical (strings and --categorical)."""
    wanted = list(columns) if columns else [c for c in ref_types if c in cur_types]
    missing = [c for c in wanted if c not in ref_types or c not in cur_types]
    if missing:
        raise DataError(f"{source}: columns {missing} not in both tables (check: required columns)")
    unknown = [c for c in categorical if c not in wanted]
    if unknown:
        raise ConfigError(f"--categorical {unknown}: not among the compared columns")
    numeric: list[str] = []
    cats: list[str] = []
    for c in wanted:
        is_num = ref_types[c].split("(")[0] in _NUMERIC and cur_types[c].split("(")[0] in _NUMERIC
        (numeric if is_num and c not in categorical else cats).append(c)
    if not wanted:
        raise DataError(f"{source}: the tables share no column")
    return numeric, cats


def table_profile(df: DataFrame, numeric: Sequence[str], categorical: Sequence[str], name: str) -> Profile:
    """One profile of a whole table: one grid pass over the numeric columns, one JVM count of the
    categorical ones."""
    nums = numeric_profiles(df, [], numeric).get((), {})
    cats = categorical_counts(df, [], categorical).get((), {c: {} for c in categorical})
    return Profile("table", name, (), numeric=nums, categorical=cats)


def is_numeric(spark_type: str) -> bool:
    return spark_type.split("(")[0] in _NUMERIC


def align_types(ref_df: DataFrame, cur_df: DataFrame, reference: str, current: str, columns: Sequence[str] | None,
                categorical: Sequence[str]) -> tuple[DataFrame, DataFrame]:
    """A column numeric in one table and text in the other: a DataError naming the file and a
    value that is not a number, unless ``--categorical`` lists it. A CSV column without any
    value is inferred as text: it is read as numeric (all missing, verdict "no data"), as the
    same column of a Parquet file would be."""
    from pyspark.sql import functions as F

    ref_types, cur_types = dict(ref_df.dtypes), dict(cur_df.dtypes)
    wanted = list(columns) if columns else [c for c in ref_types if c in cur_types]
    for c in wanted:
        if c not in ref_types or c not in cur_types or c in categorical:
            continue
        if is_numeric(ref_types[c]) == is_numeric(cur_types[c]):
            continue
        ref_num = is_numeric(ref_types[c])
        text_df, text_path = (cur_df, current) if ref_num else (ref_df, reference)
        num_path, num_type = (reference, ref_types[c]) if ref_num else (current, cur_types[c])
        value = F.col(c).cast("string")
        row = text_df.agg(F.count(F.col(c)).alias("values"),
                          F.first(F.when(value.try_cast("double").isNull(), value), ignorenulls=True).alias("example")
                          ).first()
        assert row is not None  # an aggregation without grouping returns one row
        if row["values"] == 0:
            if ref_num:
                cur_df = cur_df.withColumn(c, F.col(c).cast("double"))
            else:
                ref_df = ref_df.withColumn(c, F.col(c).cast("double"))
            continue
        found = f"non-numeric values (e.g. {row['example']!r})" if row["example"] is not None else \
            f"type {(cur_types if ref_num else ref_types)[c]}"
        raise DataError(f"{text_path}: column {c} has {found} but is numeric ({num_type}) in {num_path} "
                        f"(check: same column types); pass --categorical {c} to compare it as categories")
    return ref_df, cur_df
