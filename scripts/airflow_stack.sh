# Start and stop the Airflow 3 components of the embedded stack (api-server, scheduler,
# dag-processor) in the background under $AIRFLOW_HOME. Source after scripts/env.sh.
AIRFLOW_PIDS="$AIRFLOW_HOME/pids"
AIRFLOW_COMPONENT_LOGS="$AIRFLOW_HOME/logs/components"

airflow_init() {
  mkdir -p "$AIRFLOW_PIDS" "$AIRFLOW_COMPONENT_LOGS"
  echo "-> airflow db migrate ($AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)"
  airflow db migrate > "$AIRFLOW_COMPONENT_LOGS/db-migrate.log" 2>&1 || { tail -20 "$AIRFLOW_COMPONENT_LOGS/db-migrate.log"; return 1; }
  airflow dags reserialize > "$AIRFLOW_COMPONENT_LOGS/reserialize.log" 2>&1 || { tail -20 "$AIRFLOW_COMPONENT_LOGS/reserialize.log"; return 1; }
  if airflow dags list-import-errors -o json 2>/dev/null | grep -q '"filename"'; then
    echo "error: DAG import errors:"; airflow dags list-import-errors -o plain 2>/dev/null; return 1
  fi
}

# While a backfill runs the DAG is unpaused, and the scheduler would also start the run of the
# latest interval (yesterday), whose partitions need not exist: the DAGs schedule nothing after
# the backfill's last day unless the caller exported a day of its own. Call before the DAGs are
# serialized (airflow_init) and the components start.
schedule_until() {
  export OFFLINE_EVAL_DAILY_END_DATE="${OFFLINE_EVAL_DAILY_END_DATE:-$1}"
}

# Start components (api-server, scheduler, dag-processor) in the background, each in a session
# of its own; one already running is left as it is.
airflow_spawn() {
  local c
  mkdir -p "$AIRFLOW_PIDS" "$AIRFLOW_COMPONENT_LOGS"
  for c in "$@"; do
    if [ -f "$AIRFLOW_PIDS/$c.pid" ] && kill -0 "$(cat "$AIRFLOW_PIDS/$c.pid")" 2>/dev/null; then continue; fi
    setsid airflow "$c" > "$AIRFLOW_COMPONENT_LOGS/$c.log" 2>&1 < /dev/null &
    echo $! > "$AIRFLOW_PIDS/$c.pid"
  done
}

# True when the api-server answers its health check.
airflow_api_up() {
  python - <<PY 2>/dev/null
import urllib.request, sys
sys.exit(0 if urllib.request.urlopen("$AIRFLOW__API__BASE_URL/api/v2/monitor/health", timeout=2).status == 200 else 1)
PY
}

airflow_start() {
  airflow_spawn api-server scheduler dag-processor
  echo -n "-> waiting for the Airflow api-server on $AIRFLOW__API__BASE_URL "
  local i
  for i in $(seq 1 90); do
    if airflow_api_up; then echo " up"; return 0; fi
    echo -n "."; sleep 2
  done
  echo; echo "error: api-server did not come up; see $AIRFLOW_COMPONENT_LOGS/api-server.log"; tail -20 "$AIRFLOW_COMPONENT_LOGS/api-server.log"
  return 1
}

airflow_stop() {
  # By the sessions this script started (setsid), never by name: a session holds the component
  # and every task process it started, including those that made their own process group.
  # All three are asked to stop at once, then waited for together (up to 10 s, then killed).
  local c pid i sessions=""
  for c in dag-processor scheduler api-server; do
    [ -f "$AIRFLOW_PIDS/$c.pid" ] || continue
    pid=$(cat "$AIRFLOW_PIDS/$c.pid")
    pkill -TERM -s "$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    sessions="$sessions $pid"
    rm -f "$AIRFLOW_PIDS/$c.pid"
  done
  for i in $(seq 1 40); do
    local left=""
    for pid in $sessions; do pgrep -s "$pid" >/dev/null 2>&1 && left="$left $pid"; done
    sessions=$left
    [ -n "$sessions" ] || break
    sleep 0.25
  done
  for pid in $sessions; do pkill -KILL -s "$pid" 2>/dev/null || true; done
  echo "-> stopped the Airflow components"
}

# airflow backfill create, tried again when SQLite said "database is locked". The busy timeout of
# the embedded stack's SQLite URL makes a writer wait for another writer, but not a transaction
# that read first and must then take the write lock while another process writes (SQLite fails
# it at once rather than deadlock): a running scheduler or dag-processor writes every few seconds.
# A failed attempt may have committed its backfill row (Airflow commits it before the runs):
# that one, and only backfills created since the attempt began, is closed before the next try.
#   backfill_create DAG_ID FROM TO REPROCESS [MAX_ACTIVE_RUNS]
backfill_create() {
  local dag_id="$1" from="$2" to="$3" reprocess="$4" max_active="${5:-1}" attempt since
  local log="$AIRFLOW_COMPONENT_LOGS/backfill-create.log" tries="${BACKFILL_CREATE_TRIES:-5}"
  mkdir -p "$AIRFLOW_COMPONENT_LOGS"
  echo "-> airflow backfill create --dag-id $dag_id --from-date $from --to-date $to --reprocess-behavior $reprocess"
  for attempt in $(seq 1 "$tries"); do
    since=$(date -u +%Y-%m-%dT%H:%M:%S)
    if airflow backfill create --dag-id "$dag_id" --from-date "$from" --to-date "$to" \
        --reprocess-behavior "$reprocess" --max-active-runs "$max_active" > "$log" 2>&1; then
      return 0
    fi
    if [ "$attempt" = "$tries" ] || ! grep -q "database is locked" "$log"; then break; fi
    echo "   the Airflow database was locked by another component's write (attempt $attempt of $tries): trying again"
    python "$(dirname "${BASH_SOURCE[0]}")/backfills.py" close-unfinished --dag-id "$dag_id" --created-since "$since"
    sleep 1
  done
  echo "error: airflow backfill create failed; $log:"; tail -20 "$log"
  return 1
}
