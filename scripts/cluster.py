"""A multi-process deployment of the pipeline on this machine, from the installed packages only:

* PostgreSQL (the machine's server binaries) with three databases: Airflow's metadata, the Hive
  metastore and MLflow's tracking store;
* a Spark standalone master and one worker (pyspark's ``spark-class``);
* the Spark engine: the Spark Connect server, its master the standalone master, its metastore
  Spark's Hive client on the PostgreSQL database (JDBC driver from Debian's
  libpostgresql-jdbc-java);
* an MLflow tracking server (``mlflow server``) on PostgreSQL, serving artifacts over HTTP.

    python scripts/cluster.py up | env | status | down     (make cluster-up / cluster-env / cluster-down)

``env`` prints the exports that point the pipeline at it: the only configuration that differs
from the embedded default. ``down`` stops exactly the processes ``up`` started, by the PIDs
recorded under $OFFLINE_EVAL_HOME/cluster (each in its own process group), never by name.
Passwords are generated once into that directory (mode 600); nothing secret is in the repo.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOME = Path(os.environ.get("OFFLINE_EVAL_HOME", ROOT / ".local")).resolve()
DIR = HOME / "cluster"
PORTS = {  # OFFLINE_EVAL_CLUSTER_<NAME>_PORT overrides each
    "postgres": 55432, "master": 17077, "master_ui": 18080, "worker_ui": 18081, "engine": 15012,
    "engine_ui": 14041, "mlflow": 15050,
}
JDBC_JAR = os.environ.get("OFFLINE_EVAL_JDBC_JAR", "/usr/share/java/postgresql.jar")
USER = "offline_eval"
DATABASES = ("airflow", "metastore", "mlflow")
ORDER = ("postgres", "master", "worker", "mlflow")  # started in this order; the engine after the worker


def port(name: str) -> int:
    return int(os.environ.get(f"OFFLINE_EVAL_CLUSTER_{name.upper()}_PORT", PORTS[name]))


def password() -> str:
    path = DIR / "postgres.password"
    if not path.exists():
        DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def exports() -> dict[str, str]:
    """What points the pipeline at this stack."""
    pw = password()
    pg = f"127.0.0.1:{port('postgres')}"
    return {
        "SPARK_REMOTE": f"sc://127.0.0.1:{port('engine')}",
        # The tables' files: the engine's warehouse (on a real cluster, the shared store both
        # sides mount); the generator and the readers of result partitions use it directly.
        "OFFLINE_EVAL_WAREHOUSE": str(DIR / "warehouse"),
        "AIRFLOW_CONN_SPARK_CONNECT_DEFAULT": json.dumps(
            {"conn_type": "spark_connect", "host": "sc://127.0.0.1", "port": port("engine")}),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port('mlflow')}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{USER}:{pw}@{pg}/airflow",
    }


def engine_env() -> dict[str, str]:
    """The engine's settings (read by offline_eval.config.Settings in `offline-eval engine`)."""
    return {
        "OFFLINE_EVAL_HOME": str(DIR / "engine-home"),
        "OFFLINE_EVAL_WAREHOUSE": str(DIR / "warehouse"),
        "SPARK_REMOTE": f"sc://127.0.0.1:{port('engine')}",
        "OFFLINE_EVAL_SPARK_MASTER": f"spark://127.0.0.1:{port('master')}",
        "OFFLINE_EVAL_SPARK_UI_PORT": str(port("engine_ui")),
        "OFFLINE_EVAL_ENGINE_MEMORY": os.environ.get("OFFLINE_EVAL_ENGINE_MEMORY", "2g"),
        "OFFLINE_EVAL_EXECUTOR_MEMORY": os.environ.get("OFFLINE_EVAL_EXECUTOR_MEMORY", "2g"),
        "OFFLINE_EVAL_METASTORE_JDBC_URL": f"jdbc:postgresql://127.0.0.1:{port('postgres')}/metastore",
        "OFFLINE_EVAL_METASTORE_USER": USER,
        "OFFLINE_EVAL_METASTORE_PASSWORD": password(),
        "OFFLINE_EVAL_ENGINE_JARS": JDBC_JAR,
    }


# ---------------------------------------------------------------- processes

