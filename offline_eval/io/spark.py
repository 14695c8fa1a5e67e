"""Client sessions of the Spark engine: every task is a thin Spark Connect client.

The engine is one long-lived Spark Connect server (``offline_eval.io.engine`` launches the
embedded one; on a cluster SPARK_REMOTE points at its endpoint). A client session costs
about half a second, shares the server's JVM, catalog and cache with every other task, and
holds no data of its own: the JVM starts once for the whole backfill, not twice a day.

**One server session for all tasks.** Spark keys its cache of generated code by the class
loader, and a Connect server gives every session its own. A task in a session of its own
therefore compiled every query stage again (about 300 Janino classes for a 300k day's compute,
then the JVM's JIT on them): 12.9 s for the day's evaluation, against 8.4 s in a session that
had evaluated a day before (docs/benchmarks.md). So clients join one server session, by a
``session_id`` every client computes alike (``shared_session_id``: the endpoint, the session
settings and the UTC hour). They never release it (closing a task's client leaves the session
to the others); the server drops it an hour after its last use, and the next hour's id is a
new one. A session someone released anyway is replaced by a private one, with a warning.
Sessions are only state here: temporary views of the pipeline are global (``global_temp``) and
its session settings are the same for every client of one id. OFFLINE_EVAL_SHARED_SESSION=0
gives every client its own session.
"""
from __future__ import annotations

import atexit
import json
import logging
import socket
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast
from urllib.parse import urlparse

from offline_eval.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.session import SparkSession as ConnectSession


log = logging.getLogger(__name__)

# The namespace of the shared sessions' ids (uuid5 of a description of the session).
SESSION_NAMESPACE = uuid.UUID("5d0f3c1e-7a44-4c55-9b1e-0ffe1e7a1c0d")
_shared: dict[str, ConnectSession] = {}  # this process's clients, by URL


class EngineUnavailable(RuntimeError):
    """No Spark Connect server answers at SPARK_REMOTE. Retryable: the engine may be restarting."""


def endpoint(remote: str) -> tuple[str, int]:
    """(host, port) of a Spark Connect URL ``sc://host:port/;params`` (port 15002 by default)."""
    url = urlparse(remote)
    return url.hostname or "localhost", url.port or 15002


def reachable(remote: str, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(endpoint(remote), timeout=timeout):
            return True
    except OSError:
        return False


def get_spark(settings: Settings | None = None, *, tag: str | None = None) -> SparkSession:
    """A client session of the engine at ``settings.spark_remote``, with the pipeline's session
    settings. ``tag`` labels the session's Spark jobs (visible in the Spark UI, and what
    ``interruptTag`` would cancel)."""

    settings = settings or Settings.from_env()
    if not reachable(settings.spark_remote):
        raise EngineUnavailable(
            f"no Spark engine answers at {settings.spark_remote}: start the embedded one with "
            "`make engine-up` (offline-eval engine start), or point SPARK_REMOTE at your cluster's "
            "Spark Connect endpoint (docs/deployment.md)")
    spark = connect(settings.spark_remote, settings)
    if tag:
        spark.addTag(tag)
    return spark


def shared_session_id(remote: str, conf: dict[str, str], now: datetime | None = None) -> str:
    """The id of the server session that every client of ``remote`` with session settings
    ``conf`` joins during the UTC hour of ``now``: the same in every process, a new one each
    hour (the server forgets an idle session after an hour, and never takes a released id back)."""
    host, port = endpoint(remote)
    hour = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H")
    key = json.dumps({"endpoint": f"{host}:{port}", "conf": conf, "hour": hour}, sort_keys=True)
    return str(uuid.uuid5(SESSION_NAMESPACE, key))


def with_session_id(remote: str, session_id: str) -> str:
    """``remote`` (``sc://host:port/;param=value;...``) with its ``session_id`` parameter set,
    its other parameters (token, user_id, use_ssl) kept."""
    base, _, params = remote.partition(";")
    kept = [p for p in params.split(";") if p and not p.startswith("session_id=")]
    return ";".join([base.rstrip("/") + "/", *kept, f"session_id={session_id}"])


def connect(remote: str, settings: Settings) -> SparkSession:
    """A configured client of the engine at ``remote``: in the shared server session (see the
    module's docstring) unless ``settings.shared_session`` is off."""
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    from pyspark.sql import SparkSession

    if not settings.shared_session:
        return configure(SparkSession.builder.remote(remote).getOrCreate(), settings)
    url = with_session_id(remote, shared_session_id(remote, settings.session_conf()))
    spark = _shared.get(url)
    if spark is not None and not spark.is_stopped:
        return cast("SparkSession", spark)
    # pyspark's own builder (not the Connect class's): it also switches pyspark.sql.functions
    # to Spark Connect for this process.
    spark = cast("ConnectSession", SparkSession.builder.remote(url).create())
    # stop() closes this client only: the session belongs to every task of the hour.
    spark.release_session_on_close = False
    try:
        configure(cast("SparkSession", spark), settings)
    except SparkConnectGrpcException as exc:
        if "SESSION_CLOSED" not in str(exc):
            raise
        spark.stop()
        log.warning("the engine's shared session of this hour was released: this client opens a session of "
                    "its own (it compiles its query stages again)")
        # A private session, released when the process ends.
        spark = cast("ConnectSession", configure(SparkSession.builder.remote(remote).create(), settings))
    # Registered again after each new client, so that it runs before the atexit hook pyspark
    # gives every client (hooks run last-registered first), which would otherwise send an
    # RPC from a client left open, and keep retrying it if the engine is gone.
    atexit.unregister(_close_shared)
    atexit.register(_close_shared)
    _shared[url] = spark
    return cast("SparkSession", spark)


def _close_shared() -> None:
    """Close this process's shared clients at exit, while gRPC's threads still run: left to
    the interpreter's final garbage collection, a client's close waited for them forever (an
    ``airflow dags test`` process hung at exit)."""
    for spark in list(_shared.values()):
        try:
            spark.stop()  # a shared session's client only: the session stays for the others
        except Exception:  # noqa: BLE001 - exiting anyway
            log.debug("closing a shared client at exit failed", exc_info=True)
    _shared.clear()


def configure(spark: SparkSession, settings: Settings | None = None) -> SparkSession:
    """Apply the pipeline's session settings to a session someone else created (an Airflow
    ``@task.pyspark`` task gets its session from the connection)."""
    for key, value in (settings or Settings.from_env()).session_conf().items():
        spark.conf.set(key, value)
    return spark
