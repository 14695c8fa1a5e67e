"""Plain input files (CSV or Parquet) read through the engine, for the commands that work on
any table (`offline-eval readout`, `offline-eval drift`)."""
from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from offline_eval.config import ConfigError
from offline_eval.errors import DataError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
SEPARATORS = (",", ";", "\t", "|")  # candidates of sniff_separator, the default first


def sniff_separator(path: Path) -> str:
    """The field separator of a CSV file, from its header line: the candidate that splits it into
    the most fields (quotes respected), ``,`` on a tie. Spreadsheets in many locales write ``;``."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        header = fh.readline(1 << 20)  # a header, not a whole file without line breaks
    widths = {sep: len(next(csv.reader([header], delimiter=sep), [])) for sep in SEPARATORS}
    return max(SEPARATORS, key=lambda sep: (widths[sep], sep == ","))


def read_table(spark: SparkSession, path: str) -> DataFrame:
    """CSV (header, inferred types, separator sniffed from the header) or Parquet by extension;
    a DataError naming the file when it is missing, empty (0 bytes) or unreadable, a ConfigError
    for any other extension. The schema is resolved here, so that a broken file fails now.

    The path is made absolute: the engine resolves it, and its working directory is not the
    caller's. (A file on this machine is visible to the embedded engine; a cluster needs a
    path on storage its executors share.) A UTF-8 byte order mark is dropped by Spark's CSV
    reader (the first column keeps its name)."""
    from pyspark.errors import AnalysisException
    from pyspark.errors.exceptions.connect import SparkException

    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise DataError(f"input {path} does not exist")
    if p.is_file() and p.stat().st_size == 0:
        raise DataError(f"input {path} is empty (0 bytes)")
    if p.suffix.lower() in (".csv", ".txt"):
        kind, reader = "CSV", spark.read.option("header", True).option("inferSchema", True)
        sep = sniff_separator(p) if p.is_file() else ","
        if sep != ",":
            log.info("input %s: fields separated by %r", path, sep)
            reader = reader.option("sep", sep)
        df = reader.csv(str(p))
    elif p.suffix.lower() in (".parquet", ".pq") or p.is_dir():
        kind, df = "Parquet", spark.read.parquet(str(p))
    else:
        raise ConfigError(f"input {path}: expected a .csv or .parquet file (or a Parquet directory)")
    try:
        df.columns  # noqa: B018 - resolves (and caches) the schema: reads the footer or infers the types
    except (AnalysisException, SparkException) as exc:  # the engine could not read the file
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise DataError(f"input {path}: cannot be read as {kind}: {first}") from exc
    return df


def prepare_output(path: str | None, option: str) -> Path | None:
    """The file an output option (``--out``, ``--html``...) names, checked before any work: its
    folder is created if missing (as ``mkdir -p``; the writers would create it too), and a path
    that cannot be written is a ConfigError at once rather than after the computation."""
    if not path:
        return None
    p = Path(path).expanduser()
    if p.is_dir():
        raise ConfigError(f"{option} {path}: is a folder, give a file name")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot create its folder {p.parent}: {exc.strerror or exc}") from exc
    if not os.access(p.parent, os.W_OK):
        raise ConfigError(f"{option} {path}: folder {p.parent} is not writable")
    return p
