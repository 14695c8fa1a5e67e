"""Typed, validated configuration.

Two objects:
- ``Settings``: where things live (local state, warehouse, MLflow, Spark master). Read from
  the environment once; the same code runs embedded or on a cluster by changing only these.
- ``DayConfig``: what one evaluation run is about (model, ds, cadence, windows, sample size).

Every identifier that later reaches SQL, a path or an MLflow filter is validated here, so the
IO layer can interpolate it without further escaping.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from offline_eval.dates import parse_ds
from offline_eval.errors import ConfigError

# Model names/versions/experiments end up in paths, MLflow filter strings and HTML.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
# Hive database / table names end up in SQL.
_SQL_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")

CADENCES = ("daily", "weekly")


def validate_identifier(value: str, what: str) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.match(value) or ".." in value:
        raise ConfigError(
            f"invalid {what} {value!r}: use 1-64 characters from [A-Za-z0-9_.-], "
            "starting with a letter or digit"
        )
    return value


def validate_sql_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SQL_NAME.match(value):
        raise ConfigError(f"invalid {what} {value!r}: use lower-case [a-z0-9_], not starting with a digit")
    return value


def _checkout() -> Path | None:
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").is_file() else None


def project_root() -> Path:
    """Where default locations (.local/, reports/) live: the checkout this package was installed
    from in editable mode (make install), else, for a package installed with `pip install .`,
    the current directory."""
    return _checkout() or Path.cwd()


def resource_dir(name: str) -> Path:
    """A folder shipped beside the package (``expectations``, ``conf/spark``, ``spark_jobs``):
    the checkout's, else the copy `pip install .` put under ``<prefix>/share/offline-eval/``."""
    root = _checkout()
    return root / name if root is not None else Path(sys.prefix) / "share" / "offline-eval" / name


def _env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    return Path(raw).expanduser().resolve() if raw else default


DEFAULT_SPARK_REMOTE = "sc://127.0.0.1:15002"

# The local engine's JIT (its JVM is driver and executors): C2 later and with less inlining.
# An engine of the embedded stack lives for a demo, a backfill or a test session, and much of
# its CPU went to the JIT warming up on Spark's large code base: at 300k impressions a day the
# first ten evaluations of a day on a fresh engine took 193 engine CPU seconds, of which the
# compiler threads about 100 (jstat -compiler), still 4 s of 12 at the tenth. With these
# thresholds (four to ten times HotSpot's) the same ten took 171 s at the same wall time: only
# methods that stay hot reach C2, and the data loops of a large day still do (their loop
# counters pass the back-edge threshold within one task). C1 only (-XX:TieredStopAtLevel=1):
# 229 s, and once warm 70% more CPU per evaluation than with C2. docs/benchmarks.md has the
# runs; OFFLINE_EVAL_DRIVER_JAVA_OPTS overrides any of them (a later flag wins).
LOCAL_ENGINE_JIT_OPTS = (
    "-XX:Tier4InvocationThreshold=50000 -XX:Tier4MinInvocationThreshold=6000 -XX:Tier4CompileThreshold=150000 "
    "-XX:Tier4BackEdgeThreshold=400000 -XX:MaxInlineLevel=9 -XX:InlineSmallCode=1500"
)