def pid_file(name: str) -> Path:
    return DIR / "pids" / f"{name}.pid"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def recorded(name: str) -> int | None:
    try:
        pid = int(pid_file(name).read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def spawn(name: str, cmd: list[str], env: dict[str, str] | None = None, user: str | None = None) -> int:
    """Start ``cmd`` in its own session (so ``down`` can signal its whole process group) and
    record its PID."""
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    (DIR / "logs").mkdir(parents=True, exist_ok=True)
    pid_file(name).parent.mkdir(parents=True, exist_ok=True)
    log = open(DIR / "logs" / f"{name}.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    pid_file(name).write_text(str(proc.pid))
    return proc.pid


def wait_for(what: str, check, timeout: float = 120.0, name: str | None = None) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            print(f"   {what} up ({time.monotonic() - t0:.1f}s)", flush=True)
            return
        if name and recorded(name) is None and time.monotonic() - t0 > 2:
            break
        time.sleep(0.5)
    log = DIR / "logs" / f"{name or what}.log"
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""
    raise SystemExit(f"{what} did not come up; {log}:\n{tail}")


def listening(p: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", p), timeout=1):
            return True
    except OSError:
        return False


def http_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- components

def pg_bin(tool: str) -> str:
    found = shutil.which(tool) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))), None)
    if not found:
        raise SystemExit(f"PostgreSQL's {tool} not found: install the postgresql package (Debian) or set PATH")
    return str(found)


def pg_dir() -> tuple[Path, str | None]:
    """PostgreSQL's own directory (data and socket) and the user it runs as. PostgreSQL refuses to
    run as root: as root, the server runs as the ``postgres`` user from a directory of its own
    under /var/tmp (keyed by this stack's directory), since it may not be able to traverse
    $OFFLINE_EVAL_HOME; ``$OFFLINE_EVAL_HOME/cluster/pgdata`` links to it."""
    if os.geteuid() != 0:
        return DIR / "postgres", None
    import hashlib

    return Path("/var/tmp") / f"offline-eval-postgres-{hashlib.sha1(str(DIR).encode()).hexdigest()[:12]}", "postgres"


