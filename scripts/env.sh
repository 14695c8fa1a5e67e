# Environment of the embedded stack. Source it from the repository root:  . scripts/env.sh
# Every value can be overridden by exporting it first (e.g. OFFLINE_EVAL_HOME, MLFLOW_TRACKING_URI).
_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export OFFLINE_EVAL_ROOT="$_root"
export OFFLINE_EVAL_HOME="${OFFLINE_EVAL_HOME:-$_root/.local}"
export OFFLINE_EVAL_REPORTS="${OFFLINE_EVAL_REPORTS:-$_root/reports}"
# Alert deliveries of the embedded stack land here as files (one per message as it would be sent);
# unset it (export OFFLINE_EVAL_OUTBOX=) to send through the Airflow connections of conf/alerting.yaml.
export OFFLINE_EVAL_OUTBOX="${OFFLINE_EVAL_OUTBOX-$OFFLINE_EVAL_HOME/outbox}"
export VIRTUAL_ENV="${VIRTUAL_ENV:-$_root/.venv}"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-sqlite:///$OFFLINE_EVAL_HOME/mlflow/mlflow.db}"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$VIRTUAL_ENV/bin/python}"
export PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$VIRTUAL_ENV/bin/python}"
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
# log4j2.properties for the Spark driver (quiet Hive metastore client).
export SPARK_CONF_DIR="${SPARK_CONF_DIR:-$_root/conf/spark}"
export GX_ANALYTICS_ENABLED=false
export DO_NOT_TRACK=1
export MLFLOW_ENABLE_TELEMETRY="${MLFLOW_ENABLE_TELEMETRY:-false}"

# Airflow: SQLite metadata DB and LocalExecutor under the state dir, our dags/ and plugins/.
export AIRFLOW_HOME="${AIRFLOW_HOME:-$OFFLINE_EVAL_HOME/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$_root/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="${AIRFLOW__CORE__PLUGINS_FOLDER:-$_root/plugins}"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db?timeout=60}"
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-28080}"
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://127.0.0.1:$AIRFLOW__API__PORT}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://127.0.0.1:$AIRFLOW__API__PORT/execution/}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS:-True}"
export AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL=10
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-10}"
# The DAG processor parses every DAG file again once this interval has passed (30 s by default)
# even when the file has not changed: about 2 CPU seconds a day's run on 2 cores, beside the
# tasks. A changed file is parsed again at the next refresh whatever this says (files are
# queued by modification time), so the embedded stack waits 10 minutes for unchanged ones.
export AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="${AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL:-600}"
# An idle scheduler loop sleeps this long (1 s by default), so each task of a day started up to a
# second after the one before it; days run one at a time, so those waits are the run's (a day's run
# 31 s instead of 35 s, the scheduler's CPU 0.1 core instead of 0.05: docs/benchmarks.md).
export AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="${AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME:-0.25}"
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"
# The Spark engine every task talks to: a Spark Connect endpoint. `make engine-up` starts the
# embedded one there; point both at a cluster's Connect server instead (docs/deployment.md).
export SPARK_REMOTE="${SPARK_REMOTE:-sc://127.0.0.1:15002}"
_host="${SPARK_REMOTE#sc://}"; _host="${_host%%/*}"; _port="${_host##*:}"; _host="${_host%:*}"
[ "$_port" = "$_host" ] && _port=15002
_spark_conn="{\"conn_type\": \"spark_connect\", \"host\": \"sc://$_host\", \"port\": $_port}"
export AIRFLOW_CONN_SPARK_CONNECT_DEFAULT="${AIRFLOW_CONN_SPARK_CONNECT_DEFAULT:-$_spark_conn}"

# Components must share one signing secret for task tokens; made once per state dir, never committed.
mkdir -p "$AIRFLOW_HOME"
if [ -z "${AIRFLOW__API_AUTH__JWT_SECRET:-}" ]; then
  [ -s "$AIRFLOW_HOME/.jwt_secret" ] || (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$AIRFLOW_HOME/.jwt_secret")
  AIRFLOW__API_AUTH__JWT_SECRET="$(cat "$AIRFLOW_HOME/.jwt_secret")"
  export AIRFLOW__API_AUTH__JWT_SECRET
fi
unset _root _spark_conn _host _port
