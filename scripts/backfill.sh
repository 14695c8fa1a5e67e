#!/usr/bin/env bash
# Backfill offline_eval_daily over START..END with the real Airflow scheduler, show progress
# until every run has finished, then stop the components this script started.
#   scripts/backfill.sh START END [failed|completed]
# (the daily DAG's baselines task depends on the previous day, so Airflow requires failed or
# completed: none would leave earlier days' runs as they are and never reprocess them in order)
# With AB_READOUT_DAY=D set, also run offline_eval_ab_readout once for day D (the A/B readout
# of every experiment running on D, over its window up to D), only if D's compute succeeded (the
# readout DAG is scheduled on evaluated days: docs/airflow_assets.md). The readout reads the raw
# logs only, so when D is one of the backfill's days it starts as soon as every day's compute
# up to D has finished, beside the last days' remaining tasks; otherwise after the backfill.
# With BESIDE_DAILY="command" set, that command runs in the background from the backfill's start
# on (make demo's weekly evaluations, each waiting for its week's days: backfills.py await-task);
# the script waits for it, and its failure fails the script.
set -euo pipefail
START="$1"; END="$2"; REPROCESS="${3:-completed}"
DAG_ID="offline_eval_daily"
: "${AIRFLOW_HOME:?source scripts/env.sh first}"
. "$(dirname "$0")/airflow_stack.sh"

schedule_until "$END"  # no scheduled run for a day after END meanwhile (airflow_stack.sh)
offline-eval engine start
[ "${AIRFLOW_READY:-}" = 1 ] || airflow_init  # make demo has done it beside the data set-up
close_unfinished() {
  python "$(dirname "$0")/backfills.py" close-unfinished --dag-id "$DAG_ID"
  [ -z "${AB_READOUT_DAY:-}" ] || python "$(dirname "$0")/backfills.py" close-unfinished --dag-id offline_eval_ab_readout
}
# With no scheduler running, a backfill still open was interrupted (a killed terminal): close it.
# FORCE=1 closes it even when a scheduler runs (a backfill you want to replace).
if [ "${FORCE:-0}" = 1 ] || ! { [ -f "$AIRFLOW_PIDS/scheduler.pid" ] && kill -0 "$(cat "$AIRFLOW_PIDS/scheduler.pid")" 2>/dev/null; }; then
  close_unfinished
fi
# Create the backfill before this script starts the scheduler when it can (make airflow-up and
# make demo have the components up already: backfill_create then tries again when SQLite says the
# database is locked, see airflow_stack.sh).
# One day at a time (BACKFILL_MAX_ACTIVE_RUNS, as the DAG's max_active_runs): a day's compute
# already uses both cores of the embedded engine; raise it on an engine with more cores.
backfill_create "$DAG_ID" "$START" "$END" "$REPROCESS" "${BACKFILL_MAX_ACTIVE_RUNS:-1}"
AB_DAG_ID="offline_eval_ab_readout"
# The readout DAG (asset-scheduled, no backfills) stays paused while the daily backfill runs: an
# event for a paused DAG queues nothing, so the backfill's evaluated days start no readouts.
# Runs of a paused DAG stay queued: the daily DAG is unpaused for the backfill, paused again
# afterwards. Through the REST API when the api-server already answers; otherwise the two CLI
# calls run side by side (each is seconds of imports; SQLite serializes their writes).
if airflow_api_up; then  # the components already run (make airflow-up, make demo): REST calls, no CLI imports
  [ -z "${AB_READOUT_DAY:-}" ] || python "$(dirname "$0")/backfills.py" pause --dag-id "$AB_DAG_ID"
  python "$(dirname "$0")/backfills.py" unpause --dag-id "$DAG_ID"
else
  pids=""
  [ -z "${AB_READOUT_DAY:-}" ] || { airflow dags pause "$AB_DAG_ID" > /dev/null & pids="$pids $!"; }
  airflow dags unpause "$DAG_ID" > /dev/null & pids="$pids $!"
  for pid in $pids; do wait "$pid"; done
fi
# Ctrl-C (or a TERM, or a closed terminal) stops the components this script started and closes its own backfill, so
# the next `make backfill` starts at once.
# The progress loop runs in the background and the script waits on it with `wait`, which a
# trapped signal interrupts at once (bash defers traps while a foreground child runs, so a TERM
# sent to this script's PID alone would otherwise wait for the loop to end).
INTERRUPTED=0
WAITER=""
early_readout=""
beside=""
on_exit() {
  [ -z "$WAITER" ] || kill "$WAITER" 2>/dev/null || true
  [ -z "$early_readout" ] || kill "$early_readout" 2>/dev/null || true
  # BESIDE_DAILY runs in a session of its own: every process it started stops with it.
  [ -z "$beside" ] || pkill -TERM -s "$beside" 2>/dev/null || true
  airflow_stop
  [ "$INTERRUPTED" = 0 ] || { echo "-> interrupted: closing the backfill"; close_unfinished; }
}
trap on_exit EXIT
trap 'INTERRUPTED=1; exit 130' INT TERM HUP
interruptible() {  # a backfills.py command in the background, waited for so that a signal interrupts it
  python "$(dirname "$0")/backfills.py" "$@" &
  WAITER=$!
  local rc=0
  wait "$WAITER" || rc=$?
  WAITER=""
  return $rc
}
airflow_start
status=0
if [ -n "${BESIDE_DAILY:-}" ]; then
  setsid bash -c "$BESIDE_DAILY" &
  beside=$!
fi
if [ -n "${AB_READOUT_DAY:-}" ] && [[ ! "$AB_READOUT_DAY" < "$START" ]] && [[ ! "$AB_READOUT_DAY" > "$END" ]]; then
  python "$(dirname "$0")/backfills.py" readout --daily "$DAG_ID" --dag-id "$AB_DAG_ID" --day "$AB_READOUT_DAY" \
    --after-computes-from "$START" &
  early_readout=$!
fi
# With a readout to follow, the backfill is closed at the end (wait-closed).
interruptible wait --dag-id "$DAG_ID" --start "$START" --end "$END" --timeout "${BACKFILL_TIMEOUT:-5400}" \
  ${AB_READOUT_DAY:+--no-await-close} || status=$?
if [ -n "${AB_READOUT_DAY:-}" ]; then
  # A day the gate rejected is never read out; the run's logical date is the day (manual run).
  if [ -n "$early_readout" ]; then
    WAITER=$early_readout
    wait "$early_readout" || status=$?
    WAITER=""; early_readout=""
  else
    interruptible readout --daily "$DAG_ID" --dag-id "$AB_DAG_ID" --day "$AB_READOUT_DAY" || status=$?
  fi
  interruptible wait-closed --dag-id "$DAG_ID" || status=$?
fi
[ -z "$beside" ] || wait "$beside" || status=$?
python "$(dirname "$0")/backfills.py" pause --dag-id "$DAG_ID" || status=$?
exit $status