@dataclass(frozen=True)
class Settings:
    """Where the pipeline keeps its state and which Spark engine it talks to.

    Every Spark task is a thin client of one long-lived Spark Connect server (the engine):
    ``spark_remote`` says where it is. ``offline-eval engine start`` launches an embedded one
    on this machine (master ``spark_master``, Hive metastore, warehouse); on a cluster,
    SPARK_REMOTE points at the cluster's Connect endpoint and nothing else changes.

    Environment variables (all optional):
    OFFLINE_EVAL_HOME (default <repo>/.local), OFFLINE_EVAL_REPORTS (default <repo>/reports),
    OFFLINE_EVAL_DATABASE (default offline_eval), SPARK_REMOTE (default sc://127.0.0.1:15002),
    OFFLINE_EVAL_SPARK_MASTER (master of the engine this machine launches, default local[*]),
    OFFLINE_EVAL_ENGINE_MEMORY (its driver memory, default 6g), OFFLINE_EVAL_SPARK_UI_PORT
    (default 4040; 0 turns the UI off), OFFLINE_EVAL_WAREHOUSE (default <home>/warehouse),
    OFFLINE_EVAL_HIVE_METASTORE_URI (thrift://... to use a metastore service instead of embedded
    Derby), or OFFLINE_EVAL_METASTORE_JDBC_URL (jdbc:postgresql://... : the engine's own
    metastore client on a shared database; user and password in OFFLINE_EVAL_METASTORE_USER and
    OFFLINE_EVAL_METASTORE_PASSWORD), OFFLINE_EVAL_ENGINE_JARS (comma-separated jars for the
    engine's classpath, e.g. the JDBC driver), OFFLINE_EVAL_EXECUTOR_MEMORY (default 1g, for a
    cluster master), OFFLINE_EVAL_DRIVER_HOST (the name executors reach the engine by, in a
    container), OFFLINE_EVAL_SHUFFLE_PARTITIONS (default 4), OFFLINE_EVAL_DRIVER_JAVA_OPTS,
    OFFLINE_EVAL_SHARED_SESSION (default 1: tasks join one engine session, io/spark.py; 0: each
    task opens its own),
    MLFLOW_TRACKING_URI (default sqlite:///<home>/mlflow/mlflow.db), MLFLOW_REGISTRY_URI (the
    model registry; default the tracking URI, as MLflow does; ``none`` registers nothing).
    """

    home: Path
    reports_dir: Path
    database: str = "offline_eval"
    spark_remote: str = DEFAULT_SPARK_REMOTE
    spark_master: str = "local[*]"
    engine_memory: str = "6g"
    spark_ui_port: int = 4040
    warehouse_dir: str = ""
    hive_metastore_uri: str = ""
    metastore_jdbc_url: str = ""
    metastore_user: str = ""
    metastore_password: str = field(default="", repr=False)  # from the environment only
    engine_jars: str = ""
    executor_memory: str = "1g"
    driver_host: str = ""
    mlflow_tracking_uri: str = ""
    # "" = the tracking store's own registry (MLflow's default); "none" = no registry.
    mlflow_registry_uri: str = ""
    shuffle_partitions: int = 4
    # How many of a day's independent passes compute runs at once (metrics.day.evaluate's workers):
    # 3 when days go one at a time, so that one day uses both cores of the embedded engine; 1 when
    # several days share the engine's cores (docs/deployment.md).
    evaluate_workers: int = 3
    driver_java_opts: str = ""
    shared_session: bool = True
    # Where alert messages link to the MLflow UI; and, when set, the folder that receives every
    # alert delivery as a file instead of sending it (the embedded stack: .local/outbox).
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    outbox: str = ""

    def __post_init__(self) -> None:
        validate_sql_name(self.database, "database name")
        if not re.fullmatch(r"https?://[^\s\"'<>]+", self.mlflow_ui_url):
            raise ConfigError(f"invalid OFFLINE_EVAL_MLFLOW_UI_URL {self.mlflow_ui_url!r}: an http(s) URL")
        object.__setattr__(self, "mlflow_ui_url", self.mlflow_ui_url.rstrip("/"))
        if not self.spark_remote.startswith("sc://"):
            raise ConfigError(f"invalid SPARK_REMOTE {self.spark_remote!r}: a Spark Connect URL, sc://host:port")
        for name, value in (("OFFLINE_EVAL_ENGINE_MEMORY", self.engine_memory),
                            ("OFFLINE_EVAL_EXECUTOR_MEMORY", self.executor_memory)):
            if not re.fullmatch(r"\d+[kmgt]", value, re.I):
                raise ConfigError(f"invalid {name} {value!r}: e.g. 4g or 2048m")
        if not 1 <= self.evaluate_workers <= 16:
            raise ConfigError(f"invalid OFFLINE_EVAL_EVALUATE_WORKERS {self.evaluate_workers}: 1 to 16 passes at once")
        if self.metastore_jdbc_url and not self.metastore_jdbc_url.startswith("jdbc:"):
            raise ConfigError(f"invalid OFFLINE_EVAL_METASTORE_JDBC_URL {self.metastore_jdbc_url!r}: a jdbc: URL")
        if self.metastore_jdbc_url and self.hive_metastore_uri:
            raise ConfigError("set OFFLINE_EVAL_HIVE_METASTORE_URI (a metastore service) or "
                              "OFFLINE_EVAL_METASTORE_JDBC_URL (its database), not both")
        if not self.warehouse_dir:
            object.__setattr__(self, "warehouse_dir", str(self.home / "warehouse"))
        if not self.mlflow_tracking_uri:
            object.__setattr__(self, "mlflow_tracking_uri", f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}")

    @classmethod
    def from_env(cls) -> Settings:
        root = project_root()
        home = _env_path("OFFLINE_EVAL_HOME", root / ".local")
        return cls(
            home=home,
            reports_dir=_env_path("OFFLINE_EVAL_REPORTS", root / "reports"),
            database=os.environ.get("OFFLINE_EVAL_DATABASE", "offline_eval"),
            spark_remote=os.environ.get("SPARK_REMOTE") or DEFAULT_SPARK_REMOTE,
            spark_master=os.environ.get("OFFLINE_EVAL_SPARK_MASTER", "local[*]"),
            engine_memory=os.environ.get("OFFLINE_EVAL_ENGINE_MEMORY", "6g"),
            spark_ui_port=_env_int("OFFLINE_EVAL_SPARK_UI_PORT", 4040),
            warehouse_dir=os.environ.get("OFFLINE_EVAL_WAREHOUSE", ""),
            hive_metastore_uri=os.environ.get("OFFLINE_EVAL_HIVE_METASTORE_URI", ""),
            metastore_jdbc_url=os.environ.get("OFFLINE_EVAL_METASTORE_JDBC_URL", ""),
            metastore_user=os.environ.get("OFFLINE_EVAL_METASTORE_USER", ""),
            metastore_password=os.environ.get("OFFLINE_EVAL_METASTORE_PASSWORD", ""),
            engine_jars=os.environ.get("OFFLINE_EVAL_ENGINE_JARS", ""),
            executor_memory=os.environ.get("OFFLINE_EVAL_EXECUTOR_MEMORY", "1g"),
            driver_host=os.environ.get("OFFLINE_EVAL_DRIVER_HOST", ""),
            mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", ""),
            mlflow_registry_uri=os.environ.get("MLFLOW_REGISTRY_URI", ""),
            shuffle_partitions=_env_int("OFFLINE_EVAL_SHUFFLE_PARTITIONS", cls.shuffle_partitions),
            evaluate_workers=_env_int("OFFLINE_EVAL_EVALUATE_WORKERS", cls.evaluate_workers),
            driver_java_opts=os.environ.get("OFFLINE_EVAL_DRIVER_JAVA_OPTS", ""),
            shared_session=_env_flag("OFFLINE_EVAL_SHARED_SESSION", True),
            mlflow_ui_url=os.environ.get("OFFLINE_EVAL_MLFLOW_UI_URL") or "http://127.0.0.1:5000",
            outbox=os.environ.get("OFFLINE_EVAL_OUTBOX", ""),
        )

    @property
    def metastore_dir(self) -> Path:
        return self.home / "metastore_db"

    @property
    def engine_dir(self) -> Path:
        """PID file and logs of the Spark Connect server this machine launches."""
        return self.home / "engine"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlflow" / "artifacts"

    @property
    def evidently_workspace(self) -> Path:
        """The local Evidently workspace (a project per model) that `make evidently-ui` serves."""
        return self.home / "evidently"

    def session_conf(self) -> dict[str, str]:
        """Properties every client session sets for itself (runtime SQL settings), so that the
        pipeline behaves the same on any Connect endpoint, whoever started it."""
        return {
            # Overwrite exactly the partitions present in the written DataFrame (ds), never the table.
            "spark.sql.sources.partitionOverwriteMode": "dynamic",
            # ds stays a string "yyyy-MM-dd" instead of being inferred as a date.
            "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            # A day's inputs and its impression-grain rows are cached once and read a few times:
            # compressing the cache cost more CPU (per-column encoding statistics) than it saved.
            "spark.sql.inMemoryColumnarStorage.compressed": "false",
            # Each server session keeps the file listings of the partitions it has read, and a
            # write in another session (a task of the next hour's shared session, a rerun) does
            # not invalidate them: the first session would then read deleted files. A day's
            # partition has a few files, so listing them at each read costs next to nothing.
            "spark.sql.hive.filesourcePartitionFileCacheSize": "0",
        }

    def engine_conf(self) -> dict[str, str]:
        """Properties of the Spark Connect server itself: the static ones (catalog, metastore,
        warehouse, JVM) that a client cannot change, and the session defaults."""
        conf = {
            "spark.sql.warehouse.dir": self.warehouse_dir,
            "spark.sql.catalogImplementation": "hive",
            # Several tasks (and days) share the engine: small jobs should not queue behind big ones.
            "spark.scheduler.mode": "FAIR",
            "spark.ui.showConsoleProgress": "false",
            # Spark compiles each query stage's generated Java with Janino and keeps the classes
            # in an LRU cache of 100 entries by default. One evaluated day runs about 400
            # distinct ones, so the cache thrashed: every day compiled them again, and the JVM
            # then JIT-compiled the new classes again (a third of the engine's CPU in the demo).
            # With room for them, the same stages of the next day are cache hits.
            "spark.sql.codegen.cache.maxEntries": "4000",
            **self.session_conf(),
        }
        java_opts = ""
        if self.hive_metastore_uri:
            conf["spark.hadoop.hive.metastore.uris"] = self.hive_metastore_uri
        elif self.metastore_jdbc_url:
            # Spark's built-in Hive client is the metastore, on a shared database: it creates the
            # schema on first use (no Hive distribution needed).
            conf.update({
                "spark.hadoop.javax.jdo.option.ConnectionURL": self.metastore_jdbc_url,
                "spark.hadoop.javax.jdo.option.ConnectionDriverName": _jdbc_driver(self.metastore_jdbc_url),
                "spark.hadoop.javax.jdo.option.ConnectionUserName": self.metastore_user,
                "spark.hadoop.javax.jdo.option.ConnectionPassword": self.metastore_password,
                # Tables and columns, but no foreign keys (autoCreateAll would imply them):
                # DataNucleus adds them lazily, from a second connection, while the first still
                # holds the locks of the row it is inserting, and on PostgreSQL that DDL waits
                # forever (seen: ALTER TABLE "TBL_PRIVS" ADD CONSTRAINT ... REFERENCES "TBLS"
                # behind an open INSERT INTO "TBLS"). Hive's schematool creates them up front.
                "spark.hadoop.datanucleus.schema.autoCreateTables": "true",
                "spark.hadoop.datanucleus.schema.autoCreateColumns": "true",
                "spark.hadoop.datanucleus.schema.autoCreateConstraints": "false",
                "spark.hadoop.hive.metastore.schema.verification": "false",
            })
        else:
            conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
                f"jdbc:derby:;databaseName={self.metastore_dir};create=true"
            )
            # Keep derby.log under the state dir instead of the current directory.
            java_opts = f"-Dderby.system.home={self.home} -Dderby.stream.error.file={self.home / 'derby.log'}"
        if self.spark_master.startswith("local"):
            java_opts = f"{java_opts} {LOCAL_ENGINE_JIT_OPTS}".strip()
        if self.driver_java_opts:  # last, so that a flag given here wins
            java_opts = f"{java_opts} {self.driver_java_opts}".strip()
        if java_opts:
            conf["spark.driver.extraJavaOptions"] = java_opts
        if self.spark_ui_port:
            conf["spark.ui.port"] = str(self.spark_ui_port)
        else:
            conf["spark.ui.enabled"] = "false"
        if self.engine_jars:
            jars = [j.strip() for j in self.engine_jars.split(",") if j.strip()]
            missing = [j for j in jars if not Path(j).exists()]
            if missing:
                raise ConfigError(f"OFFLINE_EVAL_ENGINE_JARS: {missing} not found (the PostgreSQL JDBC driver comes "
                                  "with Debian's libpostgresql-jdbc-java: /usr/share/java/postgresql.jar)")
            conf["spark.jars"] = ",".join(jars)
            conf["spark.driver.extraClassPath"] = ":".join(jars)  # JDBC drivers must be on the system classpath
        if self.driver_host:
            # Executors on other hosts connect back to the engine (the driver) by this name.
            conf["spark.driver.host"] = self.driver_host
            conf["spark.driver.bindAddress"] = "0.0.0.0"
        if not self.spark_master.startswith("local"):
            conf["spark.executor.memory"] = self.executor_memory
            # Executors run the profile pass in Python: the same interpreter (and numpy, pyarrow).
            conf["spark.pyspark.python"] = os.environ.get("PYSPARK_PYTHON", sys.executable)
        return conf


