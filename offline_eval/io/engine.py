"""The embedded Spark engine: one Spark Connect server on this machine, owning the Hive
metastore, that every task of every DAG run reaches as a thin client.

It is started with pyspark's own ``sbin/start-connect-server.sh`` (so ``stop-connect-server.sh``
and the Spark docs apply unchanged) and stopped by the PID that script records, never by
process name. Its master is ``OFFLINE_EVAL_SPARK_MASTER`` (``local[*]`` by default, or a
standalone cluster's ``spark://host:7077``); its PID file and logs live in
``$OFFLINE_EVAL_HOME/engine``.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from offline_eval.config import ConfigError, Settings, resource_dir
from offline_eval.io.spark import endpoint, reachable

log = logging.getLogger(__name__)

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
IDENT = "offline-eval"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "0.0.0.0")


def spark_home() -> Path:
    """The Spark distribution inside the pyspark wheel (bin/, sbin/, jars/)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@dataclass(frozen=True)
class EngineStatus:
    endpoint: str
    running: bool
    pid: int | None
    log: Path | None

    def describe(self) -> str:
        if self.running and self.pid:
            return f"Spark engine up at {self.endpoint} (pid {self.pid}, log {self.log})"
        if self.running:
            return f"a Spark Connect server answers at {self.endpoint} (not started from this state dir)"
        return f"no Spark engine at {self.endpoint}"


class Engine:
    """Start, stop and inspect the Spark Connect server of one ``Settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host, self.port = endpoint(settings.spark_remote)

    @property
    def pid_file(self) -> Path:
        # The name spark-daemon.sh gives it: spark-$SPARK_IDENT_STRING-<class>-<instance>.pid
        return self.settings.engine_dir / f"spark-{IDENT}-{SERVER_CLASS}-1.pid"

    @property
    def log_dir(self) -> Path:
        return self.settings.engine_dir / "logs"

    def env(self) -> dict[str, str]:
        """Environment of the server: its Python workers (Arrow UDFs) must use this interpreter,
        its log4j configuration is the project's, its PID file and logs go under the state dir."""
        # The server is the remote: spark-submit refuses to start one with SPARK_REMOTE set.
        env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
        env.update(
            SPARK_HOME=str(spark_home()),
            SPARK_PID_DIR=str(self.settings.engine_dir),
            SPARK_LOG_DIR=str(self.log_dir),
            SPARK_IDENT_STRING=IDENT,
            PYSPARK_PYTHON=os.environ.get("PYSPARK_PYTHON", sys.executable),
            SPARK_CONF_DIR=os.environ.get("SPARK_CONF_DIR", str(resource_dir("conf/spark"))),
        )
        if self.settings.spark_master.startswith("local"):
            env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        return env

    @property
    def properties_file(self) -> Path:
        return self.settings.engine_dir / "spark-defaults.conf"

    def properties(self) -> dict[str, str]:
        return {**self.settings.engine_conf(), "spark.connect.grpc.binding.address": self.host,
                "spark.connect.grpc.binding.port": str(self.port)}

    def write_properties(self) -> Path:
        """The engine's configuration as a Spark properties file readable by its owner only: a
        metastore password never appears on a command line (``ps`` shows those to everyone)."""
        self.settings.engine_dir.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{k} {v}\n" for k, v in sorted(self.properties().items()))
        fd = os.open(self.properties_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(self.properties_file, 0o600)
        return self.properties_file

    def command(self) -> list[str]:
        return [str(spark_home() / "sbin" / "start-connect-server.sh"),
                "--master", self.settings.spark_master,
                "--driver-memory", self.settings.engine_memory,
                "--properties-file", str(self.properties_file)]

    def run_foreground(self) -> None:
        """Replace this process with the server, in the foreground (a container's main process)."""
        if self.host not in LOCAL_HOSTS:
            raise ConfigError(f"SPARK_REMOTE={self.settings.spark_remote}: the engine binds a local address "
                              "(0.0.0.0 in a container)")
        self.write_properties()
        cmd = self.command()
        os.execve(cmd[0], [cmd[0], "--wait", *cmd[1:]], self.env())

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def log_file(self) -> Path | None:
        logs = sorted(self.log_dir.glob(f"spark-{IDENT}-{SERVER_CLASS}-1-*.out"))
        return logs[-1] if logs else None

    def status(self) -> EngineStatus:
        """Running when something answers at the endpoint; ``pid`` only when this state dir started it."""
        pid = self.pid()
        return EngineStatus(self.settings.spark_remote, reachable(self.settings.spark_remote), pid,
                            self.log_file() if pid else None)

    def start(self, timeout: float = 180.0) -> EngineStatus:
        """Launch the server unless one already answers; wait until it serves queries."""
        if self.host not in LOCAL_HOSTS:
            raise ConfigError(f"SPARK_REMOTE={self.settings.spark_remote} is not on this machine: the embedded "
                              "engine only serves on 127.0.0.1; start the cluster's Connect server there")
        if reachable(self.settings.spark_remote):
            status = self.status()
            if status.pid is None:
                log.info("a Spark Connect server not started from %s already answers at %s; using it",
                         self.settings.engine_dir, self.settings.spark_remote)
            return status
        self.settings.engine_dir.mkdir(parents=True, exist_ok=True)
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.pid_file.unlink(missing_ok=True)  # stale: its process is gone
        log.info("starting the Spark engine (master %s, %s driver memory) at %s", self.settings.spark_master,
                 self.settings.engine_memory, self.settings.spark_remote)
        self.write_properties()
        t0 = time.monotonic()
        proc = subprocess.run(self.command(), env=self.env(), capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"start-connect-server.sh failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        while time.monotonic() - t0 < timeout:
            if self.pid() is None and time.monotonic() - t0 > 5:
                raise RuntimeError(f"the Spark engine exited while starting; see {self.log_file()}:\n{self._tail()}")
            if reachable(self.settings.spark_remote) and self._answers():
                status = self.status()
                log.info("Spark engine up in %.1fs: %s", time.monotonic() - t0, status.describe())
                return status
            time.sleep(0.5)
        raise RuntimeError(f"the Spark engine did not answer within {timeout:.0f}s; see {self.log_file()}:\n"
                           f"{self._tail()}")

    def _answers(self) -> bool:
        """True once a client session can run a query (the port opens before the catalog is ready).
        The probe's session is released at once: a session left open would, at interpreter exit,
        try to release itself on an engine that may be gone, and retry for minutes."""
        from pyspark.sql import SparkSession

        try:
            spark = SparkSession.builder.remote(self.settings.spark_remote).create()
        except Exception:  # noqa: BLE001 - not ready yet; the caller retries until its timeout
            return False
        try:
            spark.sql("SELECT 1").collect()
            return True
        except Exception:  # noqa: BLE001
            return False
        finally:
            spark.stop()

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the server this state dir started (by its recorded PID); False if none ran."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            log.warning("the Spark engine (pid %d) did not stop within %.0fs: killing it", pid, timeout)
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        log.info("stopped the Spark engine (pid %d)", pid)
        return True

    def _tail(self, lines: int = 30) -> str:
        path = self.log_file()
        if path is None or not path.exists():
            return "(no log)"
        # The first line is the whole java command with its classpath: not worth showing.
        text = [ln for ln in path.read_text(errors="replace").splitlines() if not ln.startswith("Spark Command:")]
        return "\n".join(text[-lines:])
