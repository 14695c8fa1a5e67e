"""Schema checks on a partition's Parquet files, before any Spark read.

Spark reads a Hive table with the table's schema: a column missing from a day's files comes
back as all nulls and a column written with another type may be cast or fail deep inside a
job, so the GX suites on the DataFrame cannot see an upstream schema change. The files' own
footers can (pyarrow reads only the footer of each file, a few KB):

* ``column_present``: every contract column is in every data file of the partition;
* ``column_type``: its physical type is the one the contract's Spark type is written as;
* ``files_agree``: all files of the partition have the same columns and types;
* ``partition_complete``: no write in progress (Spark's ``_temporary``, ``.spark-staging-*``,
  a Hadoop ``*._COPYING_``), and every file has a readable footer.

Each finding names the column, the observed and the expected value. Warehouses that this
machine does not mount (an object store) are not checked here; their tables are read through
Spark only (``Tables.location`` says so)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from offline_eval.contract import TableSpec

# The Arrow types a contract (Spark SQL) type may be written as by Spark, pyarrow or a Hive writer.
_ARROW_TYPES = {
    "string": {"string", "large_string"},
    "int": {"int32"},
    "bigint": {"int64"},
    "double": {"double"},
    "float": {"float"},
    "boolean": {"bool"},
    "date": {"date32[day]"},
    "timestamp": {"timestamp[us]", "timestamp[ns]", "timestamp[ms]", "timestamp[us, tz=UTC]",
                  "timestamp[ns, tz=UTC]", "timestamp[ms, tz=UTC]", "timestamp[us, tz=Etc/UTC]"},
}
_IN_PROGRESS = ("_temporary", ".spark-staging", "._COPYING_")


@dataclass(frozen=True)
class Finding:
    check: str
    column: str | None
    observed: str
    expected: str

    def describe(self) -> str:
        where = f" on column {self.column}" if self.column else ""
        return f"{self.check}{where}: observed {self.observed}, expected {self.expected}"


def data_files(partition: Path) -> list[Path]:
    return sorted(p for p in partition.rglob("*") if p.is_file() and not p.name.startswith(("_", "."))
                  and not any(part.startswith(("_", ".")) for part in p.relative_to(partition).parts[:-1]))


def check_partition(spec: TableSpec, partition: Path) -> list[Finding]:
    """The findings for one partition directory (empty: the files match the contract)."""
    import pyarrow.parquet as pq

    findings: list[Finding] = []
    busy = sorted(p.name for p in partition.rglob("*") if any(m in p.name for m in _IN_PROGRESS))
    if busy:
        findings.append(Finding("partition_complete", None, f"a write in progress ({', '.join(busy[:3])})",
                                "a finished partition (retry once the writer is done)"))
    schemas: dict[str, dict[str, str]] = {}
    for f in data_files(partition):
        try:
            schema = pq.read_schema(f)
        except Exception as e:  # noqa: BLE001 - any unreadable footer is the same finding
            findings.append(Finding("partition_complete", None, f"file {f.name} unreadable ({type(e).__name__}: "
                                    f"{str(e).splitlines()[0][:120]})", "complete Parquet files"))
            continue
        schemas[f.name] = {n: str(t) for n, t in zip(schema.names, schema.types, strict=True)}
    if not schemas:
        return findings
    for column, sql_type in spec.columns:
        missing = sorted(name for name, s in schemas.items() if column not in s)
        if missing:
            findings.append(Finding("column_present", column, f"missing from {len(missing)} of {len(schemas)} "
                                    f"file(s) ({', '.join(missing[:2])}): Spark would read it as all null",
                                    f"column {column} {sql_type} in every file"))
            continue
        allowed = _ARROW_TYPES.get(sql_type)
        wrong = sorted({s[column] for s in schemas.values()} - allowed) if allowed else []
        if wrong and allowed:
            findings.append(Finding("column_type", column, f"type {', '.join(wrong)}", f"{sql_type} "
                                    f"({' or '.join(sorted(allowed))})"))
    variants = {tuple(sorted(s.items())) for s in schemas.values()}
    if len(variants) > 1:
        names = sorted(schemas)
        first = schemas[names[0]]
        other = next(n for n in names if schemas[n] != first)
        diff = sorted(set(first.items()) ^ set(schemas[other].items()))
        findings.append(Finding("files_agree", None, f"{len(variants)} different schemas among {len(schemas)} files "
                                f"({names[0]} vs {other} differ on {', '.join(f'{c} {t}' for c, t in diff[:4])})",
                                "one schema for the partition"))
    return findings