def _jdbc_driver(url: str) -> str:
    drivers = {"jdbc:postgresql:": "org.postgresql.Driver", "jdbc:mysql:": "com.mysql.cj.jdbc.Driver",
               "jdbc:derby:": "org.apache.derby.jdbc.EmbeddedDriver"}
    for prefix, driver in drivers.items():
        if url.startswith(prefix):
            return driver
    raise ConfigError(f"OFFLINE_EVAL_METASTORE_JDBC_URL {url!r}: a PostgreSQL, MySQL or Derby URL")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"invalid {name} {raw!r}: an integer") from None


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"invalid {name} {raw!r}: 1 or 0")


@dataclass(frozen=True)
class DayConfig:
    """One evaluation run: which day, which cadence, and the knobs of the metrics."""

    ds: str
    cadence: str = "daily"
    new_user_days: int = 7
    new_item_days: int = 7
    repurchase_lookback_days: int = 30
    sample_rows: int = 50_000  # Thresholds.sample_rows
    extra_tags: dict[str, str] = field(default_factory=dict)
    #: ``ds`` parsed once; the string stays the partition value written to tables and paths.
    date: dt.date = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "date", parse_ds(self.ds))
        object.__setattr__(self, "ds", self.date.isoformat())
        if self.cadence not in CADENCES:
            raise ConfigError(f"invalid cadence {self.cadence!r}: one of {CADENCES}")
        for name in ("new_user_days", "new_item_days", "repurchase_lookback_days"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 100 <= self.sample_rows <= 5_000_000:
            raise ConfigError(f"sample_rows must be within [100, 5000000], got {self.sample_rows}")

    def ds_offset(self, days: int) -> str:
        return (self.date + dt.timedelta(days=days)).isoformat()