def start_postgres() -> None:
    base, as_user = pg_dir()
    data = base / "data"
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o700)
        pwfile = base / "pwfile"
        pwfile.write_text(password() + "\n")
        if as_user:
            for p in (base, data, pwfile):
                shutil.chown(p, as_user)
        cmd = [pg_bin("initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256", f"--pwfile={pwfile}",
               "-E", "UTF8"]
        init = subprocess.run(["runuser", "-u", as_user, "--", *cmd] if as_user else cmd, capture_output=True,
                              text=True)
        pwfile.unlink()
        if init.returncode != 0:
            raise SystemExit(f"initdb failed ({init.returncode}):\n{init.stdout[-2000:]}{init.stderr[-2000:]}")
    link = DIR / "pgdata"
    if as_user and not link.exists():
        link.symlink_to(base)
    sock = base / "socket"
    sock.mkdir(exist_ok=True)
    if as_user:
        shutil.chown(sock, as_user)
    spawn("postgres", [pg_bin("postgres"), "-D", str(data), "-p", str(port("postgres")), "-h", "127.0.0.1",
                       "-k", str(sock)], user=as_user)
    wait_for("PostgreSQL", lambda: listening(port("postgres")), name="postgres")
    import psycopg2

    for _ in range(20):  # accepting connections a moment after the port opens
        try:
            con = psycopg2.connect(host="127.0.0.1", port=port("postgres"), user=USER, password=password(),
                                   dbname="postgres")
            break
        except psycopg2.OperationalError:
            time.sleep(0.5)
    con.autocommit = True
    with con.cursor() as cur:
        for db in DATABASES:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
            if not cur.fetchone():
                cur.execute(f'CREATE DATABASE "{db}"')
    con.close()


def spark_class(*args: str) -> list[str]:
    import pyspark

    return [str(Path(pyspark.__file__).parent / "bin" / "spark-class"), *args]


def spark_env() -> dict[str, str]:
    return {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
            "SPARK_CONF_DIR": str(ROOT / "conf" / "spark"), "SPARK_WORKER_DIR": str(DIR / "worker")}


def start_master() -> None:
    spawn("master", spark_class("org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port",
                                str(port("master")), "--webui-port", str(port("master_ui"))), env=spark_env())
    wait_for("Spark master", lambda: http_json(f"http://127.0.0.1:{port('master_ui')}/json") is not None, name="master")


def start_worker() -> None:
    cores = os.environ.get("OFFLINE_EVAL_CLUSTER_WORKER_CORES", str(os.cpu_count() or 2))
    memory = os.environ.get("OFFLINE_EVAL_CLUSTER_WORKER_MEMORY", "3g")
    spawn("worker", spark_class("org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port('master')}",
                                "--host", "127.0.0.1", "--cores", cores, "--memory", memory, "--webui-port",
                                str(port("worker_ui"))), env=spark_env())

    def registered() -> bool:
        state = http_json(f"http://127.0.0.1:{port('master_ui')}/json") or {}
        return any(w.get("state") == "ALIVE" for w in state.get("workers", []))
    wait_for("Spark worker", registered, name="worker")


def engine_cmd(action: str) -> list[str]:
    return [sys.executable, "-m", "offline_eval.cli", "engine", action]


def start_engine() -> None:
    env = {**os.environ, **engine_env()}
    subprocess.run(engine_cmd("start"), env=env, check=True)


def start_mlflow() -> None:
    artifacts = DIR / "mlflow-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    backend = f"postgresql+psycopg2://{USER}:{password()}@127.0.0.1:{port('postgres')}/mlflow"
    spawn("mlflow", [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port",
                     str(port("mlflow")), "--artifacts-destination", artifacts.as_uri(), "--serve-artifacts",
                     "--workers", "1"],
          # The store URI holds the password: from the environment, not the command line (ps).
          # No server-side job runner: the pipeline submits no MLflow jobs (six processes fewer).
          env={"MLFLOW_BACKEND_STORE_URI": backend, "MLFLOW_ENABLE_TELEMETRY": "false",
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    wait_for("MLflow server", lambda: http_json(f"http://127.0.0.1:{port('mlflow')}/health") is not None
             or _ok(f"http://127.0.0.1:{port('mlflow')}/health"), timeout=180, name="mlflow")


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status == 200
    except OSError:
        return False


# ---------------------------------------------------------------- commands

def up() -> int:
    if not Path(JDBC_JAR).exists():
        raise SystemExit(f"{JDBC_JAR} not found: install Debian's libpostgresql-jdbc-java "
                         "(apt-get install libpostgresql-jdbc-java), or set OFFLINE_EVAL_JDBC_JAR")
    DIR.mkdir(parents=True, exist_ok=True)
    steps = {"postgres": start_postgres, "master": start_master, "worker": start_worker, "mlflow": start_mlflow}
    for name in ORDER:
        if recorded(name):
            print(f"   {name} already running (pid {recorded(name)})")
            continue
        print(f"-> starting {name}", flush=True)
        steps[name]()
        if name == "worker":
            print("-> starting the Spark engine (Spark Connect server on the standalone master)", flush=True)
            start_engine()
    print("\nThe pipeline runs on this stack with:\n" + env_text())
    return 0


def down(purge: bool = False) -> int:
    subprocess.run(engine_cmd("stop"), env={**os.environ, **engine_env()})
    for name in reversed(ORDER):
        pid = recorded(name)
        if pid is None:
            pid_file(name).unlink(missing_ok=True)
            continue
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for _ in range(60):
            if not alive(pid):
                break
            time.sleep(0.5)
        else:
            os.killpg(pid, signal.SIGKILL)
        pid_file(name).unlink(missing_ok=True)
        print(f"-> stopped {name} (pid {pid})")
    if purge:  # the databases too (the rest of the stack's state is under $OFFLINE_EVAL_HOME/cluster)
        shutil.rmtree(pg_dir()[0], ignore_errors=True)
        shutil.rmtree(DIR, ignore_errors=True)
        print(f"-> removed the stack's state ({DIR}, {pg_dir()[0]})")
    return 0


def status() -> int:
    up_ = True
    for name in ORDER:
        pid = recorded(name)
        up_ &= pid is not None
        print(f"{name:9s} {'pid ' + str(pid) if pid else 'not running'}")
    engine = subprocess.run(engine_cmd("status"), env={**os.environ, **engine_env()}, capture_output=True, text=True)
    print(f"engine    {engine.stdout.strip()}")
    return 0 if up_ and engine.returncode == 0 else 1


def env_text() -> str:
    return "\n".join(f"export {k}={_quote(v)}" for k, v in exports().items())


def _quote(v: str) -> str:
    return "'" + v.replace("'", "'\\''") + "'"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["up", "down", "env", "status"])
    p.add_argument("--purge", action="store_true", help="with down: also remove the databases and the warehouse")
    a = p.parse_args()
    if a.command == "env":
        print(env_text())
        return 0
    if a.command == "down":
        return down(a.purge)
    return {"up": up, "status": status}[a.command]()


if __name__ == "__main__":
    sys.exit(main())
